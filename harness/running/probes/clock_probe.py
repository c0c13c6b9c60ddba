"""Clock probe for harness.running.clock.selftest: answers one stdin command per line on stdout.

Commands: `wall` -> `wall <time.time()>`; `mono` -> `mono <time.monotonic()>`; `sleep`,
`event`, `asyncio` -> wait 0.5 s with time.sleep / threading.Event.wait / asyncio.sleep, then
`<command> <elapsed on time.monotonic()>`.
Standalone on purpose (runs under libfaketime, imports nothing from the harness).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

WAITS = {
    "sleep": lambda: time.sleep(0.5),
    "event": lambda: threading.Event().wait(0.5),
    "asyncio": lambda: asyncio.run(asyncio.sleep(0.5)),
}


def answer(command: str) -> str:
    """The reply line for one command (an unknown command gets `error <command>`)."""
    if command == "wall":
        return f"wall {time.time():.6f}"
    if command == "mono":
        return f"mono {time.monotonic():.6f}"
    if command not in WAITS:
        return f"error {command}"
    start = time.monotonic()
    WAITS[command]()
    return f"{command} {time.monotonic() - start:.6f}"


def main() -> None:
    """Print `ready python X.Y.Z`, then answer commands until end of input."""
    print("ready python " + ".".join(map(str, sys.version_info[:3])), flush=True)
    for line in sys.stdin:
        print(answer(line.strip()), flush=True)


if __name__ == "__main__":
    main()
