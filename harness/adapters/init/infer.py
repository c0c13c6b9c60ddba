"""The probe's decisions: which variant of each thing to keep, from what the Session saw.
`probe(...)` returns Findings: every field with the one-line reason it was chosen, and what
could not be inferred."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from harness.adapters.init import variants as vs
from harness.adapters.init.probe import ASKS, Proc, Reaction, Say, Session, find_token, listening

TOKENS = iter(range(90000001, 99999999))


@dataclass
class Findings:
    """What the probe settled, each with how (`why[field]`), and what it could not."""

    coordinator: vs.Variant = field(default_factory=lambda: vs.variants(vs.COORDINATOR_CONFIGS)[0])
    participant: vs.Variant = field(default_factory=lambda: vs.variants(vs.PARTICIPANT_CONFIGS)[0])
    fixed_port: int = 0
    commands: dict[str, str] = field(default_factory=dict)
    four_digit: bool = False
    exit_on_deregister: bool = False
    done_pattern: str = ""
    reply_pattern: str = ""
    prompt: str = ""
    startup: float = 0.0
    why: dict[str, str] = field(default_factory=dict)
    port: int = 0  # the thread-B port of the probe's last register/reconnect
    token: str = ""  # the message of its last msend
    unknown: list[str] = field(default_factory=list)
    smoke: list[str] = field(default_factory=list)

    def command(self, op: str) -> str:
        return self.commands.get(op, vs.command(op, op))


@dataclass(frozen=True)
class Pace:
    """How long to wait for things: longer for a JVM."""

    startup: float = 5.0
    ready: float = 0.6
    op: float = 2.0


def probe(
    coord_argv: list[str],
    part_argv: list[str],
    session: Session,
    pace: Pace,
    say: Say,
) -> Findings:
    """Run the probe; never raises for the submission's misbehaviour (Findings say it)."""
    f = Findings()
    coord_port = _coordinator(coord_argv, session, pace, f, say)
    if coord_port:
        _participant(part_argv, session, pace, f, coord_port, say)
    else:
        f.unknown.append("the participant's config and commands (no coordinator to talk to)")
    return f


def _coordinator(argv: list[str], s: Session, pace: Pace, f: Findings, say: Say) -> int:
    tried = []
    todo = vs.variants(vs.COORDINATOR_CONFIGS)
    while todo:
        v = todo.pop(0)
        if s.left() <= 0:
            break
        started = time.monotonic()
        child, port, how = s.start_coordinator(argv, v, pace.startup)
        if how == ASKS:  # the file name on stdin, then: try those variants next
            todo.sort(key=lambda w: bool(w.tail))
        say(f"coordinator, config {v.label}: {how}")
        if child is not None:
            f.coordinator, f.startup = v, time.monotonic() - started
            f.why["coordinator"] = f"it {how} with this config ({v.label})"
            if "whatever" in how:
                f.fixed_port = port
                f.why["port"] = f"it {how}"
            return port
        tried.append(f"{v.label}: {how}")
    f.unknown.append("how the coordinator takes its config: " + "; ".join(tried or ["no time"]))
    f.why["coordinator"] = "the assignment's form (no variant made it listen)"
    return 0


def _participant(
    argv: list[str], s: Session, pace: Pace, f: Findings, coord_port: int, say: Say
) -> None:
    silent = 0
    stdin_first = False
    tried: list[str] = []
    first_lines: list[str] = []
    for v in vs.variants(vs.PARTICIPANT_CONFIGS, stdin_first):
        if s.left() <= 0:
            tried.append("time budget spent")
            break
        proc = s.start_participant(argv, v, coord_port)
        s.settle(proc, pace.ready)
        if not proc.child.alive():
            last = proc.child.last_output()
            say(f"participant, config {v.label}: exited at once ({last or 'no output'})")
            tried.append(f"{v.label}: exited ({last or 'no output'})")
            continue
        if v.tail and any(vs.asks_for_file(x) for x in proc.seen.lines):
            say(f"participant, config {v.label}: it asks for a file name on stdin")
            proc.child.kill()
            tried.append(f"{v.label}: asks for a file name")
            continue
        banner = proc.seen.mark()[0]
        word, reaction = _op(s, proc, f, "register", "lower", pace)
        if not first_lines:
            first_lines = _last_reaction_lines(proc)
        if word is None:
            anything = proc.seen.lines or proc.seen.errors or proc.seen.requests
            silent = 0 if anything else silent + 1
            outcome = "no register reached the coordinator"
            if not proc.child.alive():
                silent = 0
                outcome = f"exited ({proc.child.last_output() or 'no output'})"
            say(f"participant, config {v.label}: {outcome}")
            tried.append(f"{v.label}: {outcome}")
            proc.child.kill()
            if silent >= 2:
                tried.append("it neither prints nor sends anything")
                break
            continue
        f.participant = v
        f.why["participant"] = f"a register reached the coordinator with this config ({v.label})"
        _rest(s, proc, f, vs.case_of(word), pace, say, banner)
        return
    f.unknown.append("how the participant takes its config and commands: " + summary(tried))
    f.why["participant"] = "the assignment's form (no variant got a register through)"
    answers = [x for x in first_lines if x.strip() and not vs.PROMPT_ONLY.match(x)]
    f.done_pattern = vs.done_pattern(answers)
    if f.done_pattern:
        f.why["done_pattern"] = (
            f"it answered every command with a line starting {answers[0].split()[0]!r} "
            "(though nothing reached the coordinator)"
        )


def summary(tried: list[str]) -> str:
    """`tried` ("variant: outcome") grouped by outcome: `8 variants tried: 4 exited (...), ...`."""
    groups: dict[str, int] = {}
    for entry in tried:
        outcome = entry.split(": ", 1)[-1]
        groups[outcome] = groups.get(outcome, 0) + 1
    parts = [f"{n} x {outcome}" for outcome, n in groups.items()]
    return f"{len(tried)} variants tried: " + "; ".join(parts)


def _op(
    s: Session, proc: Proc, f: Findings, op: str, case: str, pace: Pace
) -> tuple[Optional[str], Optional[Reaction]]:
    """Try each word for `op` until request bytes reach the coordinator: (word, reaction)."""
    last: Optional[Reaction] = None
    for word in vs.words(op, case):
        if s.left() <= 0 or not proc.child.alive():
            break
        text = _text(s, op, word, f)
        last = s.send(proc, text, pace.op)
        if last.requested:
            f.commands[op] = vs.command(op, word)
            return word, last
        if (
            op in ("register", "reconnect")
            and not f.four_digit
            and vs.complains_about_port(last.lines)
        ):
            f.four_digit = True
            retry = s.send(proc, _text(s, op, word, f), pace.op)
            if retry.requested:
                f.commands[op] = vs.command(op, word)
                said = [x for x in last.lines if vs.complains_about_port([x])]
                f.why["ports"] = f"it refused a 5-digit port ({said[-1]!r}) and took a 4-digit one"
                return word, retry
            f.four_digit = False
    return None, last


def _text(s: Session, op: str, word: str, f: Findings) -> str:
    """The command line for `op` with `word`: a fresh thread-B port, a fresh message token."""
    if op in ("register", "reconnect"):
        f.port = s.port(4 if f.four_digit else 5)
        return f"{word} {f.port}"
    if op == "msend":
        f.token = f"M{next(TOKENS)}"
        return f"{word} {f.token}"
    return word


def _rest(
    s: Session, proc: Proc, f: Findings, case: str, pace: Pace, say: Say, banner: int
) -> None:
    port = f.port
    f.smoke.append(_said("register", True, listening(port, True, 1.0), "thread-B listening"))
    for op in ("msend", "disconnect", "reconnect", "deregister"):
        word, reaction = _op(s, proc, f, op, case, pace)
        if word is None or reaction is None:
            f.unknown.append(f"the {op} command (tried {', '.join(vs.words(op, case))})")
            f.smoke.append(f"{op}: no word reached the coordinator")
            if not proc.child.alive():
                break
            continue
        if op == "msend":
            where = find_token(proc, f.token, 2.0)
            _log(f, proc, where)
            f.smoke.append(
                _said(op, reaction.replied, where is not None, "delivered to the sender's log")
            )
        elif op == "disconnect":
            f.smoke.append(
                _said(op, reaction.replied, listening(port, False, 1.0), "thread-B port released")
            )
        elif op == "reconnect":
            port = f.port
            f.smoke.append(
                _said(op, reaction.replied, listening(port, True, 1.0), "thread-B listening")
            )
        else:
            exited = proc.child.wait(1.0)
            if exited and proc.child.returncode == 0:
                f.exit_on_deregister = True
                f.why["exit_on_deregister"] = "it exited (status 0) right after a deregister"
            f.smoke.append(
                _said(op, reaction.replied, True, "") + (" (then exited)" if exited else "")
            )
    lines = _last_reaction_lines(proc)
    f.prompt = vs.prompt_of(lines)
    stripped = [vs.strip_prompt(a, f.prompt) for a in lines[banner:]]
    stripped = [a for a in stripped if a.strip() and not vs.PROMPT_ONLY.match(a)]
    f.done_pattern = vs.done_pattern(stripped)
    if f.done_pattern:
        f.why["done_pattern"] = "every command was answered by a line starting " + repr(
            stripped[0].split()[0]
        )
    elif stripped:
        f.why["done_pattern"] = (
            f"its answers have nothing in common ({', '.join(repr(a) for a in stripped[:3])}); "
            "the coordinator's reply completes each op"
        )
    wire = list(proc.seen.wire)
    greeting = vs.greeting_reply(wire)
    word = "" if greeting else vs.reply_word(wire)
    if greeting:
        f.reply_pattern = greeting
        f.why["reply_pattern"] = (
            "the coordinator writes bytes on each connection before reading the request; "
            "its answer is the line after them"
        )
    if word:
        f.reply_pattern = rf"(?m)^{word}\b"
        f.why["reply_pattern"] = (
            "it keeps one connection to the coordinator, which answers each command with a "
            f"line starting {word!r} and sends other lines there too"
        )
    if f.prompt:
        f.why["prompt_pattern"] = f"it prints {f.prompt!r} before reading each command"
    say("smoke: " + "; ".join(f.smoke))


def _last_reaction_lines(proc: Proc) -> list[str]:
    with proc.seen.lock:
        return list(proc.seen.lines)


def _said(op: str, replied: bool, extra: bool, what: str) -> str:
    parts = ["reached the coordinator", "answered" if replied else "no reply seen"]
    if what:
        parts.append(what if extra else "NOT " + what)
    return f"{op}: " + ", ".join(parts)


def _log(f: Findings, proc: Proc, where: Optional[Path]) -> None:
    if where is None:
        f.unknown.append("where the log goes (the message sent was found in no file)")
    elif where != proc.log:
        f.unknown.append(
            f"the log: it wrote {where.name} in its working directory, "
            "not the file its config names"
        )
    else:
        f.why["log"] = "the message sent showed up in the file named by its config"
