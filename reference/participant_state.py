"""The participant's logic without sockets or threads: command parsing, the local membership
state, control request/reply lines, and parsing of delivery batches with dedupe by sequence.

Thread-A feeds each stdin line to `plan()`, performs the I/O the plan asks for, and feeds the
outcome to `settle()`; thread-B feeds received bytes to `take_deliveries()`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Union

from reference.wire import (
    MESSAGE,
    PORT_RULE,
    Deregister,
    Disconnect,
    Err,
    Msend,
    Ok,
    Reconnect,
    Register,
    Request,
    format_ack,
    format_request,
    parse_delivery,
    parse_port,
    quote,
)
from reference.wire import parse_reply as parse_wire_reply

VERBS = ("register", "deregister", "disconnect", "reconnect", "msend", "quit")
_TAKES_PORT = ("register", "reconnect")
_TAKES_NOTHING = ("deregister", "disconnect", "quit")


class State(enum.Enum):
    """What this process knows of its membership; UNKNOWN until a request has succeeded."""

    UNKNOWN = "unknown"
    OUT = "out"
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True)
class Command:
    """A well-formed user command; `port` for register/reconnect, `message` for msend."""

    verb: str
    port: Optional[int] = None
    message: Optional[str] = None

    @property
    def listens(self) -> bool:
        """True when thread-B must be listening on `port` before the request is sent."""
        return self.verb in _TAKES_PORT


@dataclass(frozen=True)
class Reply:
    """A reply line to print at once, with no request to the coordinator."""

    line: str


@dataclass(frozen=True)
class Unsent:
    """The request never reached the coordinator (or thread-B could not listen)."""

    reason: str


@dataclass(frozen=True)
class Lost:
    """The request was sent but no valid reply came back: its effect is unknown."""

    reason: str


Outcome = Union[Ok, Err, Unsent, Lost]


def error(verb: str, reason: str) -> str:
    """The reply line for a failed command."""
    return f"error {verb}: {reason}"


def _parse_port(verb: str, text: str) -> Union[Command, Reply]:
    port = parse_port(text)
    if port is None:
        return Reply(error(verb, f"port {PORT_RULE}, got {quote(text)}"))
    return Command(verb, port=port)


def parse_command(line: str) -> Union[Command, Reply, None]:
    """Parse one stdin line: None for a blank line, a Reply for a malformed command."""
    words = line.split()
    if not words:
        return None
    verb, args = words[0].lower(), words[1:]
    if verb not in VERBS:
        return Reply(f"error: unknown command {quote(words[0])}")
    if verb in _TAKES_NOTHING:
        return Command(verb) if not args else Reply(error(verb, f"takes no argument: {verb}"))
    if verb in _TAKES_PORT:
        if len(args) != 1:
            return Reply(error(verb, f"usage: {verb} PORT"))
        return _parse_port(verb, args[0])
    if not args:
        return Reply(error(verb, "usage: msend MESSAGE"))
    if len(args) > 1 or not MESSAGE.fullmatch(args[0]):
        return Reply(error(verb, "message must be alphanumeric"))
    return Command(verb, message=args[0])


_REFUSALS = {
    ("register", State.ONLINE): "already registered",
    ("register", State.OFFLINE): "already registered",
    ("deregister", State.OUT): "not registered",
    ("disconnect", State.OUT): "not registered",
    ("disconnect", State.OFFLINE): "already offline",
    ("reconnect", State.OUT): "not registered",
    ("reconnect", State.ONLINE): "already online",
    ("msend", State.OUT): "not registered",
}  # a known local state that makes a command pointless; UNKNOWN lets the coordinator judge


def plan(state: State, line: str) -> Union[Command, Reply, None]:
    """Decide what a stdin line needs: nothing (blank), a local reply, or a request to send."""
    parsed = parse_command(line)
    if not isinstance(parsed, Command) or parsed.verb == "quit":
        return parsed
    refusal = _REFUSALS.get((parsed.verb, state))
    return Reply(error(parsed.verb, refusal)) if refusal else parsed


def to_request(participant_id: str, command: Command, host: str) -> Request:
    """The control request that carries out `command` (not `quit`) for this participant."""
    if command.verb in _TAKES_PORT:
        assert command.port is not None
        cls = Register if command.verb == "register" else Reconnect
        return cls(participant_id, host, command.port)
    if command.verb == "msend":
        assert command.message is not None
        return Msend(participant_id, command.message)
    leave = Deregister if command.verb == "deregister" else Disconnect
    return leave(participant_id)


def request_line(participant_id: str, command: Command, host: str) -> str:
    """The control request line for `command` (PROTOCOL.md section 1), newline included."""
    return format_request(to_request(participant_id, command, host)) + "\n"


def parse_reply(line: str) -> Union[Ok, Err, Lost]:
    """Interpret the coordinator's reply line (`OK [detail]` or `ERR reason`); anything else
    means the request's effect is unknown (Lost)."""
    reply = parse_wire_reply(line)
    return Lost(reply) if isinstance(reply, str) else reply


_AFTER_OK = {
    "register": State.ONLINE,
    "reconnect": State.ONLINE,
    "disconnect": State.OFFLINE,
    "deregister": State.OUT,
}


def settle(state: State, command: Command, outcome: Outcome) -> tuple[State, str]:
    """The new local state and the reply line once the request's outcome is known."""
    if isinstance(outcome, Ok):
        detail = f" {outcome.detail}" if outcome.detail else ""
        return _AFTER_OK.get(command.verb, state), f"ok {command.verb}{detail}"
    if isinstance(outcome, Err):
        return state, error(command.verb, outcome.reason)
    if isinstance(outcome, Lost) and command.verb in _AFTER_OK:
        return State.UNKNOWN, error(command.verb, outcome.reason)  # it may have taken effect
    return state, error(command.verb, outcome.reason)


def releases_port(command: Command, outcome: Outcome, state_after: State) -> bool:
    """Whether thread-B must stop listening once `command` has had `outcome`.

    Offline or out: yes. A register/reconnect refused or never sent: yes. One whose reply was
    lost keeps listening, in case the coordinator did act. A disconnect/deregister whose reply
    was lost releases the port anyway, as asked.
    """
    if state_after in (State.OUT, State.OFFLINE):
        return True
    if command.listens:
        return isinstance(outcome, (Err, Unsent))
    return command.verb in ("disconnect", "deregister") and isinstance(outcome, Lost)


@dataclass(frozen=True)
class Batch:
    """What thread-B does with one chunk of received bytes."""

    to_log: bytes  # message lines to append to the log, newline-terminated
    ack: Optional[int]  # cumulative ACK to send, None when no MSG line was complete
    last_seq: int  # highest sequence number logged so far
    rest: bytes  # an incomplete trailing line, kept for the next chunk
    bad_lines: tuple[bytes, ...] = ()  # complete lines that are not well-formed MSG lines


def take_deliveries(buffer: bytes, last_seq: int) -> Batch:
    """Split `buffer` into MSG lines; log those with seq > last_seq, ack the highest seq seen."""
    *lines, rest = buffer.split(b"\n")
    logged: list[bytes] = []
    bad: list[bytes] = []
    ack: Optional[int] = None
    for line in lines:
        delivery = parse_delivery(line)
        if delivery is None:
            bad.append(line)
            continue
        seq = delivery.seq
        ack = seq if ack is None else max(ack, seq)
        if seq > last_seq:
            logged.append(delivery.text.encode("ascii", "surrogateescape") + b"\n")
            last_seq = seq
    return Batch(b"".join(logged), ack, last_seq, rest, tuple(bad))


def ack_line(seq: int) -> bytes:
    """The bytes thread-B writes to acknowledge every message up to `seq`."""
    return (format_ack(seq) + "\n").encode()
