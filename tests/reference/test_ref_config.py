"""Config files of the reference coordinator and participant, and how the participant's command
line reports a bad one (one line on stderr naming file and line, exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reference.config import (
    ConfigError,
    CoordinatorConfig,
    ParticipantConfig,
    load_coordinator_config,
    load_participant_config,
)
from tests.procutil import REPO


def _write(tmp_path: Path, text: str, name: str = "test.conf") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5000\n3\n", CoordinatorConfig(port=5000, td=3.0)),
        ("5000\n2.5\n", CoordinatorConfig(port=5000, td=2.5)),
        ("  65535  \r\n0\r\n", CoordinatorConfig(port=65535, td=0.0)),
        ("1\n10\nextra lines are ignored\n", CoordinatorConfig(port=1, td=10.0)),
        ("\ufeff5000\n3", CoordinatorConfig(port=5000, td=3.0)),  # BOM, no final newline
    ],
)
def test_good_coordinator_configs(tmp_path: Path, text: str, expected: CoordinatorConfig) -> None:
    assert load_coordinator_config(_write(tmp_path, text)) == expected


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("", ":1:", "expected 2 lines, file has 0"),
        ("5000\n", ":2:", "expected 2 lines, file has 1"),
        ("http\n3\n", ":1:", "port must be an integer 1-65535, got 'http'"),
        ("0\n3\n", ":1:", "got '0'"),
        ("65536\n3\n", ":1:", "got '65536'"),
        ("-1\n3\n", ":1:", "got '-1'"),
        ("\u00b2\n3\n", ":1:", "port must be an integer"),
        ("5000\nsoon\n", ":2:", "td must be a non-negative number of seconds, got 'soon'"),
        ("5000\n-1\n", ":2:", "got '-1'"),
        ("5000\nnan\n", ":2:", "got 'nan'"),
        ("5000\ninf\n", ":2:", "got 'inf'"),
        ("5000\n\n", ":2:", "got ''"),
    ],
)
def test_bad_coordinator_configs(tmp_path: Path, text: str, where: str, what: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_coordinator_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}{where}") and what in message
    assert "\n" not in message


def _pc(pid: str, log: str, host: str, port: int) -> ParticipantConfig:
    return ParticipantConfig(pid, Path(log), host, port)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7\nlog7.txt\n127.0.0.1 5000\n", _pc("7", "log7.txt", "127.0.0.1", 5000)),
        ("p-1.a_b\nlogs/p.log\nlocalhost:6000\n", _pc("p-1.a_b", "logs/p.log", "localhost", 6000)),
        (
            " 2 \r\n /tmp/x.log \r\n  example.org   7000  \r\n",
            _pc("2", "/tmp/x.log", "example.org", 7000),
        ),
        ("3\nl\n::1 5000\n", _pc("3", "l", "::1", 5000)),
    ],
)
def test_good_participant_configs(tmp_path: Path, text: str, expected: ParticipantConfig) -> None:
    assert load_participant_config(_write(tmp_path, text)) == expected


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("", ":1:", "expected 3 lines, file has 0"),
        ("1\nlog\n", ":3:", "expected 3 lines, file has 2"),
        ("two words\nlog\nh 1\n", ":1:", "participant ID must be letters, digits"),
        ("\nlog\nh 1\n", ":1:", "participant ID"),
        ("1\n\nh 1\n", ":2:", "message log file name is empty"),
        ("1\nlog\nlocalhost\n", ":3:", "must be 'HOST PORT' or 'HOST:PORT', got 'localhost'"),
        ("1\nlog\nh 1 2\n", ":3:", "got 'h 1 2'"),
        ("1\nlog\n:5000\n", ":3:", "got ':5000'"),
        ("1\nlog\nh:port\n", ":3:", "port must be an integer 1-65535, got 'port'"),
        ("1\nlog\nh 70000\n", ":3:", "got '70000'"),
        ("1\nlog\nh:0\n", ":3:", "got '0'"),
    ],
)
def test_bad_participant_configs(tmp_path: Path, text: str, where: str, what: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_participant_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}{where}") and what in message
    assert "\n" not in message


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.conf: config file not found$"):
        load_participant_config(tmp_path / "missing.conf")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_coordinator_config(tmp_path)  # a directory
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_participant_config(binary)


def _run_participant(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reference.participant", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.timeout(30)
def test_cli_missing_config_exits_2_with_one_line(tmp_path: Path) -> None:
    result = _run_participant(["missing.conf"], tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "participant: missing.conf: config file not found\n"


@pytest.mark.timeout(30)
def test_cli_bad_config_names_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, "1\nlog\nlocalhost:http\n", "p.conf")
    result = _run_participant(["p.conf"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("participant: p.conf:3: port must be an integer")
    assert result.stderr.count("\n") == 1


@pytest.mark.timeout(30)
def test_cli_usage_and_unopenable_log(tmp_path: Path) -> None:
    result = _run_participant([], tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        "participant: usage: python -m reference.participant CONFIG\n",
    )
    _write(tmp_path, "1\nno/such/dir/log\n127.0.0.1 5000\n", "p.conf")
    result = _run_participant(["p.conf"], tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "participant: no/such/dir/log: cannot open log file: no such file or directory\n"
    )


@pytest.mark.timeout(30)
def test_cli_log_is_relative_to_the_working_directory_and_eof_exits_0(tmp_path: Path) -> None:
    _write(tmp_path, "1\nmy.log\n127.0.0.1 5000\n", "p.conf")
    result = _run_participant([str(tmp_path / "p.conf")], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "my.log").exists()


# --- regressions (issue 12): every number is read by the one bounded ASCII parser ---------------


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("9" * 5000 + "\n3\n", ":1:", "port must be an integer 1-65535, got '9999"),  # int() raised
        ("5000\n\u0661\u0662\n", ":2:", "td must be a non-negative number"),  # float() read 12
        ("5000\n\uff13\n", ":2:", "td must be a non-negative number"),  # fullwidth 3
        ("5000\n1_0\n", ":2:", "td must be a non-negative number"),
        ("5000\n" + "1" * 5000 + "\n", ":2:", "..."),
    ],
)
def test_config_numbers_are_bounded_ascii(tmp_path: Path, text: str, where: str, what: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_coordinator_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}{where}") and what in message
    assert len(message) < len(str(path)) + 120


@pytest.mark.parametrize("port", ["9" * 5000, "\u0661\u0662\u0663\u0664\u0665", "\u00b2"])
def test_participant_config_port_is_bounded_ascii(tmp_path: Path, port: str) -> None:
    path = _write(tmp_path, f"1\nlog\nh {port}\n")
    with pytest.raises(ConfigError, match="port must be an integer 1-65535"):
        load_participant_config(path)
