"""The reference wire protocol's grammar (PROTOCOL.md): every request, reply, delivery and
acknowledgement line is parsed and formatted here, and so is every number anything reads.

Every function is pure. Parsers never raise: they return a frozen value, or `None` / an error
string (one line, ASCII, quoting at most a short prefix of what was refused). Formatters return
the line without its terminator; `parse(format(x)) == x` for every valid `x`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

PARTICIPANT_ID = re.compile(r"[A-Za-z0-9_.-]+")  # use with fullmatch
MESSAGE = re.compile(r"[A-Za-z0-9]+")  # use with fullmatch: alphanumeric, as the assignment says
HOST = re.compile(r"[A-Za-z0-9_.:-]+")  # use with fullmatch: a host name or IPv4/IPv6 address
MAX_LINE = 64 * 1024  # bytes per line, terminator not counted

PORTS = range(1, 65536)
SEQS = range(0, 2**63)  # sequence numbers (and acks) a line may carry
MAX_DIGITS = 19  # the longest number any line or config may hold: len(str(2**63 - 1))
QUOTE_LIMIT = 40  # characters of refused input an error message quotes

_SPACES = " \t\n\r\x0b\x0c"  # what bytes.split() splits on (str.split() splits on more)
_ASCII_SPACE = re.compile(f"[{_SPACES}]+")
_DIGITS = re.compile(f"[0-9]{{1,{MAX_DIGITS}}}")  # ASCII only: str.isdigit() accepts '²'
_SECONDS = re.compile(r"(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})(?:[eE][-+]?[0-9]{1,3})?")


# --- numbers and quoting ----------------------------------------------------------------------


def _ascii(text: Union[str, bytes]) -> str:
    return text.decode("ascii", "surrogateescape") if isinstance(text, bytes) else text


def parse_number(text: Union[str, bytes], allowed: range) -> Optional[int]:
    """The integer spelt by `text` if it is 1-19 ASCII digits and in `allowed`, else None.

    The one number parser of the reference: no sign, no spaces, no Unicode digits, and never
    Python's unbounded (or 4,300-digit-limited) `int()` on untrusted input."""
    text = _ascii(text)
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value in allowed else None


def parse_port(text: Union[str, bytes]) -> Optional[int]:
    """A TCP port 1-65535 written in ASCII digits, else None."""
    return parse_number(text, PORTS)


PORT_RULE = "must be an integer 1-65535"  # what parse_port accepts, for error messages


def parse_seconds(text: str) -> Optional[float]:
    """A finite non-negative duration in seconds (ASCII decimal, optional exponent), else None."""
    if not _SECONDS.fullmatch(text):
        return None
    value = float(text)
    return value if value != float("inf") else None


def quote(text: Union[str, bytes], limit: int = QUOTE_LIMIT) -> str:
    """`repr()` of at most the first `limit` characters of `text`, plus `...` when cut."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


# --- control requests (participant -> coordinator) ---------------------------------------------


@dataclass(frozen=True)
class Register:
    """`REGISTER <id> <host> <port>`: join the group; thread-B listens on host:port."""

    pid: str
    host: str
    port: int


@dataclass(frozen=True)
class Deregister:
    """`DEREGISTER <id>`: leave the group; nothing more is owed."""

    pid: str


@dataclass(frozen=True)
class Disconnect:
    """`DISCONNECT <id>`: go offline; messages are kept (td-bound)."""

    pid: str


@dataclass(frozen=True)
class Reconnect:
    """`RECONNECT <id> <host> <port>`: come back online at host:port."""

    pid: str
    host: str
    port: int


@dataclass(frozen=True)
class Msend:
    """`MSEND <id> <text>`: multicast an alphanumeric text to every member."""

    pid: str
    text: str


Request = Union[Register, Deregister, Disconnect, Reconnect, Msend]

_USAGE = {
    "REGISTER": "REGISTER <id> <host> <port>",
    "DEREGISTER": "DEREGISTER <id>",
    "DISCONNECT": "DISCONNECT <id>",
    "RECONNECT": "RECONNECT <id> <host> <port>",
    "MSEND": "MSEND <id> <message>",
}


class _Refused(Exception):
    """Internal: a malformed field; str() is the reason."""


def _field(regex: re.Pattern[str], value: str, what: str) -> str:
    if not regex.fullmatch(value):
        raise _Refused(f"bad {what} {quote(value)}")
    return value


def _port_field(text: str) -> int:
    port = parse_port(text)
    if port is None:
        raise _Refused(f"bad port {quote(text)}: {PORT_RULE}")
    return port


def parse_request(line: str) -> Union[Request, str]:
    """One request line (terminator optional; words split on whitespace, command in any case):
    the request, or the reason it is malformed (the text of the `ERR` reply)."""
    words = line.split()
    if not words:
        return "empty request"
    command, args = words[0].upper(), words[1:]
    usage = _USAGE.get(command)
    if usage is None:
        return f"unknown command {quote(words[0])}"
    if len(args) != len(usage.split()) - 1:
        return f"usage: {usage}"
    try:
        pid = _field(PARTICIPANT_ID, args[0], "id")
        if command in ("REGISTER", "RECONNECT"):
            cls = Register if command == "REGISTER" else Reconnect
            return cls(pid, _field(HOST, args[1], "host"), _port_field(args[2]))
        if command == "MSEND":
            return Msend(pid, _field(MESSAGE, args[1], "message (letters and digits only)"))
    except _Refused as exc:
        return str(exc)
    leave = Deregister if command == "DEREGISTER" else Disconnect
    return leave(pid)


def format_request(request: Request) -> str:
    """The request line for `request` (no terminator)."""
    if isinstance(request, (Register, Reconnect)):
        verb = "REGISTER" if isinstance(request, Register) else "RECONNECT"
        return f"{verb} {request.pid} {request.host} {request.port}"
    if isinstance(request, Msend):
        return f"MSEND {request.pid} {request.text}"
    verb = "DEREGISTER" if isinstance(request, Deregister) else "DISCONNECT"
    return f"{verb} {request.pid}"


# --- replies (coordinator -> participant, one per request) -------------------------------------


@dataclass(frozen=True)
class Ok:
    """`OK [detail]`: the request was valid and will be carried out; `detail` may be empty."""

    detail: str = ""


@dataclass(frozen=True)
class Err:
    """`ERR <reason>`: the request was refused and changed nothing."""

    reason: str


def reply_ok(detail: str = "") -> str:
    """The `OK` reply line, with `detail` (e.g. an msend's sequence number) when given."""
    return f"OK {detail}" if detail else "OK"


def reply_err(reason: str) -> str:
    """The `ERR <reason>` reply line; `reason` must be one line of ASCII."""
    return f"ERR {reason}"


def parse_reply(line: str) -> Union[Ok, Err, str]:
    """A reply line (surrounding whitespace ignored): Ok, Err (reason `refused` when empty), or
    an error string when the line is neither."""
    head, _, rest = line.strip().partition(" ")
    if head == "OK":
        return Ok(rest.strip())
    if head == "ERR":
        return Err(rest.strip() or "refused")
    return f"unexpected reply from coordinator: {quote(line.strip())}"


# --- delivery channel (coordinator -> thread-B, and its acks back) ----------------------------


@dataclass(frozen=True)
class Delivery:
    """`MSG <seq> <sender> <text>`: message `seq` of the group, sent by `sender`."""

    seq: int
    sender: str
    text: str


def format_delivery(seq: int, sender: str, text: str) -> str:
    """The `MSG` line delivering `text` from `sender` as message `seq` (no terminator)."""
    return f"MSG {seq} {sender} {text}"


def parse_delivery(line: Union[str, bytes]) -> Optional[Delivery]:
    """A `MSG` line (one trailing `\\r` ignored; fields separated by single spaces; `seq` in
    SEQS; `text` non-empty), else None. Bytes are read as ASCII with surrogateescape, so
    `text.encode("ascii", "surrogateescape")` gives back exactly the bytes received."""
    line = _ascii(line)
    if line.endswith("\r"):
        line = line[:-1]
    parts = line.split(" ")
    if len(parts) != 4 or parts[0] != "MSG" or not parts[3]:
        return None
    seq = parse_number(parts[1], SEQS)
    if seq is None:
        return None
    return Delivery(seq, parts[2], parts[3])


def format_ack(seq: int) -> str:
    """The cumulative acknowledgement of every message up to `seq` (no terminator)."""
    return f"ACK {seq}"


def parse_ack(line: Union[str, bytes]) -> Optional[int]:
    """The seq of an `ACK <seq>` line (whitespace-separated, `seq` in SEQS), else None."""
    words = _ASCII_SPACE.split(_ascii(line).strip(_SPACES))
    if len(words) != 2 or words[0] != "ACK":
        return None
    return parse_number(words[1], SEQS)
