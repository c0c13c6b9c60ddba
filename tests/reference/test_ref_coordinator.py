"""Process-level tests of the reference coordinator over loopback.

Raw sockets play the participants: control clients that send one request line, and fake
thread-B listeners that accept the coordinator's delivery channel, read MSG lines and ACK them.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.procutil import REPO, Proc, ProcessGroup, free_port, start_coordinator, wait_until
from tests.reference.rawnet import ThreadB, read_to_eof, request

pytestmark = pytest.mark.process

WAIT = 5.0  # bound on anything that should happen "at once"
REQUEST_TIMEOUT_BOUND = 8.0  # the coordinator drops a silent client after 5 s


def ok(port: int, line: str) -> str:
    reply = request(port, line.encode() + b"\n").decode()
    assert reply.startswith("OK") and reply.endswith("\n"), f"{line!r} -> {reply!r}"
    return reply.strip()


def err(port: int, line: str) -> str:
    reply = request(port, line.encode() + b"\n").decode()
    assert reply.startswith("ERR ") and reply.count("\n") == 1, f"{line!r} -> {reply!r}"
    return reply.strip()


@pytest.fixture
def thread_bs() -> list[ThreadB]:
    made: list[ThreadB] = []
    yield made
    for listener in made:
        listener.close()


def listener(made: list[ThreadB], **kwargs: object) -> ThreadB:
    made.append(ThreadB(**kwargs))  # type: ignore[arg-type]
    return made[-1]


def log_text(workdir: Path) -> str:
    return (workdir / "coordinator.out").read_text()


def register(port: int, pid: str, fake: ThreadB) -> None:
    assert ok(port, f"REGISTER {pid} 127.0.0.1 {fake.port}") == "OK"
    wait_until(lambda: fake.accepted, WAIT, f"the delivery channel to {pid}")


def alive(coordinator: Proc) -> bool:
    return coordinator.popen.poll() is None


# --- configuration and command line --------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("content", "where"),
    [
        (None, ": config file not found"),
        ("abc\n3\n", ":1: port"),
        ("70000\n3\n", ":1: port"),
        ("5000\n-1\n", ":2: td"),
        ("5000\nsoon\n", ":2: td"),
        ("5000\n", ":2: expected 2 lines"),
        ("", ":1: expected 2 lines"),
    ],
)
def test_bad_config_exits_2_with_one_line_naming_file_and_line(
    tmp_path: Path, content: str | None, where: str
) -> None:
    config = tmp_path / "coordinator.conf"
    if content is not None:
        config.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "reference.coordinator", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"coordinator: {config}{where}"), lines[0]


@pytest.mark.timeout(30)
def test_usage_error_and_busy_port(tmp_path: Path) -> None:
    usage = subprocess.run(
        [sys.executable, "-m", "reference.coordinator"], cwd=REPO, capture_output=True, text=True
    )
    assert usage.returncode == 2
    assert "usage: python -m reference.coordinator" in usage.stderr
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        config = tmp_path / "c.conf"
        config.write_text(f"{busy.getsockname()[1]}\n3\n")
        result = subprocess.run(
            [sys.executable, "-m", "reference.coordinator", str(config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert result.returncode == 1
    assert f"{config}:1: cannot listen on port" in result.stderr


@pytest.mark.timeout(30)
def test_sigterm_stops_the_coordinator_cleanly(procs: ProcessGroup, tmp_path: Path) -> None:
    coordinator, port = start_coordinator(procs, tmp_path, 3)
    coordinator.popen.send_signal(signal.SIGTERM)
    assert coordinator.popen.wait(timeout=WAIT) == 0
    assert f"listening on 0.0.0.0:{port}, td=3s" in log_text(tmp_path)


# --- bad clients ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_bad_and_stalled_clients_never_block_others_or_crash_it(
    procs: ProcessGroup, tmp_path: Path, thread_bs: list[ThreadB]
) -> None:
    coordinator, port = start_coordinator(procs, tmp_path, 3)
    silent = socket.create_connection(("127.0.0.1", port))
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(b"MSEND 1 hal")
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    opened = time.monotonic()

    # Meanwhile other clients are served at once.
    fake = listener(thread_bs)
    register(port, "1", fake)
    assert ok(port, "MSEND 1 hello") == "OK 1"
    wait_until(lambda: fake.texts() == ["hello"], WAIT, "delivery while clients stall")
    assert time.monotonic() - opened < 4.0  # well before the stalled clients' 5 s timeout

    assert request(port, b"\x00\xff\xfe garbage\n") == b"ERR not ASCII text\n"
    assert err(port, "FROB 1") == "ERR unknown command 'FROB'"
    assert err(port, "") == "ERR empty request"
    assert err(port, "MSEND 1 not-alnum") == "ERR bad message (letters and digits only) 'not-alnum'"
    oversized = request(port, b"MSEND 1 " + b"a" * 70_000 + b"\n")
    assert oversized == b"ERR request line longer than 65536 bytes\n"
    assert request(port, b"x" * 200_000) == b"ERR request line longer than 65536 bytes\n"
    with socket.create_connection(("127.0.0.1", port)) as truncated:
        truncated.sendall(b"REGISTER 2 127.0.0.1")
        truncated.shutdown(socket.SHUT_WR)
        assert read_to_eof(truncated).startswith(b"ERR truncated request")
    with socket.create_connection(("127.0.0.1", port)) as vanished:
        vanished.sendall(b"REGISTER 2 127.0.0.1")
    socket.create_connection(("127.0.0.1", port)).close()
    assert ok(port, "MSEND 1 still") == "OK 2"  # the rejected ones stored nothing
    assert coordinator.popen.poll() is None

    # The stalled clients get a timeout error after 5 s and are closed.
    for sock in (silent, stalled):
        sock.settimeout(REQUEST_TIMEOUT_BOUND)
        assert read_to_eof(sock) == b"ERR request timeout\n"
        sock.close()
    waited = time.monotonic() - opened
    assert 4.5 < waited < REQUEST_TIMEOUT_BOUND + 1
    for sock in idle:
        sock.close()

    assert ok(port, "MSEND 1 after") == "OK 3"
    wait_until(lambda: fake.texts() == ["hello", "still", "after"], WAIT, "delivery afterwards")
    assert alive(coordinator)
    log = log_text(tmp_path)
    assert log.count("truncated request (20 bytes, no end of line)") == 2
    for event in [
        "bad request: not ASCII",
        "bad request 'FROB 1' -> ERR unknown command",
        "bad request: line longer than 65536 bytes",
        "truncated request (20 bytes, no end of line)",
        "closed without a request",
        "request timeout after 5s (0 bytes read)",
        "request timeout after 5s (11 bytes read)",
    ]:
        assert event in log, event


@pytest.mark.timeout(30)
def test_unknown_ids_and_invalid_states_are_refused(
    procs: ProcessGroup, tmp_path: Path, thread_bs: list[ThreadB]
) -> None:
    coordinator, port = start_coordinator(procs, tmp_path, 3)
    assert err(port, "MSEND 9 hello") == "ERR 9 is not registered"
    assert err(port, "DISCONNECT 9") == "ERR 9 is not registered"
    assert err(port, "RECONNECT 9 127.0.0.1 4000") == "ERR 9 is not registered"
    assert err(port, "DEREGISTER 9") == "ERR 9 is not registered"
    fake = listener(thread_bs)
    register(port, "1", fake)
    assert err(port, f"REGISTER 1 127.0.0.1 {fake.port}") == "ERR 1 is already registered"
    assert err(port, f"RECONNECT 1 127.0.0.1 {fake.port}") == "ERR 1 is already online"
    assert ok(port, "DISCONNECT 1") == "OK"
    assert err(port, "DISCONNECT 1") == "ERR 1 is not online"
    assert ok(port, "DEREGISTER 1") == "OK"
    assert err(port, "MSEND 1 hello") == "ERR 1 is not registered"
    assert fake.accepted == 1  # refused requests opened no channel
    assert alive(coordinator)


# --- delivery and persistence ---------------------------------------------------------------


@pytest.mark.timeout(30)
def test_every_member_gets_every_message_in_send_order(
    procs: ProcessGroup, tmp_path: Path, thread_bs: list[ThreadB]
) -> None:
    coordinator, port = start_coordinator(procs, tmp_path, 3)
    fakes = {pid: listener(thread_bs) for pid in "123"}
    for pid, fake in fakes.items():
        register(port, pid, fake)
    sent = []
    for i in range(30):
        sender = "123"[i % 3]
        seq = int(ok(port, f"MSEND {sender} m{i}").split()[1])
        sent.append((seq, sender, f"m{i}"))
    assert [seq for seq, _, _ in sent] == list(range(1, 31))
    for fake in fakes.values():
        wait_until(lambda f=fake: len(f.messages) >= 30, WAIT, "all deliveries")
        assert fake.messages == sent
        assert fake.accepted == 1  # one channel for the whole online period
    assert alive(coordinator)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_serves_on_uvloop_when_installed_else_on_asyncio(
    procs: ProcessGroup,
    tmp_path: Path,
    thread_bs: list[ThreadB],
    monkeypatch: pytest.MonkeyPatch,
    loop: str,
) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    monkeypatch.setenv("PAMS_REFERENCE_LOOP", loop)  # "asyncio" refuses uvloop
    coordinator, port = start_coordinator(procs, tmp_path, 3)
    maps = Path(f"/proc/{coordinator.popen.pid}/maps").read_text()
    assert ("uvloop" in maps) == (loop == "uvloop")
    fakes = [listener(thread_bs) for _ in range(2)]
    for pid, fake in zip("12", fakes):
        register(port, pid, fake)
    sent = [(int(ok(port, f"MSEND 1 m{i}").split()[1]), "1", f"m{i}") for i in range(5)]
    for fake in fakes:
        wait_until(lambda f=fake: len(f.messages) >= 5, WAIT, "all deliveries")
        assert fake.messages == sent
    assert err(port, "MSEND 3 x") == "ERR 3 is not registered"


@pytest.mark.timeout(30)
def test_reconnect_on_a_new_port_gets_the_backlog_in_order(
    procs: ProcessGroup, tmp_path: Path, thread_bs: list[ThreadB]
) -> None:
    coordinator, port = start_coordinator(procs, tmp_path, 3)
    first, other = listener(thread_bs), listener(thread_bs)
    register(port, "1", first)
    register(port, "2", other)
    ok(port, "MSEND 2 before")
    wait_until(lambda: first.texts() == ["before"], WAIT, "delivery while online")
    assert ok(port, "DISCONNECT 1") == "OK"
    wait_until(lambda: first.eofs == 1, WAIT, "the channel to close on disconnect")
    backlog = [f"away{i}" for i in range(10)]
    for text in backlog:
        ok(port, f"MSEND 2 {text}")
    second = listener(thread_bs)
    assert ok(port, f"RECONNECT 1 127.0.0.1 {second.port}") == "OK"
    wait_until(lambda: len(second.messages) >= 10, WAIT, "the backlog")
    ok(port, "MSEND 1 back")
    wait_until(lambda: second.texts() == [*backlog, "back"], WAIT, "backlog then live delivery")
    assert second.seqs() == sorted(second.seqs())
    assert first.texts() == ["before"]  # nothing reached the old port
    wait_until(lambda: other.texts() == ["before", *backlog, "back"], WAIT, "the other member")
    assert alive(coordinator)


@pytest.mark.timeout(30)
def test_unreachable_thread_b_leaves_messages_pending_until_reconnect(
    procs: ProcessGroup, tmp_path: Path, thread_bs: list[ThreadB]
) -> None:
    coordinator, port = start_coordinator(procs, tmp_path, 3)
    other = listener(thread_bs)
    register(port, "2", other)
    nobody = free_port()  # nothing listens there: the channel is refused
    assert ok(port, f"REGISTER 1 127.0.0.1 {nobody}") == "OK"
    wait_until(lambda: "channel to 1 cannot connect" in log_text(tmp_path), WAIT, "refusal")
    for i in range(3):
        ok(port, f"MSEND 2 m{i}")
    assert err(port, f"REGISTER 1 127.0.0.1 {nobody}") == "ERR 1 is already registered"
    fake = listener(thread_bs)
    assert ok(port, f"RECONNECT 1 127.0.0.1 {fake.port}") == "OK"
    wait_until(lambda: fake.texts() == ["m0", "m1", "m2"], WAIT, "pending messages")
    assert alive(coordinator)


@pytest.mark.timeout(30)
def test_broken_channel_resends_only_unacked_messages_after_reconnect(
    procs: ProcessGroup, tmp_path: Path, thread_bs: list[ThreadB]
) -> None:
    coordinator, port = start_coordinator(procs, tmp_path, 3)
    other = listener(thread_bs)
    register(port, "2", other)
    acking = listener(thread_bs)
    register(port, "1", acking)
    ok(port, "MSEND 2 acked")
    wait_until(lambda: acking.texts() == ["acked"], WAIT, "first delivery")
    time.sleep(0.2)  # margin for the ACK to reach the coordinator before the crash
    acking.close()  # thread-B crashes
    wait_until(lambda: "channel to 1 broke" in log_text(tmp_path), WAIT, "the break noticed")
    ok(port, "MSEND 2 missed")

    mute = listener(thread_bs, ack=False)  # logs but never acks, then crashes too
    assert ok(port, f"RECONNECT 1 127.0.0.1 {mute.port}") == "OK"
    wait_until(lambda: mute.texts() == ["missed"], WAIT, "pending delivery")
    mute.close()
    wait_until(lambda: log_text(tmp_path).count("channel to 1 broke") == 2, WAIT, "2nd break")

    final = listener(thread_bs)
    assert ok(port, f"RECONNECT 1 127.0.0.1 {final.port}") == "OK"
    wait_until(lambda: final.texts() == ["missed"], WAIT, "the unacked message again")
    assert final.seqs() == mute.seqs() == [2]  # same seq: the participant can drop it
    ok(port, "MSEND 2 live")
    wait_until(lambda: final.texts() == ["missed", "live"], WAIT, "live delivery")
    assert alive(coordinator)


@pytest.mark.timeout(30)
def test_offline_longer_than_td_gets_only_the_last_td_seconds(
    procs: ProcessGroup, tmp_path: Path, thread_bs: list[ThreadB]
) -> None:
    coordinator, port = start_coordinator(procs, tmp_path, 1)
    first, other = listener(thread_bs), listener(thread_bs)
    register(port, "1", first)
    register(port, "2", other)
    assert ok(port, "DISCONNECT 1") == "OK"
    ok(port, "MSEND 2 old")
    time.sleep(1.6)  # let "old" age past td = 1 s, by a 0.6 s margin
    ok(port, "MSEND 2 fresh")
    again = listener(thread_bs)
    assert ok(port, f"RECONNECT 1 127.0.0.1 {again.port}") == "OK"
    wait_until(lambda: again.texts() == ["fresh"], WAIT, "the fresh message")
    time.sleep(0.2)  # margin: nothing else follows
    assert again.texts() == ["fresh"]
    assert other.texts() == ["old", "fresh"]
    assert alive(coordinator)


@pytest.mark.timeout(60)
def test_paused_thread_b_does_not_delay_the_others(
    procs: ProcessGroup, tmp_path: Path, thread_bs: list[ThreadB]
) -> None:
    coordinator, port = start_coordinator(procs, tmp_path, 30)
    paused = listener(thread_bs, read=False, rcvbuf=4096)  # accepts, then never reads
    healthy = listener(thread_bs)
    register(port, "p", paused)
    register(port, "h", healthy)
    big = "x" * 60_000
    count = 150  # 9 MB: far more than loopback socket buffers hold for the paused one
    for _ in range(count):
        ok(port, f"MSEND h {big}")
    wait_until(lambda: len(healthy.messages) == count, 10, "every big message to the healthy one")
    sent_at = time.monotonic()
    ok(port, "MSEND h small")
    wait_until(lambda: healthy.texts()[-1:] == ["small"], WAIT, "a small message after")
    assert time.monotonic() - sent_at < 3.0  # a margin for a loaded machine; blocked = never
    assert alive(coordinator)


# --- regressions (issue 12): numbers over int()'s 4,300-digit limit -----------------------------


@pytest.mark.timeout(30)
def test_huge_numbers_are_refused_without_a_traceback(procs: ProcessGroup, tmp_path: Path) -> None:
    coordinator, port = start_coordinator(procs, tmp_path, 3)
    huge = "9" * 5000
    reply = err(port, f"REGISTER 1 127.0.0.1 {huge}")  # int() raised: no reply, a traceback
    assert reply == f"ERR bad port {'9' * 40!r}...: must be an integer 1-65535"
    assert err(port, f"RECONNECT 1 127.0.0.1 {huge}").startswith("ERR bad port '9999")

    thread_b = socket.create_server(("127.0.0.1", 0))
    with thread_b:
        assert ok(port, f"REGISTER 1 127.0.0.1 {thread_b.getsockname()[1]}") == "OK"
        thread_b.settimeout(WAIT)
        conn, _ = thread_b.accept()
    with conn:
        conn.settimeout(WAIT)
        assert ok(port, "MSEND 1 one") == "OK 1"
        assert conn.recv(4096) == b"MSG 1 1 one\n"
        conn.sendall(f"ACK {huge}\nACK {2**63}\nACK 1\n".encode())  # int() raised on the first
        assert ok(port, "MSEND 1 two") == "OK 2"
        assert conn.recv(4096) == b"MSG 2 1 two\n"
        conn.sendall(b"ACK 2\n")
        assert ok(port, "DISCONNECT 1") == "OK"
        assert read_to_eof(conn) == b""  # nothing was left unacknowledged to resend
    wait_until(lambda: log_text(tmp_path).count("ignored line") == 2, WAIT, "the ignored acks")
    assert alive(coordinator)
    log = log_text(tmp_path)
    assert "Traceback" not in log and "Fatal error" not in log, log[-3000:]
    assert "channel to 1: ignored line b'ACK 9999" in log
    assert "broke" not in log
