"""Unit tests of the coordinator's pure core (membership, store, expiry) with injected time."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.coordinator import monotonic
from reference.core import (
    OFFLINE,
    ONLINE,
    OUT,
    CloseChannel,
    CoordinatorCore,
    OpenChannel,
    Outcome,
    Wake,
)
from reference.store import MessageStore
from reference.wire import Deregister, Disconnect, Msend, Reconnect, Register, parse_request

TD = 3.0


class Net:
    """Plays the delivery channels for a core: an open channel takes and acks everything at once,
    unless its member is `stalled` (its thread-B is paused: nothing is read or acked)."""

    def __init__(self, core: CoordinatorCore) -> None:
        self.core = core
        self.epochs: dict[str, int] = {}
        self.got: dict[str, list[str]] = defaultdict(list)  # texts in order of delivery
        self.written: dict[str, list[int]] = defaultdict(list)  # every seq written, resends too
        self.stalled: set[str] = set()

    def ok(self, outcome: Outcome) -> Outcome:
        assert outcome.ok, outcome.reply
        return self.run(outcome)

    def run(self, outcome: Outcome) -> Outcome:
        for action in outcome.actions:
            if isinstance(action, OpenChannel):
                self.epochs[action.pid] = action.epoch
            elif isinstance(action, CloseChannel):
                assert self.epochs.pop(action.pid) == action.epoch
            if not isinstance(action, CloseChannel):
                self.pump(action.pid)
        return outcome

    def pump(self, pid: str) -> None:
        if pid in self.stalled or pid not in self.epochs:
            return
        batch = self.core.take(pid, self.epochs[pid], 10_000)
        self.written[pid] += [m.seq for m in batch]
        self.got[pid] += [m.text for m in batch]
        if batch:
            self.core.ack(pid, self.epochs[pid], batch[-1].seq)

    def fail(self, pid: str, now: float) -> None:
        """The channel of `pid` breaks (connection reset)."""
        assert self.core.channel_failed(pid, self.epochs.pop(pid), now)

    def register(self, pid: str, now: float) -> None:
        self.ok(self.core.register(pid, "127.0.0.1", 4000, now))

    def reconnect(self, pid: str, now: float) -> None:
        self.ok(self.core.reconnect(pid, "127.0.0.1", 4001, now))

    def msend(self, pid: str, text: str, now: float) -> int:
        return int(self.ok(self.core.msend(pid, text, now)).reply.split()[1])


@pytest.fixture
def net() -> Net:
    return Net(CoordinatorCore(TD))


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("REGISTER 1 127.0.0.1 4000", Register("1", "127.0.0.1", 4000)),
        ("RECONNECT p-2.x host.example 65535", Reconnect("p-2.x", "host.example", 65535)),
        ("DEREGISTER 7", Deregister("7")),
        ("DISCONNECT 7", Disconnect("7")),
        ("MSEND 7 UGACSRocks", Msend("7", "UGACSRocks")),
        ("msend  7   abc9  ", Msend("7", "abc9")),
    ],
)
def test_parse_valid_requests(line: str, parsed: object) -> None:
    assert parse_request(line) == parsed


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty request"),
        ("HELLO 1", "unknown command 'HELLO'"),
        ("MSEND 1", "usage: MSEND <id> <message>"),
        ("MSEND 1 a b", "usage: MSEND <id> <message>"),
        ("MSEND 1 hello!", "bad message"),
        ("REGISTER 1 127.0.0.1 0", "bad port '0'"),
        ("REGISTER 1 127.0.0.1 70000", "bad port '70000'"),
        ("RECONNECT 1 127.0.0.1 x", "bad port 'x'"),
        ("DISCONNECT a/b", "bad id 'a/b'"),
        ("REGISTER 1 ho$t 4000", "bad host"),
    ],
)
def test_parse_rejects_malformed_requests(line: str, reason: str) -> None:
    refused = parse_request(line)
    assert isinstance(refused, str) and refused.startswith(reason)


def test_malformed_request_gets_err_reply_and_changes_nothing() -> None:
    core = CoordinatorCore(TD)
    outcome = core.handle("REGISTER 1 127.0.0.1 notaport", 0.0)
    assert outcome == Outcome("ERR bad port 'notaport': must be an integer 1-65535")
    assert not outcome.ok
    assert core.members() == {}


# --- validity against the current state ---------------------------------------------------


def test_requests_invalid_in_the_current_state_are_refused(net: Net) -> None:
    core = net.core
    assert core.handle("MSEND 1 hi", 0).reply == "ERR 1 is not registered"
    assert core.handle("DISCONNECT 1", 0).reply == "ERR 1 is not registered"
    assert core.handle("RECONNECT 1 127.0.0.1 4000", 0).reply == "ERR 1 is not registered"
    assert core.handle("DEREGISTER 1", 0).reply == "ERR 1 is not registered"
    net.register("1", 0)
    assert core.handle("REGISTER 1 127.0.0.1 4002", 0).reply == "ERR 1 is already registered"
    assert core.handle("RECONNECT 1 127.0.0.1 4002", 0).reply == "ERR 1 is already online"
    net.ok(core.disconnect("1", 1))
    assert core.handle("DISCONNECT 1", 1).reply == "ERR 1 is not online"
    assert core.handle("REGISTER 1 127.0.0.1 4002", 1).reply == "ERR 1 is already registered"
    assert core.members() == {"1": OFFLINE}
    assert core.store.next_seq == 1  # no refused request stored anything


def test_refusals_produce_no_actions(net: Net) -> None:
    net.register("1", 0)
    for line in ["REGISTER 1 h 1", "RECONNECT 1 h 1", "MSEND 2 x", "DEREGISTER 2", "BOGUS"]:
        assert net.core.handle(line, 0).actions == ()


# --- delivery to online members -----------------------------------------------------------


def test_online_members_get_every_message_in_order_sender_included(net: Net) -> None:
    for pid in "123":
        net.register(pid, 0)
    outcome = net.core.msend("1", "first", 1.0)
    assert outcome.reply == "OK 1"
    assert set(outcome.actions) == {Wake(p, 1) for p in "123"}
    net.run(outcome)
    net.msend("2", "second", 1.5)
    for pid in "123":
        assert net.got[pid] == ["first", "second"]


def test_registration_is_a_new_entrant_and_out_members_get_nothing(net: Net) -> None:
    net.register("1", 0)
    net.msend("1", "before", 1)
    net.register("2", 2)
    net.msend("1", "after", 3)
    assert net.got["1"] == ["before", "after"]
    assert net.got["2"] == ["after"]


def test_take_honours_limit_and_resumes_where_it_stopped() -> None:
    core = CoordinatorCore(TD)
    epoch = core.register("1", "h", 1, 0).actions[0].epoch
    for i in range(5):
        core.msend("1", f"m{i}", i)
    assert [m.text for m in core.take("1", epoch, 2)] == ["m0", "m1"]
    assert [m.text for m in core.take("1", epoch, 10)] == ["m2", "m3", "m4"]
    assert core.take("1", epoch, 10) == []
    assert core.take("1", epoch + 1, 10) == []  # a stale or unknown channel gets nothing


def test_ack_beyond_what_was_written_is_clamped(net: Net) -> None:
    net.register("1", 0)
    net.stalled.add("1")
    for i in range(3):
        net.msend("1", f"m{i}", i)
    batch = net.core.take("1", net.epochs["1"], 1)
    net.core.ack("1", net.epochs["1"], 99)  # a bogus ack for messages never written
    net.fail("1", 5)
    net.stalled.discard("1")
    net.reconnect("1", 6)
    assert [m.text for m in batch] == ["m0"]
    assert net.got["1"] == ["m1", "m2"]


# --- persistence: the td bound ------------------------------------------------------------


@pytest.mark.parametrize(
    ("reconnect_at", "expected"),
    [
        (11.0, ["a", "b", "c"]),  # offline 1 s < td: everything
        (13.0, ["a", "b", "c"]),  # offline exactly td: everything
        (13.25, ["b", "c"]),  # just over td: only what is stamped within the last td seconds
        (14.75, ["c"]),
        (16.0, ["c"]),  # stamped exactly td ago: still owed
        (16.25, []),
    ],
)
def test_reconnect_gets_everything_within_td_and_only_the_last_td_beyond(
    net: Net, reconnect_at: float, expected: list[str]
) -> None:
    net.register("1", 0)
    net.register("2", 0)
    net.ok(net.core.disconnect("1", 10.0))
    net.msend("2", "a", 10.0)
    net.msend("2", "b", 11.5)
    net.msend("2", "c", 13.0)
    assert net.got["1"] == []  # nothing while offline
    net.reconnect("1", reconnect_at)
    assert net.got["1"] == expected
    assert net.got["2"] == ["a", "b", "c"]


def test_long_offline_gets_only_the_last_td_seconds_in_order(net: Net) -> None:
    net.register("1", 0)
    net.register("2", 0)
    net.ok(net.core.disconnect("1", 0.0))
    for t in range(1, 101):
        net.msend("2", f"m{t}", float(t))
    net.reconnect("1", 100.0)
    assert net.got["1"] == ["m97", "m98", "m99", "m100"]  # stamps >= 100 - td


def test_messages_sent_before_disconnect_but_unacked_are_owed_after_a_short_absence(
    net: Net,
) -> None:
    net.register("1", 0)
    net.register("2", 0)
    net.stalled.add("1")  # thread-B paused: reads nothing
    net.msend("2", "old", 0.0)
    net.ok(net.core.disconnect("1", 50.0))
    net.stalled.discard("1")
    net.reconnect("1", 50.0 + TD)
    assert net.got["1"] == ["old"]  # offline <= td loses nothing, however old the message


def test_deregister_then_register_is_a_new_entrant(net: Net) -> None:
    net.register("1", 0)
    net.register("2", 0)
    net.msend("2", "a", 1)
    net.ok(net.core.deregister("1", 2))
    assert net.core.state("1") == OUT
    net.msend("2", "during", 2.5)
    net.register("1", 3)
    net.msend("2", "b", 4)
    assert net.got["1"] == ["a", "b"]


def test_offline_then_deregister_owes_nothing(net: Net) -> None:
    net.register("1", 0)
    net.register("2", 0)
    net.ok(net.core.disconnect("1", 1))
    net.msend("2", "missed", 1.5)
    assert [m.text for m in net.core.owed("1", 1.5)] == ["missed"]
    outcome = net.ok(net.core.deregister("1", 2))
    assert outcome.actions == ()  # no channel to close: it was offline
    assert net.core.owed("1", 2) == []
    net.register("1", 2.5)
    net.msend("2", "new", 3)
    assert net.got["1"] == ["new"]
    net.core.expire(3)
    assert len(net.core.store) == 0  # everyone acked everything: nothing retained


def test_failed_delivery_stays_pending_and_is_sent_on_reconnect(net: Net) -> None:
    net.register("1", 0)
    net.register("2", 0)
    net.msend("2", "a", 1)
    net.stalled.add("1")
    net.msend("2", "b", 2)
    net.core.take("1", net.epochs["1"], 10)  # written to a socket, never acknowledged
    net.fail("1", 2.5)
    assert net.core.state("1") == OFFLINE
    net.msend("2", "c", 3)
    assert net.core.channel_failed("1", 1, 3) is False  # a second report changes nothing
    net.stalled.discard("1")
    net.reconnect("1", 4)
    assert net.got["1"] == ["a", "b", "c"]
    assert net.written["1"] == [1, 2, 3]


def test_failure_of_an_old_channel_does_not_touch_the_new_one(net: Net) -> None:
    net.register("1", 0)
    old_epoch = net.epochs["1"]
    net.ok(net.core.disconnect("1", 1))
    net.reconnect("1", 2)
    assert not net.core.channel_failed("1", old_epoch, 3)
    net.core.ack("1", old_epoch, 1)  # nor does its late ack
    assert net.core.state("1") == ONLINE


def test_channel_failure_counts_as_offline_from_that_moment(net: Net) -> None:
    net.register("1", 0)
    net.register("2", 0)
    net.fail("1", 10.0)
    net.msend("2", "a", 10.0)
    net.msend("2", "b", 12.0)
    net.reconnect("1", 14.0)  # offline 4 s > td: only stamps >= 11
    assert net.got["1"] == ["b"]


def test_no_duplicates_across_disconnect_reconnect_cycles(net: Net) -> None:
    net.register("1", 0)
    net.register("2", 0)
    now = 0.0
    sent = []
    for cycle in range(5):
        for i in range(3):
            now += 0.1
            sent.append(f"c{cycle}m{i}")
            net.msend("2", sent[-1], now)
        if cycle % 2:
            net.stalled.add("1")
            now += 0.1
            sent.append(f"c{cycle}x")
            net.msend("2", sent[-1], now)
            lost = net.core.take("1", net.epochs["1"], 10)  # written, unacked, then it breaks
            net.written["1"] += [m.seq for m in lost]
            net.fail("1", now)
            net.stalled.discard("1")
        else:
            net.ok(net.core.disconnect("1", now))
        now += 0.1
        sent.append(f"c{cycle}off")
        net.msend("2", sent[-1], now)
        net.reconnect("1", now + 1.0)
    assert net.got["1"] == sent
    # Only the unacked ones were ever written twice.
    written = net.written["1"]
    assert len(written) - len(set(written)) == 2


# --- expiry -------------------------------------------------------------------------------


def test_expiry_keeps_the_store_bounded_by_rate_times_td(net: Net) -> None:
    net.register("online", 0)
    net.register("gone", 0)
    net.ok(net.core.disconnect("gone", 0))  # never comes back
    sizes = []
    for i in range(1, 5001):
        net.msend("online", f"m{i}", i * 0.1)
        sizes.append(len(net.core.store))
    assert max(sizes) <= TD / 0.1 + 2
    assert len(net.got["online"]) == 5000
    net.reconnect("gone", 500.0)
    assert len(net.got["gone"]) == 31  # stamps 497.0 .. 500.0


def test_expiry_drops_everything_once_no_member_can_be_owed_it(net: Net) -> None:
    net.register("1", 0)
    net.register("2", 0)
    net.ok(net.core.disconnect("1", 0))
    for i in range(10):
        net.msend("2", f"m{i}", 1 + i * 0.1)
    assert len(net.core.store) == 10  # 1 is offline for less than td: it is owed all of them
    assert net.core.expire(3.0) == 0
    assert net.core.expire(4.5) == 5  # stamps 1.0 .. 1.4 are older than 4.5 - td
    assert net.core.expire(10.0) == 5
    assert len(net.core.store) == 0


def test_stalled_online_member_keeps_its_unacked_messages_until_it_acks(net: Net) -> None:
    net.register("slow", 0)
    net.register("2", 0)
    net.stalled.add("slow")
    for i in range(100):
        net.msend("2", f"m{i}", float(i))
    assert len(net.core.store) == 100  # memory: what an online-but-slow member has not acked
    net.stalled.discard("slow")
    net.pump("slow")
    net.core.expire(100.0)
    assert len(net.core.store) == 0
    assert net.got["slow"] == [f"m{i}" for i in range(100)]


def test_store_lookups_survive_compaction() -> None:
    store = MessageStore()
    for i in range(10_000):
        store.append(i * 0.5, "s", f"m{i}")
    assert store.drop_before(9_001) == 9_000
    assert (store.first_seq, store.next_seq, len(store)) == (9_001, 10_001, 1_000)
    assert store.since(9_500, 2)[0].text == "m9499"
    assert store.first_seq_stamped_from(4_800.0) == 9_601
    assert store.first_seq_stamped_from(0.0) == 9_001
    assert store.first_seq_stamped_from(1e9) == 10_001
    assert store.append(0.0, "s", "late").stamp == 4_999.5  # stamps never go backwards


# --- freezegun drives the coordinator's clock adapter --------------------------------------


def test_td_bound_with_freezegun_driving_the_monotonic_clock() -> None:
    net = Net(CoordinatorCore(TD))
    with freeze_time("2030-01-01") as frozen:
        net.register("1", monotonic())
        net.register("2", monotonic())
        net.ok(net.core.disconnect("1", monotonic()))
        net.msend("2", "early", monotonic())
        frozen.tick(2.0)
        net.msend("2", "late", monotonic())
        frozen.tick(TD)  # offline for td + 2 s: "early" is older than td, "late" is not
        assert time.monotonic() - monotonic() == 0
        net.reconnect("1", monotonic())
    assert net.got["1"] == ["late"]
    assert net.got["2"] == ["early", "late"]


# --- differential test against a naive model -----------------------------------------------

_PIDS = ("a", "b", "c")
_op = st.tuples(
    st.sampled_from(["register", "deregister", "disconnect", "reconnect", "msend", "fail"]),
    st.sampled_from(_PIDS),
    st.sampled_from([0.0, 0.25, 1.0, 2.5, 3.0, 4.0]),  # time advance before the op
    st.booleans(),  # channel of this pid stalls (reads but never acks) from now on
)


class Model:
    """Naive reference: each member keeps an explicit set of pending messages."""

    def __init__(self, td: float) -> None:
        self.td = td
        self.state: dict[str, str] = {}
        self.pending: dict[str, list[tuple[int, float, str]]] = {}
        self.offline_since: dict[str, float] = {}
        self.log: dict[str, list[str]] = defaultdict(list)  # what a deduping participant logs
        self.seq = 0


def _sync(net: Net, model: Model, now: float) -> None:
    """Let every unstalled channel drain, mirror that in the model, and compare what is owed."""
    for pid in list(net.epochs):
        net.pump(pid)
    for pid, state in model.state.items():
        if state == ONLINE and pid not in net.stalled:
            model.log[pid] += [m[2] for m in model.pending[pid]]
            model.pending[pid] = []
        if state == OFFLINE:
            keep = model.pending[pid]
            if now - model.offline_since[pid] > model.td:
                keep = [m for m in keep if m[1] >= now - model.td]
            assert [m.text for m in net.core.owed(pid, now)] == [m[2] for m in keep], (pid, now)


def _model_apply(model: Model, kind: str, pid: str, now: float) -> None:
    if kind == "register":
        model.state[pid], model.pending[pid] = ONLINE, []
    elif kind == "deregister":
        del model.state[pid], model.pending[pid]
    elif kind in ("disconnect", "fail"):
        model.state[pid], model.offline_since[pid] = OFFLINE, now
    elif kind == "reconnect":
        if now - model.offline_since[pid] > model.td:
            model.pending[pid] = [m for m in model.pending[pid] if m[1] >= now - model.td]
        model.state[pid] = ONLINE
    else:
        model.seq += 1
        for member in model.state:
            model.pending[member].append((model.seq, now, f"m{model.seq}"))


_LINES = {
    "register": "REGISTER {} h 1",
    "deregister": "DEREGISTER {}",
    "disconnect": "DISCONNECT {}",
    "reconnect": "RECONNECT {} h 2",
}
_VALID_IN = {
    "register": (OUT,),
    "deregister": (ONLINE, OFFLINE),
    "disconnect": (ONLINE,),
    "reconnect": (OFFLINE,),
    "msend": (ONLINE, OFFLINE),
    "fail": (ONLINE,),
}


@given(st.lists(_op, max_size=40))
@settings(max_examples=300, deadline=None)
def test_core_matches_a_naive_model(ops: list[tuple[str, str, float, bool]]) -> None:
    """Random schedules: what a seq-deduping participant logs equals the model's deliveries."""
    net = Net(CoordinatorCore(TD))
    model = Model(TD)
    now = 0.0
    for kind, pid, advance, stall in ops:
        now += advance
        valid = model.state.get(pid, OUT) in _VALID_IN[kind]
        (net.stalled.add if stall else net.stalled.discard)(pid)
        if kind == "fail":
            if valid:
                net.core.take(pid, net.epochs[pid], 10_000)  # written, lost, never acked
                net.fail(pid, now)
        else:
            line = _LINES[kind].format(pid) if kind != "msend" else f"MSEND {pid} m{model.seq + 1}"
            outcome = net.core.handle(line, now)
            assert outcome.ok == valid, (line, outcome)
            net.run(outcome)
        if valid:
            _model_apply(model, kind, pid, now)
        _sync(net, model, now)
    for pid in _PIDS:
        seqs = net.written[pid]
        deduped = [s for i, s in enumerate(seqs) if s > max(seqs[:i], default=0)]
        assert [f"m{s}" for s in deduped] == model.log[pid], pid
    assert net.core.members() == model.state
