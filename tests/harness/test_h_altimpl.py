"""The alternative implementation (tests/fixtures/altimpl), driven directly as processes without
the harness: the assignment's behaviour for the plain variant, and one smoke test per quirk flag
that shows the quirk is really there (so an adapter that ignores it would fail)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import IO, Optional

import pytest

from tests.procutil import REPO, Proc, ProcessGroup, free_port, port_bindable, wait_until

pytestmark = pytest.mark.process

ALT = REPO / "tests" / "fixtures" / "altimpl"
PROMPTS = re.compile(r"^(Enter config file name: )?(> )*")
LOG_LINE = re.compile(r"\[\d\d:\d\d:\d\d\.\d{3}\] from (\S+): ([A-Za-z0-9]+)")
REPLY_TIMEOUT = 12.0  # above the participant's 5 s connect + 5 s reply timeouts


def _pump(stream: IO[bytes], lines: queue.Queue) -> None:
    with contextlib.suppress(ValueError, OSError):  # the stream was closed by Proc.kill()
        for raw in iter(stream.readline, b""):
            lines.put(PROMPTS.sub("", raw.decode("utf-8", "replace").rstrip("\n")))
    lines.put(None)


def all_threads_stopped(pid: int) -> bool:
    """True once every thread of `pid` is in state T: SIGSTOP takes effect a moment after kill()
    returns (measured here: threads still running or sleeping in the first sample)."""
    tasks = Path(f"/proc/{pid}/task")
    return all(
        (task / "stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")
        for task in tasks.iterdir()
    )


class Coordinator:
    """An alternative coordinator process; `port` is where it listens (once `started`)."""

    def __init__(self, procs: ProcessGroup, workdir: Path, port: int, flags: tuple[str, ...]):
        self.port = port
        self.out = workdir / "coordinator.out"
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = procs.start(
            [sys.executable, str(ALT / "coordinator.py"), *flags],
            cwd=workdir,
            name="alt coordinator",
            stdin=subprocess.PIPE,
            stdout=open(self.out, "wb"),  # noqa: SIM115 - owned by the child
            stderr=subprocess.STDOUT,
        )

    def started(self) -> Coordinator:
        """Wait for the coordinator's `up on port N` line and check N."""
        wait_until(
            lambda: "up on port" in self.text() or self.proc.popen.poll() is not None,
            10,
            "coordinator start",
        )
        assert f"up on port {self.port}," in self.text(), self.text()
        return self

    def text(self) -> str:
        return self.out.read_text(errors="replace")


def start_coordinator(
    procs: ProcessGroup, workdir: Path, td: float, flags: tuple[str, ...] = ()
) -> Coordinator:
    """A plain coordinator (positional config) that accepts connections."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "coordinator.conf").write_text(f"{port}\n{td:g}\n")
    return Coordinator(procs, workdir, port, ("coordinator.conf", *flags)).started()


class Participant:
    """An alternative participant in `workdir` (its config and `messages.log` live there)."""

    def __init__(self, procs: ProcessGroup, workdir: Path, args: list[str]) -> None:
        self.procs = procs
        self.workdir = workdir
        self.args = args
        self.log = workdir / "messages.log"
        self.proc: Optional[Proc] = None
        self.lines: queue.Queue = queue.Queue()
        self.start()

    def start(self) -> None:
        """Start (or restart) the process with the same arguments."""
        self.lines = queue.Queue()
        self.proc = self.procs.start(
            [sys.executable, str(ALT / "participant.py"), *self.args],
            cwd=self.workdir,
            name=f"alt participant {self.workdir.name}",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.workdir / "participant.err", "ab"),  # noqa: SIM115 - child owns it
        )
        assert self.proc.popen.stdout is not None
        threading.Thread(
            target=_pump, args=(self.proc.popen.stdout, self.lines), daemon=True
        ).start()

    @property
    def popen(self) -> subprocess.Popen:
        assert self.proc is not None
        return self.proc.popen

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()

    def reply(self) -> Optional[str]:
        """The next reply line without its prompts (None at EOF)."""
        try:
            return self.lines.get(timeout=REPLY_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no reply within {REPLY_TIMEOUT}s: {self.stderr()}") from None

    def cmd(self, line: str, expect: str = "") -> str:
        """Send a command; its reply must start with `expect` (when given)."""
        self.send(line)
        reply = self.reply()
        assert reply is not None, f"{line!r}: participant exited; {self.stderr()}"
        assert reply.startswith(expect), f"{line!r} -> {reply!r}"
        return reply

    def stderr(self) -> str:
        path = self.workdir / "participant.err"
        return path.read_text(errors="replace") if path.exists() else ""

    def messages(self) -> list[tuple[str, str]]:
        """(sender, message) of each log line, which must all be in the documented format."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        parsed = [LOG_LINE.fullmatch(line) for line in lines]
        assert all(parsed), f"{self.log}: line not in [HH:MM:SS.mmm] from ID: MSG form: {lines}"
        return [(m.group(1), m.group(2)) for m in parsed if m]

    def wait_for(self, expected: list[tuple[str, str]], timeout: float = 5.0) -> None:
        """Wait until the log holds exactly `expected`, in order."""
        wait_until(lambda: len(self.messages()) >= len(expected), timeout, f"{expected}")
        assert self.messages() == expected


def participant(
    procs: ProcessGroup,
    root: Path,
    pid: str,
    coordinator_port: int,
    flags: tuple[str, ...] = (),
    config: Optional[str] = None,
) -> Participant:
    """Write `root/pid/participant.conf` (positional unless `config` is given) and start it."""
    workdir = root / f"p{pid}"
    workdir.mkdir(parents=True, exist_ok=True)
    text = config or f"{pid}\nmessages.log\n127.0.0.1:{coordinator_port}\n"
    (workdir / "participant.conf").write_text(text)
    args = [*flags] if "--config-from-stdin" in flags else ["participant.conf", *flags]
    return Participant(procs, workdir, args)


def m(n: int) -> tuple[str, str]:
    """The n-th message of the lifecycle test as (sender, token): all from 1 but the second."""
    return ("2" if n == 2 else "1", f"M{n:08d}")


def ports(n: int) -> list[int]:
    """`n` distinct ports that were free a moment ago."""
    chosen: set[int] = set()
    while len(chosen) < n:
        chosen.add(free_port())
    return sorted(chosen)


@pytest.mark.timeout(40)
def test_membership_lifecycle_with_temporally_bound_persistence(procs, tmp_path):
    td = 1.5
    coord = start_coordinator(procs, tmp_path / "c", td)
    a, b, c = (participant(procs, tmp_path, pid, coord.port) for pid in "123")
    pa, pb, pc, pc2, pc3, pb2 = ports(6)
    a.cmd(f"register {pa}", "Registered.")
    b.cmd(f"register {pb}", "Registered.")
    c.cmd(f"register {pc}", "Registered.")

    a.cmd("msend M00000001", "Sent.")  # the sender gets its own message too
    for p in (a, b, c):
        p.wait_for([("1", "M00000001")])

    c.cmd("disconnect", "Disconnected.")
    assert port_bindable(pc), "thread-B still holds its port after disconnect"
    b.cmd("msend M00000002", "Sent.")
    a.wait_for([("1", "M00000001"), ("2", "M00000002")])
    b.wait_for([("1", "M00000001"), ("2", "M00000002")])
    assert c.messages() == [("1", "M00000001")], "delivered while offline"

    c.cmd(f"reconnect {pc2}", "Reconnected.")  # within td: nothing is lost
    c.wait_for([("1", "M00000001"), ("2", "M00000002")])

    c.cmd("disconnect", "Disconnected.")
    a.cmd("msend M00000003", "Sent.")
    time.sleep(td + 0.6)  # the point of the test: c stays offline longer than td
    a.cmd("msend M00000004", "Sent.")
    c.cmd(f"reconnect {pc3}", "Reconnected.")  # beyond td: only the last td seconds
    c.wait_for([("1", "M00000001"), ("2", "M00000002"), ("1", "M00000004")])

    b.cmd("deregister", "Deregistered.")
    assert port_bindable(pb), "thread-B still holds its port after deregister"
    a.cmd("msend M00000005", "Sent.")
    b.cmd(f"register {pb2}", "Registered.")  # a new entrant: nothing from before
    a.cmd("msend M00000006", "Sent.")
    one, two, three, four, five, six = (m(i) for i in range(1, 7))
    b.wait_for([one, two, three, four, six])
    a.wait_for([one, two, three, four, five, six])
    c.wait_for([one, two, four, five, six])


@pytest.mark.timeout(40)
def test_dead_or_stopped_member_delays_no_one_and_its_messages_wait(procs, tmp_path):
    coord = start_coordinator(procs, tmp_path / "c", td=5)
    a, b, c = (participant(procs, tmp_path, pid, coord.port) for pid in "123")
    pa, pb, pc, pb2 = ports(4)
    a.cmd(f"register {pa}", "Registered.")
    b.cmd(f"register {pb}", "Registered.")
    c.cmd(f"register {pc}", "Registered.")

    assert b.proc is not None
    b.proc.kill()  # dead: its deliveries are refused
    os.killpg(c.popen.pid, signal.SIGSTOP)  # stopped: its deliveries are never acknowledged
    wait_until(lambda: all_threads_stopped(c.popen.pid), 5, "participant 3 stopped")
    start = time.monotonic()
    a.cmd("msend M00000001", "Sent.")
    a.wait_for([m(1)], timeout=1.0)
    assert time.monotonic() - start < 1.0, "a live member waited for a dead one"
    wait_until(
        lambda: "delivery to 3 failed" in coord.text(), 8, "the ack timeout for the stopped member"
    )
    os.killpg(c.popen.pid, signal.SIGCONT)

    b.start()  # same config, same log: the failed delivery is still owed to b
    b.cmd(f"reconnect {pb2}", "Reconnected.")
    b.wait_for([m(1)])
    # c logged the message it read late, but its ack came too late: the coordinator resends it
    # on reconnect and c must not log it twice.
    c.wait_for([m(1)])
    c.cmd(f"reconnect {pc}", "Reconnected.")
    a.cmd("msend M00000003", "Sent.")
    for p in (a, b, c):
        p.wait_for([m(1), m(3)])


def test_refusals_are_human_errors(procs, tmp_path):
    coord = start_coordinator(procs, tmp_path / "c", td=2)
    a = participant(procs, tmp_path, "1", coord.port)
    pa, pb = ports(2)
    a.cmd("msend M00000001", "Error: msend 1: not registered")
    a.cmd("disconnect", "Error: disconnect 1: not registered")
    a.cmd(f"Register {pa}", "Error: unknown command 'Register'")
    a.cmd("register 99999", "Error: bad port '99999'")
    a.cmd("register", "Error: register takes 1 argument(s)")
    a.cmd(f"register {pa}", "Registered.")
    a.cmd(f"register {pb}", "Error: register 1: already registered")
    assert port_bindable(pb), "a refused register kept its thread-B listening"
    a.cmd("msend hello!", "Error: message must be alphanumeric")
    a.cmd("quit", "Bye.")
    assert a.popen.wait(timeout=5) == 0
    assert port_bindable(pa)


def test_unreachable_coordinator_is_an_error_not_a_hang(procs, tmp_path):
    a = participant(procs, tmp_path, "1", free_port())
    port = free_port()
    assert a.cmd(f"register {port}", "Error: coordinator 127.0.0.1:").endswith("refused")
    assert port_bindable(port), "thread-B kept listening after a failed register"


@pytest.mark.parametrize(
    "program, flags, config, expected",
    [
        ("participant", (), "1\nmessages.log\n", "participant.conf:3: coordinator: missing"),
        (
            "participant",
            (),
            "1\nm.log\n127.0.0.1 4000\n",
            "participant.conf:3: coordinator: expected HOST:PORT, got '127.0.0.1 4000'",
        ),
        (
            "participant",
            ("--kv-config",),
            "id=1\nlogfile=m.log\n",
            "participant.conf:2: expected one of id, log, coordinator as key=value",
        ),
        (
            "participant",
            ("--kv-config",),
            "id=1\nlog=m\n",
            "participant.conf: coordinator: missing",
        ),
        ("coordinator", (), "4000\nabc\n", "coordinator.conf:2: td: expected seconds >= 0"),
        ("coordinator", (), "70000\n2\n", "coordinator.conf:1: port: port must be 1-65535"),
        ("coordinator", ("--kv-config",), "port=4000\n", "coordinator.conf: td: missing"),
    ],
)
def test_bad_config_is_one_line_naming_file_line_and_field(
    tmp_path, program, flags, config, expected
):
    name = f"{program}.conf"
    (tmp_path / name).write_text(config)
    done = subprocess.run(
        [sys.executable, str(ALT / f"{program}.py"), name, *flags],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr


# --- one smoke test per quirk flag ---------------------------------------------------------


def test_config_names_from_stdin(procs, tmp_path):
    port = free_port()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "coord.cfg").write_text(f"{port}\n2\n")
    coord = Coordinator(procs, tmp_path / "c", port, ("--config-from-stdin",))
    assert coord.proc.popen.stdin is not None
    coord.proc.popen.stdin.write(b"coord.cfg\n")
    coord.proc.popen.stdin.flush()
    coord.started()
    a = participant(procs, tmp_path, "1", port, ("--config-from-stdin",))
    a.send("participant.conf")
    a.cmd(f"register {free_port()}", "Registered.")
    a.cmd("msend M00000001", "Sent.")
    a.wait_for([m(1)])


def test_kv_config_files(procs, tmp_path):
    port = free_port()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "coordinator.conf").write_text(f"# comment\ntd = 2\nport = {port}\n")
    coord = Coordinator(procs, tmp_path / "c", port, ("coordinator.conf", "--kv-config"))
    coord.started()
    config = f"coordinator=127.0.0.1:{port}\nid=1\nlog=messages.log\n"
    a = participant(procs, tmp_path, "1", port, ("--kv-config",), config=config)
    a.cmd(f"register {free_port()}", "Registered.")
    a.cmd("msend M00000001", "Sent.")
    a.wait_for([m(1)])


def test_capitalised_commands(procs, tmp_path):
    coord = start_coordinator(procs, tmp_path / "c", td=2)
    a = participant(procs, tmp_path, "1", coord.port, ("--caps-commands",))
    pa, pa2 = ports(2)
    a.cmd(f"register {pa}", "Error: unknown command 'register'")
    a.cmd(f"Register {pa}", "Registered.")
    a.cmd("msend M00000001", "Error: unknown command 'msend'")
    a.cmd("Multicast M00000001", "Sent.")
    a.wait_for([m(1)])
    a.cmd("Disconnect", "Disconnected.")
    a.cmd(f"Reconnect {pa2}", "Reconnected.")
    a.cmd("Deregister", "Deregistered.")


def test_no_separator_log_is_bare_concatenation(procs, tmp_path):
    coord = start_coordinator(procs, tmp_path / "c", td=2)
    a = participant(procs, tmp_path, "1", coord.port, ("--no-separator",))
    a.cmd(f"register {free_port()}", "Registered.")
    a.cmd("msend M00000001", "Sent.")
    a.cmd("msend M00000002", "Sent.")
    expected = b"M00000001M00000002"
    wait_until(lambda: a.log.exists() and len(a.log.read_bytes()) >= len(expected), 5, "log")
    assert a.log.read_bytes() == expected


def test_rewrite_log_writes_every_message_again(procs, tmp_path):
    coord = start_coordinator(procs, tmp_path / "c", td=2)
    a = participant(procs, tmp_path, "1", coord.port, ("--rewrite-log",))
    a.cmd(f"register {free_port()}", "Registered.")
    a.cmd("msend M00000001", "Sent.")
    a.wait_for([m(1)])
    first_line = a.log.read_text()
    a.log.write_text("")  # an appending participant would leave only the next message
    a.cmd("msend M00000002", "Sent.")
    a.wait_for([m(1), ("1", "M00000002")])
    assert a.log.read_text().startswith(first_line), "the earlier line was not rewritten as is"


def test_delete_log_on_deregister(procs, tmp_path):
    coord = start_coordinator(procs, tmp_path / "c", td=2)
    a = participant(procs, tmp_path, "1", coord.port, ("--delete-log-on-deregister",))
    a.cmd(f"register {free_port()}", "Registered.")
    a.cmd("msend M00000001", "Sent.")
    a.wait_for([m(1)])
    a.cmd("deregister", "Deregistered.")
    assert not a.log.exists()
    a.cmd(f"register {free_port()}", "Registered.")
    a.cmd("msend M00000002", "Sent.")
    a.wait_for([("1", "M00000002")])


def test_exit_on_deregister(procs, tmp_path):
    coord = start_coordinator(procs, tmp_path / "c", td=2)
    a = participant(procs, tmp_path, "1", coord.port, ("--exit-on-deregister",))
    port = free_port()
    a.cmd(f"register {port}", "Registered.")
    a.cmd("deregister", "Deregistered.")
    assert a.popen.wait(timeout=5) == 0
    assert a.reply() is None
    assert port_bindable(port)
    a.start()  # what the harness does before the next command (restart_on_exit)
    a.cmd(f"register {port}", "Registered.")
    a.cmd("msend M00000001", "Sent.")
    a.wait_for([m(1)])


def _free_four_digit_port() -> int:
    rng = random.Random()
    return wait_until(
        lambda: next((p for p in [rng.randint(4000, 9999)] if port_bindable(p)), 0),
        5,
        "a free 4-digit port",
    )


def test_four_digit_ports_only(procs, tmp_path):
    coord = start_coordinator(procs, tmp_path / "c", td=2)
    a = participant(procs, tmp_path, "1", coord.port, ("--four-digit-ports",))
    a.cmd("register 41001", "Error: port must have exactly 4 digits")
    a.cmd("register 999", "Error: port must have exactly 4 digits")
    a.cmd(f"register {_free_four_digit_port()}", "Registered.")
    a.cmd("msend M00000001", "Sent.")
    a.wait_for([m(1)])


def test_fixed_port_ignores_the_configured_one(procs, tmp_path):
    configured, fixed = ports(2)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "coordinator.conf").write_text(f"{configured}\n2\n")
    flags = ("coordinator.conf", "--fixed-port", str(fixed))
    Coordinator(procs, tmp_path / "c", fixed, flags).started()
    assert port_bindable(configured)
    a = participant(procs, tmp_path, "1", fixed)
    a.cmd(f"register {free_port()}", "Registered.")
    a.cmd("msend M00000001", "Sent.")
    a.wait_for([m(1)])


# --- the coordinator's pure core, with the clock passed in ---------------------------------


def _group_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("altimpl_group", ALT / "group.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


GROUP = _group_module()


def _apply(group, line: str, now: float) -> list[str]:
    request = GROUP.parse_request(line.encode())
    assert not isinstance(request, str), request
    assert group.refusal(request) is None
    return group.apply(request, now)


def _owed(group, pid: str) -> list[str]:
    return [message.text for message in group.members[pid].pending.values()]


def test_core_offline_exactly_td_loses_nothing_beyond_td_keeps_the_last_td_seconds():
    group = GROUP.Group(td=2.0)
    for pid in ("1", "2", "3"):
        _apply(group, f'{{"op":"register","id":"{pid}","host":"h","port":4000}}', 0.0)
    _apply(group, '{"op":"msend","id":"1","msg":"unacked"}', 0.5)  # pending before going offline
    _apply(group, '{"op":"disconnect","id":"2"}', 1.0)
    _apply(group, '{"op":"disconnect","id":"3"}', 1.0)
    _apply(group, '{"op":"msend","id":"1","msg":"old"}', 1.0)
    _apply(group, '{"op":"msend","id":"1","msg":"new"}', 2.5)
    assert _apply(group, '{"op":"reconnect","id":"2","host":"h","port":4001}', 3.0) == ["2"]
    assert _owed(group, "2") == ["unacked", "old", "new"]  # offline exactly td: everything
    _apply(group, '{"op":"reconnect","id":"3","host":"h","port":4002}', 3.01)
    assert _owed(group, "3") == ["new"]  # offline past td: only the last td seconds
    assert _owed(group, "1") == ["unacked", "old", "new"]  # online, not yet acknowledged


def test_core_failed_delivery_keeps_the_message_and_deregister_forgets_everything():
    group = GROUP.Group(td=5.0)
    _apply(group, '{"op":"register","id":"1","host":"h","port":4000}', 0.0)
    _apply(group, '{"op":"msend","id":"1","msg":"a"}', 1.0)
    member, (message,) = group.owed_now("1", 10)
    assert group.failed("1", member.epoch, 1.5) and group.owed_now("1", 10) is None
    assert not group.failed("1", member.epoch, 1.6)  # that online period already ended
    _apply(group, '{"op":"reconnect","id":"1","host":"h","port":4001}', 2.0)
    assert group.owed_now("1", 10)[1] == [message]
    group.delivered("1", message.seq)
    assert group.owed_now("1", 10) is None
    _apply(group, '{"op":"deregister","id":"1"}', 3.0)
    assert group.refusal(GROUP.parse_request(b'{"op":"msend","id":"1","msg":"b"}')) == (
        "not registered"
    )


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"register 1", "not a JSON object"),
        (b'{"op":"join","id":"1"}', "unknown op 'join'"),
        (b'{"op":"register","id":"1","host":"h","port":"4000"}', "port must be an integer"),
        (b'{"op":"msend","id":"1","msg":"a b"}', "msg must be alphanumeric"),
        (b'{"op":"deregister","id":"a/b"}', "id must be a string"),
    ],
)
def test_core_refuses_malformed_requests(line, reason):
    assert GROUP.parse_request(line).startswith(reason)
