"""The reference participant: its pure logic, and the real process against a fake coordinator
(a real TCP peer written with raw sockets) that records every request it gets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, Optional

import pytest

from reference.participant_state import (
    Command,
    Err,
    Lost,
    Ok,
    Outcome,
    Reply,
    State,
    Unsent,
    parse_command,
    parse_reply,
    plan,
    releases_port,
    request_line,
    settle,
    take_deliveries,
)
from tests.participant_driver import ParticipantDriver, write_config
from tests.procutil import ProcessGroup, free_port, port_bindable

# --- pure logic -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("register 41001", Command("register", port=41001)),
        ("  reconnect   5000 \n", Command("reconnect", port=5000)),
        ("msend UGACSRocks", Command("msend", message="UGACSRocks")),
        ("Register 41001", Command("register", port=41001)),
        ("deregister", Command("deregister")),
        ("disconnect", Command("disconnect")),
        ("quit", Command("quit")),
        ("", None),
        ("   \r\n", None),
        ("foo", Reply("error: unknown command 'foo'")),
        ("register", Reply("error register: usage: register PORT")),
        ("register 1 2", Reply("error register: usage: register PORT")),
        ("register abc", Reply("error register: port must be an integer 1-65535, got 'abc'")),
        ("reconnect 0", Reply("error reconnect: port must be an integer 1-65535, got '0'")),
        ("reconnect 65536", Reply("error reconnect: port must be an integer 1-65535, got '65536'")),
        ("msend", Reply("error msend: usage: msend MESSAGE")),
        ("msend two words", Reply("error msend: message must be alphanumeric")),
        ("msend a-b", Reply("error msend: message must be alphanumeric")),
        ("msend caf\u00e9", Reply("error msend: message must be alphanumeric")),
        ("disconnect now", Reply("error disconnect: takes no argument: disconnect")),
    ],
)
def test_parse_command(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("state", "line", "refusal"),
    [
        (State.ONLINE, "register 5000", "error register: already registered"),
        (State.OFFLINE, "register 5000", "error register: already registered"),
        (State.ONLINE, "reconnect 5000", "error reconnect: already online"),
        (State.OUT, "reconnect 5000", "error reconnect: not registered"),
        (State.OFFLINE, "disconnect", "error disconnect: already offline"),
        (State.OUT, "disconnect", "error disconnect: not registered"),
        (State.OUT, "deregister", "error deregister: not registered"),
        (State.OUT, "msend hi", "error msend: not registered"),
    ],
)
def test_plan_refuses_commands_pointless_in_a_known_state(
    state: State, line: str, refusal: str
) -> None:
    assert plan(state, line) == Reply(refusal)


@pytest.mark.parametrize(
    "line", ["register 5000", "reconnect 5000", "disconnect", "deregister", "msend hi"]
)
def test_plan_lets_the_coordinator_judge_from_the_unknown_state(line: str) -> None:
    assert isinstance(plan(State.UNKNOWN, line), Command)


def test_msend_is_allowed_while_offline() -> None:
    assert plan(State.OFFLINE, "msend hi") == Command("msend", message="hi")


def test_request_lines_follow_the_protocol() -> None:
    assert request_line("7", Command("register", port=5000), "10.0.0.2") == (
        "REGISTER 7 10.0.0.2 5000\n"
    )
    assert request_line("7", Command("reconnect", port=5001), "h") == "RECONNECT 7 h 5001\n"
    assert request_line("7", Command("msend", message="Hi"), "h") == "MSEND 7 Hi\n"
    assert request_line("7", Command("disconnect"), "h") == "DISCONNECT 7\n"
    assert request_line("7", Command("deregister"), "h") == "DEREGISTER 7\n"


def test_parse_reply() -> None:
    assert parse_reply("OK\r\n") == Ok("")
    assert parse_reply("OK 17\n") == Ok("17")
    assert parse_reply("ERR not registered\n") == Err("not registered")
    assert isinstance(parse_reply("HELLO\n"), Lost)


@pytest.mark.parametrize(
    ("state", "line", "after"),
    [
        (State.UNKNOWN, "register 1", State.ONLINE),
        (State.OUT, "register 1", State.ONLINE),
        (State.UNKNOWN, "reconnect 1", State.ONLINE),
        (State.ONLINE, "disconnect", State.OFFLINE),
        (State.OFFLINE, "deregister", State.OUT),
        (State.ONLINE, "msend x", State.ONLINE),
        (State.UNKNOWN, "msend x", State.UNKNOWN),
    ],
)
def test_settle_after_ok(state: State, line: str, after: State) -> None:
    command = parse_command(line)
    assert isinstance(command, Command)
    new_state, reply = settle(state, command, Ok())
    assert (new_state, reply) == (after, f"ok {command.verb}")


def test_settle_failures() -> None:
    register = Command("register", port=1)
    assert settle(State.OUT, register, Err("already registered")) == (
        State.OUT,
        "error register: already registered",
    )
    assert settle(State.OUT, register, Unsent("coordinator unreachable: connection refused")) == (
        State.OUT,
        "error register: coordinator unreachable: connection refused",
    )
    # A lost reply to a membership change leaves the outcome to the coordinator's judgement...
    assert settle(State.ONLINE, Command("disconnect"), Lost("timeout"))[0] is State.UNKNOWN
    # ...but a lost msend changes no membership.
    assert settle(State.ONLINE, Command("msend", message="x"), Lost("timeout"))[0] is State.ONLINE
    assert settle(State.ONLINE, Command("msend", message="x"), Ok("17"))[1] == "ok msend 17"


@pytest.mark.parametrize(
    ("command", "outcome", "after", "releases"),
    [
        (Command("disconnect"), Ok(), State.OFFLINE, True),
        (Command("deregister"), Ok(), State.OUT, True),
        (Command("disconnect"), Lost("timeout"), State.UNKNOWN, True),
        (Command("disconnect"), Err("not online"), State.ONLINE, False),
        (Command("register", port=1), Ok(), State.ONLINE, False),
        (Command("register", port=1), Err("already registered"), State.OUT, True),
        (Command("reconnect", port=1), Unsent("refused"), State.UNKNOWN, True),
        (Command("reconnect", port=1), Lost("timeout"), State.UNKNOWN, False),
        (Command("msend", message="x"), Ok(), State.UNKNOWN, False),
        (Command("msend", message="x"), Lost("timeout"), State.ONLINE, False),
    ],
)
def test_releases_port(command: Command, outcome: Outcome, after: State, releases: bool) -> None:
    assert releases_port(command, outcome, after) is releases


def test_take_deliveries_logs_new_messages_and_acks_the_highest_seq() -> None:
    batch = take_deliveries(b"MSG 1 a one\nMSG 2 b two\r\nMSG 3 a thr", 0)
    assert (batch.to_log, batch.ack, batch.last_seq, batch.rest) == (
        b"one\ntwo\n",
        2,
        2,
        b"MSG 3 a thr",
    )
    batch = take_deliveries(batch.rest + b"ee\n", batch.last_seq)
    assert (batch.to_log, batch.ack, batch.last_seq) == (b"three\n", 3, 3)


def test_take_deliveries_drops_but_acks_seen_seqs() -> None:
    batch = take_deliveries(b"MSG 4 a x\nMSG 5 a y\nMSG 6 a z\n", 5)
    assert (batch.to_log, batch.ack, batch.last_seq) == (b"z\n", 6, 6)
    batch = take_deliveries(b"MSG 2 a old\n", 6)
    assert (batch.to_log, batch.ack, batch.last_seq) == (b"", 2, 6)


def test_take_deliveries_reports_malformed_lines() -> None:
    batch = take_deliveries(b"garbage\nMSG x a b\nMSG 1 a\nMSG 7 s m\n", 0)
    assert batch.bad_lines == (b"garbage", b"MSG x a b", b"MSG 1 a")
    assert (batch.to_log, batch.ack) == (b"m\n", 7)


def test_take_deliveries_without_a_complete_line_acks_nothing() -> None:
    batch = take_deliveries(b"MSG 1 a x", 0)
    assert (batch.to_log, batch.ack, batch.rest) == (b"", None, b"MSG 1 a x")


# --- the process against a fake coordinator --------------------------------------------------

Responder = Callable[[str], Optional[str]]


def _read_line(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode()


class FakeCoordinator:
    """Accepts control connections, records each request line, answers with `respond(line)`
    (None: close without replying), then closes; replies OK to everything by default."""

    def __init__(self) -> None:
        self.respond: Responder = lambda line: "OK"
        self.requests: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                line = _read_line(conn).rstrip("\n")
                self.requests.append(line)
                reply = self.respond(line)
                if reply is not None:
                    conn.sendall(reply.encode() + b"\n")

    def close(self) -> None:
        self._server.close()


class Channel:
    """A delivery connection from the fake coordinator to a participant's thread-B."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._acks = b""

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\n" for line in lines).encode())

    def ack_until(self, seq: int) -> list[str]:
        """Read ACK lines until one for `seq` (bounded by the socket timeout); return them all."""
        while f"ACK {seq}\n".encode() not in self._acks:
            chunk = self.sock.recv(4096)
            assert chunk, f"channel closed before ACK {seq}; got {self._acks!r}"
            self._acks += chunk
        return self._acks.decode().splitlines()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake() -> Iterator[FakeCoordinator]:
    coordinator = FakeCoordinator()
    yield coordinator
    coordinator.close()


@pytest.fixture
def participant(procs: ProcessGroup, tmp_path: Path, fake: FakeCoordinator) -> ParticipantDriver:
    return ParticipantDriver.create(procs, tmp_path / "p7", "7", fake.port)


@pytest.mark.timeout(30)
def test_each_command_gets_one_reply_and_sends_the_protocol_request(
    participant: ParticipantDriver, fake: FakeCoordinator
) -> None:
    port, port2 = free_port(), free_port()
    fake.respond = lambda line: "OK 17" if line.startswith("MSEND") else "OK"
    assert participant.command(f"register {port}") == "ok register"
    assert participant.command("msend UGACSRocks") == "ok msend 17"
    assert participant.command("disconnect") == "ok disconnect"
    assert participant.command(f"reconnect {port2}") == "ok reconnect"
    assert participant.command("deregister") == "ok deregister"
    assert participant.command("quit") == "ok quit"
    assert participant.wait_exit() == 0
    assert fake.requests == [
        f"REGISTER 7 127.0.0.1 {port}",
        "MSEND 7 UGACSRocks",
        "DISCONNECT 7",
        f"RECONNECT 7 127.0.0.1 {port2}",
        "DEREGISTER 7",
    ]


@pytest.mark.timeout(30)
def test_malformed_commands_get_an_error_and_send_nothing(
    participant: ParticipantDriver, fake: FakeCoordinator
) -> None:
    assert participant.command("foo bar") == "error: unknown command 'foo'"
    assert participant.command("register") == "error register: usage: register PORT"
    assert participant.command("register 99999") == (
        "error register: port must be an integer 1-65535, got '99999'"
    )
    assert participant.command("msend hello world") == "error msend: message must be alphanumeric"
    assert participant.command("msend hello!") == "error msend: message must be alphanumeric"
    participant.send("\n   \n")  # blank lines get no reply: the next reply is the next command's
    assert participant.command("msend") == "error msend: usage: msend MESSAGE"
    assert fake.requests == []


@pytest.mark.timeout(30)
def test_known_state_rejects_wrong_state_commands_locally(
    participant: ParticipantDriver, fake: FakeCoordinator
) -> None:
    port = free_port()
    participant.ok(f"register {port}")
    assert participant.command(f"register {free_port()}") == "error register: already registered"
    assert participant.command(f"reconnect {free_port()}") == "error reconnect: already online"
    participant.ok("disconnect")
    assert participant.command("disconnect") == "error disconnect: already offline"
    participant.ok("msend StillAMember")
    participant.ok("deregister")
    assert participant.command("msend Hi") == "error msend: not registered"
    assert participant.command("deregister") == "error deregister: not registered"
    assert participant.command("disconnect") == "error disconnect: not registered"
    assert len(fake.requests) == 4  # register, disconnect, msend, deregister


@pytest.mark.timeout(30)
def test_fresh_process_lets_the_coordinator_judge(
    participant: ParticipantDriver, fake: FakeCoordinator, procs: ProcessGroup, tmp_path: Path
) -> None:
    fake.respond = lambda line: "ERR not registered"
    assert participant.command("msend Hi") == "error msend: not registered"
    assert participant.command("disconnect") == "error disconnect: not registered"
    port = free_port()
    fake.respond = lambda line: "ERR already online"
    assert participant.command(f"reconnect {port}") == "error reconnect: already online"
    assert port_bindable(port), "a refused reconnect must release the port"
    assert fake.requests == ["MSEND 7 Hi", "DISCONNECT 7", f"RECONNECT 7 127.0.0.1 {port}"]
    fake.respond = lambda line: "OK"
    assert participant.command(f"reconnect {port}") == "ok reconnect"


@pytest.mark.timeout(30)
def test_register_refused_by_the_coordinator_releases_the_port(
    participant: ParticipantDriver, fake: FakeCoordinator
) -> None:
    port = free_port()
    fake.respond = lambda line: "ERR already registered"
    assert participant.command(f"register {port}") == "error register: already registered"
    assert port_bindable(port)
    fake.respond = lambda line: "OK"
    assert participant.command(f"register {port}") == "ok register"


@pytest.mark.timeout(30)
def test_register_on_a_port_in_use_fails_without_a_request(
    participant: ParticipantDriver, fake: FakeCoordinator
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        assert participant.command(f"register {port}") == f"error register: port {port} in use"
    assert fake.requests == []
    assert participant.command(f"register {port}") == "ok register"


@pytest.mark.timeout(30)
def test_unreachable_coordinator(procs: ProcessGroup, tmp_path: Path) -> None:
    dead = free_port()
    participant = ParticipantDriver.create(procs, tmp_path, "1", dead)
    port = free_port()
    assert participant.command(f"register {port}") == (
        "error register: coordinator unreachable: connection refused"
    )
    assert port_bindable(port)
    assert participant.command("msend Hi") == (
        "error msend: coordinator unreachable: connection refused"
    )


@pytest.mark.timeout(30)
def test_thread_b_listens_before_the_register_request_is_sent(
    participant: ParticipantDriver, fake: FakeCoordinator
) -> None:
    acks: list[list[str]] = []

    def connect_back_then_reply(line: str) -> str:
        _, _, host, port = line.split()
        channel = Channel(int(port))
        channel.send("MSG 1 9 EarlyBird")
        acks.append(channel.ack_until(1))
        channel.close()
        return "OK"

    fake.respond = connect_back_then_reply
    assert participant.command(f"register {free_port()}") == "ok register"
    assert acks == [["ACK 1"]]
    participant.wait_log(["EarlyBird"])


@pytest.mark.timeout(30)
def test_deliveries_are_logged_in_order_once_and_acked_cumulatively(
    participant: ParticipantDriver,
) -> None:
    port = free_port()
    participant.ok(f"register {port}")
    first = Channel(port)
    first.send("MSG 1 2 one", "MSG 2 7 two", "MSG 3 2 three")
    assert first.ack_until(3)[-1] == "ACK 3"
    participant.wait_log(["one", "two", "three"])
    first.send("MSG 2 7 two", "MSG 4 2 four")  # a re-sent seq is acked but not logged again
    assert first.ack_until(4)[-1] == "ACK 4"
    second = Channel(port)  # dedupe holds across delivery channels
    second.send("MSG 4 2 four", "MSG 5 3 five")
    assert second.ack_until(5)[-1] == "ACK 5"
    first.close()
    second.close()
    participant.wait_log(["one", "two", "three", "four", "five"])


@pytest.mark.timeout(30)
def test_log_is_appended_to_never_truncated(procs: ProcessGroup, tmp_path: Path) -> None:
    fake = FakeCoordinator()
    try:
        workdir = tmp_path / "p"
        config = write_config(workdir, "3", fake.port, "sub/log.txt")
        (workdir / "sub").mkdir()
        (workdir / "sub" / "log.txt").write_text("earlier\n")
        participant = ParticipantDriver(procs, workdir, config, workdir / "sub" / "log.txt")
        port = free_port()
        participant.ok(f"register {port}")
        channel = Channel(port)
        channel.send("MSG 1 3 later")
        channel.ack_until(1)
        participant.wait_log(["earlier", "later"])
        channel.close()
    finally:
        fake.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("command", ["disconnect", "deregister"])
def test_port_is_bindable_as_soon_as_disconnect_or_deregister_returns(
    participant: ParticipantDriver, command: str
) -> None:
    port = free_port()
    participant.ok(f"register {port}")
    channel = Channel(port)  # an open delivery channel, as the coordinator keeps one
    channel.send("MSG 1 7 x")
    channel.ack_until(1)
    idle = Channel(port)  # and a second, idle one
    participant.ok(command)
    assert port_bindable(port), "thread-B's port is still held (TIME_WAIT or a live socket)"
    channel.close()
    idle.close()


@pytest.mark.timeout(30)
def test_eof_while_online_exits_cleanly_and_releases_the_port(
    participant: ParticipantDriver, fake: FakeCoordinator
) -> None:
    port = free_port()
    participant.ok(f"register {port}")
    channel = Channel(port)
    participant.close_stdin()
    assert participant.wait_exit() == 0
    assert participant.reply() is None  # stdout closed, nothing more was printed
    assert port_bindable(port)
    assert fake.requests == [f"REGISTER 7 127.0.0.1 {port}"]  # exiting does not deregister
    channel.close()


@pytest.mark.timeout(30)
def test_close_without_a_reply_is_an_error(
    participant: ParticipantDriver, fake: FakeCoordinator
) -> None:
    fake.respond = lambda line: None  # close without any reply: outcome unknown
    assert participant.command("msend Hi") == (
        "error msend: coordinator closed the connection without replying"
    )


@pytest.mark.timeout(30)
def test_lost_register_reply_keeps_listening_in_case_the_coordinator_acted(
    participant: ParticipantDriver, fake: FakeCoordinator
) -> None:
    release = threading.Event()

    def hang(line: str) -> str:
        release.wait(8)
        return "OK"

    fake.respond = hang
    port = free_port()
    try:
        reply = participant.command(f"register {port}", timeout=9)
    finally:
        release.set()
    assert reply == "error register: no reply from coordinator within 5s"
    channel = Channel(port)  # the coordinator may have registered us: deliveries still work
    channel.send("MSG 1 9 Maybe")
    channel.ack_until(1)
    participant.wait_log(["Maybe"])
    fake.respond = lambda line: "OK"
    assert participant.command("disconnect") == "ok disconnect"  # unknown state: coordinator judges
    assert port_bindable(port)
    channel.close()


# --- regressions (issue 12): numbers, long words and oversized sequence numbers -----------------


@pytest.mark.parametrize(
    "port",
    [
        "\u00b2",  # str.isdigit() is True and int() raised ValueError: the process died
        "\u0661\u0662\u0663\u0664\u0665",  # Arabic-Indic digits: int() made it port 12345
        "9" * 5000,  # over int()'s 4,300-digit limit
    ],
)
def test_parse_command_takes_ascii_digit_ports_only(port: str) -> None:
    for verb in ("register", "reconnect"):
        reply = parse_command(f"{verb} {port}")
        assert isinstance(reply, Reply), reply
        assert reply.line.startswith(f"error {verb}: port must be an integer 1-65535, got ")
        assert len(reply.line) < 120


def test_unknown_huge_word_is_quoted_by_a_short_prefix() -> None:
    reply = parse_command("x" * 10_000_000)
    assert reply == Reply(f"error: unknown command {'x' * 40!r}...")
    reply = parse_command("register " + "y" * 10_000_000)
    assert isinstance(reply, Reply) and len(reply.line) < 120 and reply.line.endswith("...")


def test_take_deliveries_refuses_oversized_sequence_numbers() -> None:
    lines = b"MSG " + b"9" * 5000 + b" x y\nMSG 1" + b"0" * 30 + b" x big\nMSG 1 2 one\n"
    batch = take_deliveries(lines, 0)
    assert len(batch.bad_lines) == 2
    assert (batch.to_log, batch.ack, batch.last_seq) == (b"one\n", 1, 1)
    batch = take_deliveries(b"MSG %d 2 edge\nMSG 2 2 two\n" % 2**63, batch.last_seq)
    assert (batch.to_log, batch.ack, batch.last_seq) == (b"two\n", 2, 2)


@pytest.mark.timeout(30)
def test_unicode_digit_ports_get_an_error_and_the_process_lives(
    participant: ParticipantDriver, fake: FakeCoordinator
) -> None:
    for port in ("\u00b2", "\u0661\u0662\u0663\u0664\u0665", "9" * 5000):
        reply = participant.command(f"register {port}")
        assert reply.startswith("error register: port must be an integer 1-65535, got "), reply
    assert participant.command("quit") == "ok quit"
    assert participant.wait_exit() == 0
    assert fake.requests == []


@pytest.mark.timeout(30)
def test_a_10mb_unknown_word_gets_a_short_error_line(
    participant: ParticipantDriver, fake: FakeCoordinator
) -> None:
    reply = participant.command("z" * 10_000_000, timeout=20)
    assert reply == f"error: unknown command {'z' * 40!r}..."
    assert participant.command("quit") == "ok quit"


@pytest.mark.timeout(30)
def test_thread_b_survives_malformed_and_oversized_sequence_numbers(
    participant: ParticipantDriver,
) -> None:
    port = free_port()
    participant.ok(f"register {port}")
    channel = Channel(port)
    channel.send("MSG " + "9" * 5000 + " x y", "MSG 1 2 one")  # 5000 digits killed thread-B
    assert channel.ack_until(1)[-1] == "ACK 1"
    channel.send("MSG 1" + "0" * 30 + " 2 huge", "MSG 2 2 two")  # 10**30 hid every later message
    assert channel.ack_until(2)[-1] == "ACK 2"
    channel.send(f"MSG {2**63} 2 over", "MSG 3 2 three")
    assert channel.ack_until(3)[-1] == "ACK 3"
    participant.wait_log(["one", "two", "three"])
    stderr = participant.stderr()
    assert stderr.count("participant: ignored malformed delivery line") == 3, stderr
    assert "Traceback" not in stderr
    channel.close()
