"""The variants `pams init` tries, in order (the assignment's own form first), and the pure
inferences it draws from what it saw: prompt, answer-line pattern, command words."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

Wire = tuple[str, int, int, bytes]
"""A proxy report of the probe: ("request" | "reply", connection, command number, bytes)."""

OPS = ("register", "msend", "disconnect", "reconnect", "deregister")
ARG = {"register": "{port}", "reconnect": "{port}", "msend": "{message}"}


@dataclass(frozen=True)
class Variant:
    """One way of handing a program its config: `label` for the adapter's comment, the argv
    tail after the program, the config text and the stdin preamble."""

    label: str
    tail: tuple[str, ...]
    config: str
    preamble: tuple[str, ...] = ()


COORDINATOR_CONFIGS = (
    ("lines PORT, TD", "{port}\n{td}\n"),
    ("key=value lines port=, td=", "port={port}\ntd={td}\n"),
    ("lines PORT, TD, a second PORT", "{port}\n{td}\n{port2}\n"),
)
PARTICIPANT_CONFIGS = (
    ("lines ID, LOG, `IP PORT`", "{id}\n{log}\n{coordinator_host} {coordinator_port}\n"),
    ("lines ID, LOG, `IP:PORT`", "{id}\n{log}\n{coordinator_host}:{coordinator_port}\n"),
    (
        "key=value lines id=, log=, coordinator=IP:PORT",
        "id={id}\nlog={log}\ncoordinator={coordinator_host}:{coordinator_port}\n",
    ),
    (
        "key=value lines id=, log=, coordinator=IP PORT",
        "id={id}\nlog={log}\ncoordinator={coordinator_host} {coordinator_port}\n",
    ),
    (
        "lines ID, LOG, `IP PORT`, the coordinator's second PORT",
        "{id}\n{log}\n{coordinator_host} {coordinator_port}\n{coordinator_port2}\n",
    ),
)
DELIVERIES = (
    ("its path as the only argument", ("{config}",), ()),
    ("its file name on the first line of stdin", (), ("{config_name}",)),
)


def variants(configs: Sequence[tuple[str, str]], stdin_first: bool = False) -> list[Variant]:
    """Every delivery x config format, the assignment's (path as argument) first unless
    `stdin_first` (the program asked for a file name)."""
    deliveries = list(DELIVERIES)[::-1] if stdin_first else list(DELIVERIES)
    return [
        Variant(f"{fmt}; {how}", tail, text, pre)
        for how, tail, pre in deliveries
        for fmt, text in configs
    ]


SYNONYMS = {"msend": ("msend", "multicast", "send", "mcast"), "reconnect": ("reconnect", "connect")}
CASES = ("lower", "capital", "upper")


def styled(word: str, case: str) -> str:
    return {"lower": word.lower(), "capital": word.capitalize(), "upper": word.upper()}[case]


def words(op: str, first_case: str = "lower") -> list[str]:
    """Command words to try for `op`, the case that worked for an earlier op first."""
    cases = [first_case] + [c for c in CASES if c != first_case]
    return [styled(w, c) for w in SYNONYMS.get(op, (op,)) for c in cases]


def case_of(word: str) -> str:
    if word.isupper():
        return "upper"
    return "capital" if word[:1].isupper() else "lower"


def command(op: str, word: str) -> str:
    """The adapter's command template: `Register {port}`, `deregister`, …"""
    return f"{word} {ARG[op]}" if op in ARG else word


ASKS_FOR_FILE = re.compile(r"(?i)(file|config|path)[^\n]*[:?>]\s*$")
PORT_LIMIT = re.compile(r"(?i)digit|range|between|must|too (large|big|long)|1000|1024|9999")
PROMPT_ONLY = re.compile(r"^\s*([^\w\s]{1,3}|[\w ]{0,30}[:>?$#])\s*$")


def asks_for_file(line: str) -> bool:
    """Does this output line ask for a config file name?"""
    return bool(ASKS_FOR_FILE.search(line))


def complains_about_port(lines: Sequence[str]) -> bool:
    """Did the participant refuse a register because of the port number itself?"""
    return any(re.search(r"(?i)\bport\b", x) and PORT_LIMIT.search(x) for x in lines)


def prompt_of(lines: Sequence[str]) -> str:
    """The prompt: the prompt-only line (`> `, `Enter command: `) seen most often, if at least
    twice; else ''."""
    counts: dict[str, int] = {}
    for line in lines:
        if PROMPT_ONLY.match(line):
            counts[line] = counts.get(line, 0) + 1
    if not counts:
        return ""
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] >= 2 else ""


def prompt_pattern(prompt: str) -> str:
    """The adapter's prompt_pattern for a prompt text (`> ` -> `> $`)."""
    return re.escape(prompt.rstrip()) + r"\s*$" if prompt else ""


def strip_prompt(line: str, prompt: str) -> str:
    while prompt and line.startswith(prompt):
        line = line[len(prompt) :]
    return line


def done_pattern(answers: Sequence[str]) -> str:
    """A done_pattern when the participant answered commands with lines starting with one
    word, or with `error` (`ok register`, `ok msend 1`, `error disconnect: ...` ->
    `^(ok|error)\\b`); '' when its answers have nothing in common (`Registered.`, `Sent.`)
    or there were fewer than three."""
    firsts = [a.split()[0] if a.split() else "" for a in answers]
    words = {w for w in firsts if w.rstrip(":").lower() != "error"}
    if len(firsts) < 3 or len(words) != 1:
        return ""
    word = words.pop()
    if not re.fullmatch(r"[A-Za-z]{1,10}", word):
        return ""
    err = styled("error", case_of(word))
    return rf"^({re.escape(word)}|{err})\b"


def reply_word(wire: Sequence[Wire]) -> str:
    """For a participant that keeps one control connection across commands: the one word
    that starts a coordinator line after every command (`ACK`), when the coordinator also
    sends other lines there (`NOTICE ...`, before or after it) and at least three commands
    were answered; else '' (a connection per command needs no reply_pattern)."""
    commands: dict[int, set[int]] = {}
    for kind, conn, command, _ in wire:
        if kind == "request":
            commands.setdefault(conn, set()).add(command)
    kept = {conn for conn, cmds in commands.items() if len(cmds) >= 2}
    starts: dict[int, set[str]] = {}  # command -> first words of the lines after it
    buffers: dict[int, str] = {}
    for kind, conn, command, data in wire:
        if kind != "reply" or conn not in kept:
            continue
        text = buffers.get(conn, "") + data.decode("utf-8", "replace")
        *lines, buffers[conn] = text.split("\n")
        starts.setdefault(command, set()).update(x.split()[0] for x in lines if x.split())
    if len(starts) < 3:
        return ""
    common = set.intersection(*starts.values())
    every = set.union(*starts.values())
    if len(common) != 1 or not every - common:
        return ""
    word = common.pop()
    return word if re.fullmatch(r"[A-Za-z]{1,12}", word) else ""


def greeting_reply(wire: Sequence[Wire]) -> str:
    """For a coordinator that writes bytes on every connection before its answer (a stream
    header, a banner: bytes that came before the request, or a first chunk without a newline
    followed by more): a reply_pattern that waits for the answer line, from the word the
    answer starts with after each command (`OK 1` -> `(OK|ERR)[^\\n]*\\n`); '' when fewer
    than three commands' connections showed such bytes."""
    requested: set[int] = set()
    early: set[int] = set()
    chunks: dict[int, list[bytes]] = {}
    command_of: dict[int, int] = {}
    for kind, conn, command, data in wire:
        if kind == "request":
            requested.add(conn)
            command_of.setdefault(conn, command)
            continue
        if conn not in requested:
            early.add(conn)
        chunks.setdefault(conn, []).append(data)
    after: dict[int, str] = {}  # command -> the coordinator's text after its greeting
    for conn, parts in chunks.items():
        greets = conn in early or (len(parts) >= 2 and b"\n" not in parts[0])
        if greets and conn in command_of:
            after[command_of[conn]] = b"".join(parts[1:]).decode("utf-8", "replace")
    words = set()
    for text in after.values():
        m = re.match(r"[^A-Za-z]*([A-Za-z]{1,10})\b", text)
        words.add(m.group(1) if m else "")
    words -= {w for w in words if w.lower() in ("err", "error")}
    if len(after) < 3 or len(words) != 1 or "" in words:
        return ""
    word = words.pop()
    err = {"lower": "err", "capital": "Err", "upper": "ERR"}[case_of(word)]
    return f"({re.escape(word)}|{err})[^\\n]*\\n"
