"""harness.running.procs against real programs: hostile stand-ins (crash at start, never
listen, hang, ignore SIGTERM, fork a survivor, flood output) never hang the harness or outlive
the run; the listening port is seen without a connection; output is recorded in order,
capped, drained."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.running.procs import (
    MAX_LINE,
    LineSplitter,
    StartError,
    Supervisor,
    decode_line,
    exit_phrase,
    listening_inodes,
    netlink_listeners,
    parse_listeners,
    parse_stat,
    proc_listeners,
)
from harness.running.recorder import Recorder
from tests.procutil import REPO, free_port, wait_until

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
PY_ENV = {"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
GRACE = 0.5
CLOSE_BOUND = GRACE + 3.0  # the contract: close() takes at most grace + 3 s


def script(name: str, *args: str) -> list[str]:
    return [sys.executable, str(HOSTILE / f"{name}.py"), *args]


def survivors(run_id: str) -> list[psutil.Process]:
    """Live processes (zombies are dead) whose environment carries PAMS_RUN_ID = run_id."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("PAMS_RUN_ID") == run_id and proc.status() != "zombie":
                found.append(proc)
        except psutil.Error:
            continue
    return found


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Run:
    """A real Recorder writing a trace in tmp_path and a Supervisor emitting into it."""

    def __init__(self, tmp_path: Path, output_cap: int = 2000) -> None:
        self.dir = tmp_path
        self.run_id = f"test-{uuid.uuid4().hex}"
        self.recorder = Recorder(tmp_path / "trace.jsonl", {"run_id": self.run_id})
        self.exits: list[tuple[str, int]] = []
        self.sup = Supervisor(
            self.run_id,
            self.recorder.emit,
            output_cap=output_cap,
            on_exit=lambda target, rc: self.exits.append((target, rc)),
        )
        self.lines: list[tuple[str, str, str]] = []  # (target, stream, clean line)

    def start(self, target: str, argv: list[str], stdin: bool = True, **env: str):
        return self.sup.start(
            target,
            argv,
            cwd=self.dir,
            env={**PY_ENV, **env},
            stdin=stdin,
            on_line=lambda stream, line: self.lines.append((target, stream, line)),
        )

    def saw(self, target: str, text: str) -> bool:
        return any(t == target and text in line for t, _, line in list(self.lines))

    def events(self, kind: Optional[str] = None) -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in (self.dir / "trace.jsonl").read_text().splitlines()]
        return [row for row in rows if kind is None or row["type"] == kind]

    def close_timed(self, grace: float = GRACE) -> float:
        began = time.monotonic()
        self.sup.close(grace)
        return time.monotonic() - began


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    r = Run(tmp_path)
    try:
        yield r
    finally:
        r.sup.close()
        r.recorder.finish()


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    made: list[Run] = []

    def make(**kwargs: Any) -> Run:
        made.append(Run(tmp_path, **kwargs))
        return made[-1]

    try:
        yield make
    finally:
        for r in made:
            r.sup.close()
            r.recorder.finish()


def assert_nothing_left(r: Run, *pids: int) -> None:
    assert survivors(r.run_id) == []
    for pid in pids:
        assert gone(pid), f"process {pid} outlived the run"
    for child in r.sup.children:
        assert child.returncode is not None, f"{child.target} was not reaped"
        assert child.descendants() == []


# --- pure pieces -------------------------------------------------------------------------


def test_splitter_cuts_long_runs_and_keeps_partial_lines() -> None:
    splitter = LineSplitter(10)
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\nde") == [b"abc"]
    assert splitter.feed(b"x" * 25) == [b"dexxxxxxxx", b"x" * 10]
    assert splitter.feed(b"\n\n") == [b"x" * 7, b""]
    assert splitter.feed(b"y" * 10 + b"\n") == [b"y" * 10]  # exactly max: one line, no empty one
    assert splitter.feed(b"tail") == []
    assert splitter.flush() == [b"tail"]
    assert splitter.flush() == []


@given(st.lists(st.binary(max_size=40), max_size=30), st.integers(1, 12))
def test_splitter_loses_nothing_and_bounds_every_piece(chunks: list[bytes], max_len: int) -> None:
    splitter = LineSplitter(max_len)
    pieces = [piece for chunk in chunks for piece in splitter.feed(chunk)] + splitter.flush()
    assert all(len(piece) <= max_len for piece in pieces)
    assert b"".join(pieces) == b"".join(chunks).replace(b"\n", b"")


def test_decode_line_keeps_raw_text_and_cleans_for_matching() -> None:
    assert decode_line(b"\x1b[1;32mok\x1b[0m register\r") == (
        "\x1b[1;32mok\x1b[0m register",
        "ok register",
    )
    assert decode_line(b"50%\r100% \xff") == ("50%\r100% \ufffd", "50%100% \ufffd")


def test_parse_listeners_reads_ipv4_and_ipv6_tables() -> None:
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
        "  timeout inode\n"
        "   0: 0100007F:A028 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000"
        "        0 4711 1 0000000000000000 100 0 0 10 0\n"
        "   1: 0100007F:A029 0100007F:A028 01 00000000:00000000 00:00000000 00000000  1000"
        "        0 4712 1 0000000000000000 20 4 30 10 -1\n"
    )
    tcp6 = (
        "  sl  local_address                         remote_address                        st"
        " tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000  1000        0 99 1 0000000000000000 100 0 0"
        " 10 0\n"
    )
    assert parse_listeners(tcp) == [(41000, 4711)]  # the ESTABLISHED row on 41001 is not one
    assert parse_listeners(tcp6) == [(8080, 99)]


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_listening_inodes_sees_a_real_listener_and_not_a_bound_socket(
    family: socket.AddressFamily, host: str
) -> None:
    if family == socket.AF_INET6 and not ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    with socket.socket(family) as listener, socket.socket(family) as bound:
        listener.bind((host, 0))
        bound.bind((host, 0))
        port, bound_port = listener.getsockname()[1], bound.getsockname()[1]
        assert listening_inodes(port) == set()
        listener.listen()
        mine = (port, os.fstat(listener.fileno()).st_ino)
        assert listening_inodes(port) == {mine[1]}
        assert listening_inodes(bound_port) == set()
        assert mine in proc_listeners()  # the /proc fallback agrees with netlink
        assert mine in netlink_listeners()
    assert listening_inodes(port) == set()


def test_parse_stat_survives_odd_program_names() -> None:
    text = b"4242 (evil) S 1 (x) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23\n"
    fields = b"S 17 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987654 0 0"
    stat = parse_stat(4242, b"4242 (a) b) c) " + fields)
    assert (stat.state, stat.ppid, stat.pgid, stat.start) == ("S", 17, 4242, 987654)
    assert parse_stat(4242, text).state == "R"


def test_exit_phrase_names_codes_and_signals() -> None:
    assert exit_phrase(3) == "exited with code 3"
    assert exit_phrase(-signal.SIGKILL) == "was killed by SIGKILL"
    assert exit_phrase(-200) == "was killed by signal 200"


# --- start and wait_listening ---------------------------------------------------------------


@pytest.mark.process
@pytest.mark.timeout(20)
def test_missing_program_is_a_one_line_start_error(run: Run, tmp_path: Path) -> None:
    with pytest.raises(StartError) as missing:
        run.start("coordinator", ["no-such-program-pams", "x.conf"])
    assert str(missing.value) == (
        "coordinator: cannot start 'no-such-program-pams': No such file or directory"
    )
    not_executable = tmp_path / "Coordinator.class"
    not_executable.write_text("")
    with pytest.raises(StartError) as denied:
        run.start("1", [str(not_executable)])
    assert str(denied.value) == f"1: cannot start '{not_executable}': Permission denied"
    with pytest.raises(StartError, match="working directory"):
        run.sup.start("2", script("never_listen"), cwd=tmp_path / "missing", env={})
    assert run.events("process") == []
    assert threading.active_count() < 10  # no reader threads left behind by failed starts


@pytest.mark.process
@pytest.mark.timeout(20)
def test_crash_at_start_names_exit_code_and_last_stderr_line(run: Run) -> None:
    port = free_port()
    child = run.start("coordinator", script("crash_at_start", "c.conf"))
    began = time.monotonic()
    with pytest.raises(StartError) as crash:
        run.sup.wait_listening(port, child, timeout=10.0)
    assert time.monotonic() - began < 5.0
    assert str(crash.value) == (
        f"coordinator exited with code 3 before listening on port {port};"
        " last output: fatal: cannot read config ['c.conf']"
    )
    wait_until(lambda: run.exits, 5, "on_exit")
    assert run.exits == [("coordinator", 3)]
    process = run.events("process")
    assert [(e["event"], e.get("returncode")) for e in process] == [("start", None), ("exit", 3)]
    outputs = run.events("output")
    assert {(e["stream"], e["line"]) for e in outputs} == {
        ("stdout", "starting up"),
        ("stderr", "fatal: cannot read config ['c.conf']"),
    }
    assert max(e["t"] for e in outputs) <= process[-1]["t"]  # last lines come before the exit
    assert run.close_timed() < CLOSE_BOUND
    assert_nothing_left(run)
    assert [e["event"] for e in run.events("process")] == ["start", "exit"]  # no teardown kill


@pytest.mark.process
@pytest.mark.timeout(20)
def test_never_listen_times_out_naming_the_port(run: Run) -> None:
    port = free_port()
    child = run.start("coordinator", script("never_listen"))
    wait_until(lambda: run.saw("coordinator", "started"), 5, "its first line")
    began = time.monotonic()
    with pytest.raises(StartError) as late:
        run.sup.wait_listening(port, child, timeout=1.0)
    assert 1.0 <= time.monotonic() - began < 3.0
    assert str(late.value) == (
        f"coordinator did not listen on port {port} within 1.0 s;"
        " last output: started, not listening"
    )
    assert child.alive()
    assert run.close_timed() < CLOSE_BOUND
    assert_nothing_left(run, child.pid)
    assert child.returncode == -signal.SIGTERM


@pytest.mark.process
@pytest.mark.timeout(30)
def test_reference_coordinator_is_seen_listening_without_a_connection(run: Run) -> None:
    port = free_port()
    config = run.dir / "coordinator.conf"
    config.write_text(f"{port}\n2\n")
    child = run.start("coordinator", [sys.executable, "-m", "reference.coordinator", str(config)])
    run.sup.wait_listening(port, child, timeout=10.0)
    wait_until(lambda: run.saw("coordinator", f"listening on 0.0.0.0:{port}"), 5, "its log line")
    # Positive control: an empty connection IS logged by this coordinator ...
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    wait_until(lambda: run.saw("coordinator", "closed without a request"), 5, "the logged probe")
    # ... and the only one it logged is ours: wait_listening never connected.
    logged = [line for t, _, line in run.lines if "listening on" not in line]
    assert len(logged) == 1, logged
    assert run.close_timed() < CLOSE_BOUND
    assert_nothing_left(run, child.pid)


@pytest.mark.process
@pytest.mark.timeout(20)
@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_listener_is_detected_and_owner_check_tells_whose_it_is(run: Run) -> None:
    port = free_port()
    child = run.start("coordinator", script("listen_ipv6", str(port)))
    run.sup.wait_listening(port, child, timeout=10.0, require_owner=True)
    assert run.saw("coordinator", "listening on ::1") or child.alive()
    other = run.start("1", script("never_listen"))
    with pytest.raises(StartError, match=f"did not listen on port {port} within 0.3 s"):
        run.sup.wait_listening(port, other, timeout=0.3, require_owner=True)
    run.sup.wait_listening(port, other, timeout=0.3)  # without the owner check: any listener
    assert run.close_timed() < CLOSE_BOUND
    assert_nothing_left(run)


# --- output and stdin -----------------------------------------------------------------------


@pytest.mark.process
@pytest.mark.timeout(20)
def test_output_lines_recorded_in_order_per_stream_with_raw_text(run: Run) -> None:
    child = run.start("1", script("output_shapes"))
    child.write_line("hello")
    wait_until(lambda: run.saw("1", "echo hello"), 5, "the echo")
    outputs = run.events("output")
    stdout = [e["line"] for e in outputs if e["stream"] == "stdout"]
    stderr = [e["line"] for e in outputs if e["stream"] == "stderr"]
    assert stdout == [
        *(f"out {i}" for i in range(1, 6)),
        "\x1b[32mok\x1b[0m green",
        "z" * MAX_LINE,
        "z" * MAX_LINE,
        "z" * (5000 - 2 * MAX_LINE),
        "bad \ufffd byte",
        "> echo hello",  # the prompt without newline prefixes the next line
    ]
    assert stderr == [f"err {i}" for i in range(1, 6)]
    assert all(e["target"] == "1" for e in outputs)
    times = [e["t"] for e in run.events()[1:]]
    assert times == sorted(times)
    assert ("1", "stdout", "ok green") in run.lines  # callbacks see ANSI-free text


@pytest.mark.process
@pytest.mark.timeout(20)
def test_a_failing_line_callback_is_noted_once_and_reading_goes_on(run: Run) -> None:
    def broken(stream: str, line: str) -> None:
        raise ValueError("runner bug")

    child = run.sup.start("1", script("output_shapes"), run.dir, PY_ENV, on_line=broken)
    child.write_line("hello")
    stdout = lambda: [e["line"] for e in run.events("output") if e["stream"] == "stdout"]  # noqa: E731
    wait_until(lambda: "> echo hello" in stdout(), 5, "the echo recorded")
    child.write_line("again")
    wait_until(lambda: "> echo again" in stdout(), 5, "the second echo recorded")
    notes = [e["line"] for e in run.events("output") if e["stream"] == "harness"]
    assert sorted(notes) == [
        "[pams: error handling stderr lines (noted once): ValueError('runner bug')]",
        "[pams: error handling stdout lines (noted once): ValueError('runner bug')]",
    ]


@pytest.mark.process
@pytest.mark.timeout(20)
def test_stdin_lines_reach_the_program_and_never_block_the_caller(run: Run) -> None:
    hang = run.start("1", script("hang_on_command"))
    wait_until(lambda: run.saw("1", "ready"), 5, "ready")
    hang.write_line("register 41001")
    wait_until(lambda: run.saw("1", "got register 41001"), 5, "the command read")
    deaf = run.start("2", script("never_listen"))  # never reads its stdin
    began = time.monotonic()
    for _ in range(200):
        deaf.write_line("msend " + "M" * 10_000)  # 2 MB: far more than a pipe holds
    assert time.monotonic() - began < 1.0
    assert run.close_timed() < CLOSE_BOUND
    assert_nothing_left(run, hang.pid, deaf.pid)


@pytest.mark.process
@pytest.mark.timeout(20)
def test_writing_to_a_closed_stdin_is_noted_once(run: Run) -> None:
    child = run.start("1", script("crash_at_start"))
    assert child.wait(5.0)
    child.write_line("register 41001")
    child.write_line("register 41002")
    notes = lambda: [e for e in run.events("output") if e["stream"] == "harness"]  # noqa: E731
    wait_until(notes, 5, "the closed-stdin note")
    child.write_line("register 41003")
    child.close_stdin()
    run.sup.close()
    assert [e["line"] for e in notes()] == [
        "[pams: the program closed its stdin; later input is dropped]"
    ]
    silent = Supervisor(f"test-{uuid.uuid4().hex}", run.recorder.emit)
    try:
        no_stdin = silent.start("3", script("never_listen"), run.dir, {}, stdin=False)
        with pytest.raises(RuntimeError, match="started without stdin"):
            no_stdin.write_line("x")
    finally:
        silent.close()
    assert gone(no_stdin.pid)


@pytest.mark.process
@pytest.mark.timeout(30)
def test_flood_is_capped_drained_and_does_not_block_or_bloat_the_harness(
    make_run: Callable[..., Run],
) -> None:
    r = make_run(output_cap=100)
    seen = {"lines": 0, "longest": 0}

    def count(stream: str, line: str) -> None:
        seen["lines"] += 1
        seen["longest"] = max(seen["longest"], len(line))

    me = psutil.Process()
    rss_before = me.memory_info().rss
    child = r.sup.start("1", script("flood_stdout"), r.dir, PY_ENV, on_line=count)
    rss_peak, worst_gap, rounds, last = rss_before, 0.0, 0, time.monotonic()
    end = last + 2.0
    while time.monotonic() < end:
        # It never reads stdin: 200 x 1 KB overfill the pipe, yet must not block us.
        child.write_line("msend " + "M" * 1000)
        time.sleep(0.01)
        now = time.monotonic()
        worst_gap, last, rounds = max(worst_gap, now - last), now, rounds + 1
        rss_peak = max(rss_peak, me.memory_info().rss)
    # The reader thread shares the GIL but must leave this thread running: the bounds are wide
    # because CI machines stall threads for a few hundred ms when overloaded.
    assert worst_gap < 1.5 and rounds >= 20, f"stalled {worst_gap:.2f}s, {rounds} rounds"
    assert rss_peak - rss_before < 50 * 2**20
    assert seen["lines"] > 10 * 100  # kept draining far past the cap
    assert seen["longest"] == MAX_LINE  # the 5000-byte runs were cut into pieces
    assert r.close_timed() < CLOSE_BOUND
    lines = [e["line"] for e in r.events("output") if e["stream"] == "stdout"]
    assert len(lines) == 101
    assert lines[-1] == "[pams: output truncated after 100 lines]"
    assert all(line.startswith("flood ") for line in lines[:-1])
    assert_nothing_left(r, child.pid)


# --- faults: kill, pause, resume --------------------------------------------------------------


def forked_pid(r: Run) -> int:
    wait_until(lambda: r.saw("1", "child "), 5, "the fork")
    return int(next(line for _, _, line in r.lines if line.startswith("child ")).split()[1])


@pytest.mark.process
@pytest.mark.timeout(20)
def test_kill_sigkills_the_whole_group_and_records_kill_not_exit(run: Run) -> None:
    child = run.start("1", script("busy_threads", "idle"))
    member = forked_pid(run)
    child.kill()
    assert child.returncode == -signal.SIGKILL
    wait_until(lambda: gone(member), 5, "the group member to die")
    child.kill()  # again: nothing more happens, nothing more recorded
    assert [e["event"] for e in run.events("process")] == ["start", "kill"]
    assert run.events("process")[-1]["returncode"] == -signal.SIGKILL
    assert run.exits == []
    run.sup.close()
    assert [e["event"] for e in run.events("process")] == ["start", "kill"]


@pytest.mark.process
@pytest.mark.timeout(20)
def test_kill_also_kills_a_known_descendant_in_another_session(run: Run) -> None:
    pidfile = run.dir / "survivor.pid"
    child = run.start("1", script("fork_survivor", str(pidfile)))
    survivor = int(wait_until(lambda: pidfile.exists() and pidfile.read_text(), 5, "pid file"))
    wait_until(lambda: survivor in child.seen, 5, "the monitor to see the survivor")
    assert [p.pid for p in child.descendants()] == [survivor]
    child.kill()
    wait_until(lambda: gone(survivor), 5, "the survivor to die with its parent")
    assert child.pause() is True  # a dead child's group id is never signalled again
    assert child.descendants() == []


def all_threads_stopped(pids: list[int]) -> bool:
    return all(
        psutil.Process(thread.id).status() == psutil.STATUS_STOPPED
        for pid in pids
        for thread in psutil.Process(pid).threads()
    )


@pytest.mark.process
@pytest.mark.timeout(20)
def test_pause_stops_every_thread_and_resume_continues(run: Run) -> None:
    child = run.start("1", script("busy_threads"))
    pids = [child.pid, forked_pid(run)]
    assert len(psutil.Process(child.pid).threads()) >= 4
    ticks = lambda: sum(line.startswith("tick") for _, _, line in list(run.lines))  # noqa: E731
    assert child.pause() is True
    assert all_threads_stopped(pids)  # checked at once: pause() returned only when all were
    frozen = ticks()
    time.sleep(0.3)  # 15 ticks would come in this time if anything still ran
    assert ticks() == frozen
    child.resume()
    wait_until(lambda: ticks() > frozen + 3, 5, "ticks after resume")
    assert not any(psutil.Process(pid).status() == psutil.STATUS_STOPPED for pid in pids)
    process = run.events("process")
    assert [e["event"] for e in process] == ["start", "pause", "resume"]
    assert process[1]["stopped"] is True
    child.pause()  # a paused program is still torn down
    assert run.close_timed() < CLOSE_BOUND
    assert_nothing_left(run, *pids)


# --- teardown of hostile programs ---------------------------------------------------------------


@pytest.mark.process
@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("name", "ready", "returncode"),
    [
        ("crash_at_start", "fatal", 3),
        ("never_listen", "started", -signal.SIGTERM),
        ("hang_on_command", "got msend", -signal.SIGTERM),
        ("ignore_sigterm", "ignoring SIGTERM", -signal.SIGKILL),
        ("flood_stdout", "flood", -signal.SIGTERM),
    ],
)
def test_close_leaves_nothing_of_a_hostile_program(
    run: Run, name: str, ready: str, returncode: int
) -> None:
    child = run.start("coordinator", script(name))
    child.write_line("msend M00000001")
    wait_until(lambda: run.saw("coordinator", ready), 5, ready)
    if returncode >= 0:
        assert child.wait(5.0)  # it exits on its own; close() then has only the reaping to do
    elapsed = run.close_timed()
    assert elapsed < CLOSE_BOUND
    if name == "ignore_sigterm":
        assert elapsed >= GRACE  # SIGTERM was given its grace before SIGKILL
    assert child.returncode == returncode
    assert_nothing_left(run, child.pid)
    assert not [t for t in threading.enumerate() if t.name.startswith("pams-coordinator")]
    began = time.monotonic()
    run.sup.close()  # idempotent and quick
    assert time.monotonic() - began < 0.1
    with pytest.raises(StartError, match="torn down"):
        run.start("1", script("never_listen"))


@pytest.mark.process
@pytest.mark.timeout(20)
@pytest.mark.parametrize("modes", [(), ("exit",), ("scrub",)], ids=["stays", "exits", "scrubbed"])
def test_close_kills_a_setsid_survivor(run: Run, modes: tuple[str, ...]) -> None:
    """The survivor is found by its inherited PAMS_RUN_ID (even once its parent is gone) or, when
    it scrubbed its environment, because the monitor saw it as a descendant while it was one."""
    pidfile = run.dir / "survivor.pid"
    child = run.start("1", script("fork_survivor", str(pidfile), *modes))
    survivor = int(wait_until(lambda: pidfile.exists() and pidfile.read_text(), 5, "pid file"))
    assert os.getsid(survivor) == survivor != child.pid  # its own session, not the child's
    if "scrub" in modes:
        wait_until(lambda: "-c" in psutil.Process(survivor).cmdline(), 5, "the re-exec")
        assert "PAMS_RUN_ID" not in psutil.Process(survivor).environ()
        wait_until(lambda: survivor in child.seen, 5, "the monitor to see the survivor")
    if "exit" in modes:
        wait_until(lambda: run.exits, 5, "the parent's exit")
        assert run.exits == [("1", 0)]
    assert run.close_timed() < CLOSE_BOUND
    assert_nothing_left(run, child.pid, survivor)


@pytest.mark.process
@pytest.mark.timeout(20)
def test_ctrl_c_during_a_wait_still_tears_everything_down(tmp_path: Path) -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not the default KeyboardInterrupt handler here")
    r = Run(tmp_path)
    pidfile = tmp_path / "survivor.pid"
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt), r.sup as sup:
        stubborn = sup.start("coordinator", script("ignore_sigterm"), tmp_path, PY_ENV)
        forker = sup.start("1", script("fork_survivor", str(pidfile)), tmp_path, PY_ENV)
        wait_until(pidfile.exists, 5, "the survivor")
        timer.start()
        sup.wait_listening(free_port(), stubborn, timeout=30.0)  # Ctrl-C arrives in here
    timer.join()
    r.recorder.finish()
    assert time.monotonic() - began < 0.5 + 5 + CLOSE_BOUND
    assert_nothing_left(r, stubborn.pid, forker.pid, int(pidfile.read_text()))


CRASHING_HARNESS = """
import sys
from pathlib import Path
from harness.running.procs import Supervisor
sup = Supervisor(sys.argv[1], lambda event: 0.0)
here, hostile = Path(sys.argv[2]), Path(sys.argv[3])
sup.start("coordinator", [sys.executable, str(hostile / "ignore_sigterm.py")], here, {})
sup.start("1", [sys.executable, str(hostile / "fork_survivor.py"), str(here / "s.pid")], here, {})
while not (here / "s.pid").exists():
    pass
raise RuntimeError("harness bug")
"""


@pytest.mark.process
@pytest.mark.timeout(30)
def test_a_harness_dying_of_an_uncaught_exception_still_kills_its_processes(
    tmp_path: Path,
) -> None:
    run_id = f"test-{uuid.uuid4().hex}"
    harness = subprocess.run(
        [sys.executable, "-c", CRASHING_HARNESS, run_id, str(tmp_path), str(HOSTILE)],
        env={**os.environ, **PY_ENV},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert harness.returncode == 1 and "RuntimeError: harness bug" in harness.stderr
    assert survivors(run_id) == []
    assert gone(int((tmp_path / "s.pid").read_text()))


def test_a_relative_program_that_is_not_found_suggests_workdir(tmp_path: Path) -> None:
    from harness.running.procs import _start_failure

    error = FileNotFoundError(2, "No such file or directory")
    text = _start_failure("coordinator", ["./coordinator", "c.conf"], tmp_path, error)
    assert "cannot start './coordinator': No such file or directory" in text
    assert "{workdir}/coordinator" in text and "\n" not in text
