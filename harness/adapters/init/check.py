"""`pams init --check`: the smoke schedule (two participants: register, msend, disconnect,
msend while one is offline, reconnect, deregister) run with an adapter, and its verdict."""

from __future__ import annotations

from pathlib import Path

from checkers import TraceError, check_path
from harness.adapters import adapter as adapters
from harness.exits import EXIT_ERROR, EXIT_FAIL, EXIT_PASS
from harness.running.runner import run_scenario
from harness.scenarios.model import Scenario, Script


def smoke_scenario() -> Scenario:
    """register both, a multicast from each, one goes offline and misses one, comes back,
    the other deregisters and one more message goes out (td 4 s: nothing expires)."""
    s = Script("init-smoke", 2, td=4.0, description="pams init smoke schedule")
    s.all(0.0, "register", gap=0.05)
    s.at(0.8, "1", "msend").at(1.1, "2", "msend")
    s.at(1.5, "2", "disconnect").at(2.0, "1", "msend")
    s.at(2.6, "2", "reconnect").at(3.2, "1", "deregister").at(3.6, "2", "msend")
    return s.build()


def run_check(adapter_ref: str, out: Path) -> tuple[int, str]:
    """Run the smoke schedule with the adapter into `out`; (exit status, what to print)."""
    try:
        adapter = adapters.load_adapter(adapter_ref)
        adapters.build(adapter)
    except adapters.AdapterError as e:
        return EXIT_ERROR, f"check: {e}"
    except adapters.BuildError as e:
        return EXIT_ERROR, f"check: cannot build: {e}\n{getattr(e, 'output', '')}"
    result = run_scenario(adapter, smoke_scenario(), out)
    if result.error or result.trace_path is None:
        return EXIT_ERROR, f"check: cannot run the implementation: {result.error or result.skipped}"
    try:
        verdict = check_path(str(result.trace_path))
    except TraceError as e:
        return EXIT_ERROR, f"check: unreadable trace: {e}"
    status = EXIT_PASS if verdict.passed else EXIT_FAIL
    head = f"check: the smoke schedule {'PASSES' if verdict.passed else 'FAILS'} with this adapter"
    return status, f"{head}\n{verdict.summary()}"
