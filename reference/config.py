"""Config files of the coordinator and the participant, as the assignment defines them.

Every malformed config raises `ConfigError`, whose message names the file and line in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reference.wire import PARTICIPANT_ID, PORT_RULE, parse_port, parse_seconds, quote


class ConfigError(Exception):
    """A config file that is missing, unreadable or malformed; str() is one line."""


@dataclass(frozen=True)
class CoordinatorConfig:
    """Line 1: the port the coordinator listens on; line 2: td in seconds."""

    port: int
    td: float


@dataclass(frozen=True)
class ParticipantConfig:
    """Line 1: ID; line 2: message log file; line 3: coordinator `HOST PORT` or `HOST:PORT`."""

    participant_id: str
    log_path: Path
    coordinator_host: str
    coordinator_port: int


def _read_lines(path: Path, needed: int) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    lines = [line.strip() for line in text.splitlines()]
    if len(lines) < needed:
        raise ConfigError(
            f"{path}:{len(lines) + 1}: expected {needed} lines, file has {len(lines)}"
        )
    return lines


def _parse_port(path: Path, line_no: int, text: str) -> int:
    port = parse_port(text)
    if port is None:
        raise ConfigError(f"{path}:{line_no}: port {PORT_RULE}, got {quote(text)}")
    return port


def _parse_td(path: Path, line_no: int, text: str) -> float:
    td = parse_seconds(text)
    if td is None:
        raise ConfigError(
            f"{path}:{line_no}: td must be a non-negative number of seconds, got {quote(text)}"
        )
    return td


def _split_address(path: Path, line_no: int, text: str) -> tuple[str, int]:
    parts = text.split()
    if len(parts) == 1 and parts[0].count(":") == 1:
        parts = parts[0].split(":")
    if len(parts) != 2 or not parts[0]:
        raise ConfigError(
            f"{path}:{line_no}: coordinator address must be 'HOST PORT' or 'HOST:PORT',"
            f" got {quote(text)}"
        )
    return parts[0], _parse_port(path, line_no, parts[1])


def load_coordinator_config(path: str | Path) -> CoordinatorConfig:
    """Read a coordinator config: port on line 1, td on line 2."""
    path = Path(path)
    lines = _read_lines(path, 2)
    return CoordinatorConfig(port=_parse_port(path, 1, lines[0]), td=_parse_td(path, 2, lines[1]))


def load_participant_config(path: str | Path) -> ParticipantConfig:
    """Read a participant config: ID, log file (relative to the config's cwd), coordinator."""
    path = Path(path)
    lines = _read_lines(path, 3)
    if not PARTICIPANT_ID.fullmatch(lines[0]):
        raise ConfigError(
            f"{path}:1: participant ID must be letters, digits, '_', '.' or '-',"
            f" got {quote(lines[0])}"
        )
    if not lines[1]:
        raise ConfigError(f"{path}:2: message log file name is empty")
    host, port = _split_address(path, 3, lines[2])
    return ParticipantConfig(
        participant_id=lines[0],
        log_path=Path(lines[1]),
        coordinator_host=host,
        coordinator_port=port,
    )
