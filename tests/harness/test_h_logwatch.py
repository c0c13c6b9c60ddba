"""The log watcher: the pure tracker's growth/prefix/generation rules (README "How a run works") on
snapshots, a hypothesis property over random chunkings, and the polling watcher on real
files written by a real writer thread (every token once, latency measured)."""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.running import logwatch
from harness.running.logwatch import LINE_CAP, LogSnapshot, LogTracker, LogWatcher, LogWatchers
from tests.procutil import wait_until

ID = (1, 100)


def feed(tracker: LogTracker, *contents: Optional[bytes], identity=ID) -> list[dict]:
    """Observe each content in turn (None: the file is gone); all events."""
    events: list[dict] = []
    for content in contents:
        snapshot = None if content is None else LogSnapshot(identity, content)
        events += tracker.observe(snapshot)
    return events


def delivered(events: list[dict]) -> list[str]:
    return [e["message"] for e in events if e["type"] == "deliver"]


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


def tok(n: int) -> bytes:
    return b"M%08d" % n


# --- the pure tracker -------------------------------------------------------------------


def test_growth_across_observations_reports_each_new_token_and_line_once():
    t = LogTracker("2")
    first = feed(t, b"Welcome!\nM00000001\n")
    assert first == [
        {"type": "noise", "participant": "2", "line_no": 1, "line": "Welcome!"},
        {
            "type": "deliver",
            "participant": "2",
            "message": "M00000001",
            "line_no": 2,
            "line": "M00000001",
            "offset": 9,
        },
    ]
    second = feed(t, b"Welcome!\nM00000001\nM00000002\n")
    assert second == [
        {
            "type": "deliver",
            "participant": "2",
            "message": "M00000002",
            "line_no": 3,
            "line": "M00000002",
            "offset": 19,
        }
    ]
    assert feed(t, b"Welcome!\nM00000001\nM00000002\n") == []


def test_file_absent_then_appearing_is_plain_growth():
    t = LogTracker("1")
    assert feed(t, None, None, b"") == []
    assert delivered(feed(t, b"M00000001\n")) == ["M00000001"]


def test_token_split_across_observations_is_reported_once_when_complete():
    t = LogTracker("1")
    assert feed(t, b"M0000") == []
    assert feed(t, b"M0000000") == []
    events = feed(t, b"M00000001")
    assert delivered(events) == ["M00000001"]
    assert events[0]["offset"] == 0 and events[0]["line_no"] == 1
    assert feed(t, b"M00000001\n") == []  # its line ends: no noise, no second deliver


def test_log_without_separators_reports_each_token_as_soon_as_written():
    t = LogTracker("1")
    assert delivered(feed(t, b"M00000001")) == ["M00000001"]
    events = feed(t, b"M00000001M00000002")
    assert delivered(events) == ["M00000002"]
    assert events[0]["offset"] == 9 and events[0]["line"] == "M00000001M00000002"
    assert delivered(feed(t, b"M00000001M00000002M000")) == []
    assert delivered(feed(t, b"M00000001M00000002M00000003")) == ["M00000003"]
    assert t.flush() == []  # the unfinished line had tokens: not noise


def test_two_tokens_on_one_line_are_two_deliveries_on_the_same_line():
    events = feed(LogTracker("1"), b"got M00000001 and M00000002\n")
    assert [(e["message"], e["line_no"], e["offset"]) for e in events] == [
        ("M00000001", 1, 4),
        ("M00000002", 1, 18),
    ]
    assert {e["line"] for e in events} == {"got M00000001 and M00000002"}


def test_timestamped_prefixed_lines():
    log = b"[12:00:01.050] from 2: M00000001\n[12:00:01.070] from 3: M00000002\n"
    events = feed(LogTracker("1"), log)
    assert delivered(events) == ["M00000001", "M00000002"]
    assert events[1]["line"] == "[12:00:01.070] from 3: M00000002"
    assert events[1]["line_no"] == 2


def test_near_tokens_are_noise_not_deliveries():
    log = b"M0000001\nm00000001\nM 00000001\nMM0000000\n"
    events = feed(LogTracker("1"), log)
    assert delivered(events) == []
    assert [e["line"] for e in of_type(events, "noise")] == [
        "M0000001",
        "m00000001",
        "M 00000001",
        "MM0000000",
    ]


def test_log_rewritten_whole_in_place_counts_each_token_once():
    """A program that rewrites its log (truncate, write old + new) per message: the
    watcher sees the full log, an empty or partial one (mid-rewrite), then a longer one."""
    t = LogTracker("1")
    events: list[dict] = []
    log = b""
    for n in range(1, 6):
        old = log
        log = old + b"msg " + tok(n) + b"\n"
        events += feed(t, b"", old[: len(old) // 2], log[:-3], log)
    assert delivered(events) == [tok(n).decode() for n in range(1, 6)]
    assert of_type(events, "log_reset") == []
    assert of_type(events, "noise") == []


def test_temp_file_rename_with_grown_content_is_growth_not_reset():
    t = LogTracker("1")
    events: list[dict] = []
    log = b""
    for n in range(1, 6):
        log += tok(n) + b"\n"
        events += feed(t, log, identity=(1, 100 + n))  # a new inode on every rename
    assert delivered(events) == [tok(n).decode() for n in range(1, 6)]
    assert of_type(events, "log_reset") == []


def test_strict_prefix_waits_and_keeps_the_known_content():
    t = LogTracker("1")
    feed(t, b"a\nM00000001\nM00000002\n")
    assert feed(t, b"a\nM00000001\n") == []
    assert feed(t, b"") == []
    events = feed(t, b"a\nM00000001\nM00000002\nM00000003\n")
    assert delivered(events) == ["M00000003"]
    assert events[0]["line_no"] == 4


def test_truncation_starts_a_new_generation_whose_tokens_are_new():
    t = LogTracker("1")
    feed(t, b"M00000001\nM00000002\n")
    events = feed(t, b"M00000001\n" + b"x" * 3)  # shorter, not a prefix
    assert events[0] == {"type": "log_reset", "participant": "1", "reason": "truncated"}
    assert delivered(events) == ["M00000001"]  # the same token again: a new delivery
    assert events[1]["line_no"] == 1 and events[1]["offset"] == 0


def test_different_content_of_same_or_greater_length_is_rewritten():
    t = LogTracker("1")
    feed(t, b"M00000001\n")
    events = feed(t, b"M00000002\n")
    assert [e["type"] for e in events] == ["log_reset", "deliver"]
    assert events[0]["reason"] == "rewritten"
    events = feed(t, b"hello\nM00000002\nM00000003\n")
    assert events[0]["reason"] == "rewritten"
    assert delivered(events) == ["M00000002", "M00000003"]


def test_new_identity_with_other_content_is_recreated():
    t = LogTracker("1")
    feed(t, b"M00000001\n", identity=(1, 5))
    events = feed(t, b"M00000002\n", identity=(1, 6))
    assert events[0]["reason"] == "recreated"
    assert delivered(events) == ["M00000002"]


def test_deleted_once_then_recreated_file_is_a_new_generation():
    t = LogTracker("1")
    feed(t, b"M00000001\n")
    events = feed(t, None, None, None)
    assert events == [{"type": "log_reset", "participant": "1", "reason": "deleted"}]
    events = feed(t, b"M00000001\nM00000002\n")
    assert delivered(events) == ["M00000001", "M00000002"]
    assert of_type(events, "log_reset") == []


def test_restart_then_append_is_growth_without_reset():
    t = LogTracker("1")
    feed(t, b"M00000001\n")
    t.restarted()
    events = feed(t, b"M00000001\nstarted again\nM00000002\n")
    assert delivered(events) == ["M00000002"]
    assert of_type(events, "log_reset") == []
    # the restart mark is used up by the first change: a later prefix is mid-rewrite again
    assert feed(t, b"M00000001\n") == []


def test_restart_then_truncate_is_a_new_generation_at_once():
    t = LogTracker("1")
    feed(t, b"M00000001\nM00000002\n")
    t.restarted()
    events = feed(t, b"")
    assert events == [{"type": "log_reset", "participant": "1", "reason": "truncated"}]
    assert delivered(feed(t, b"M00000001\n")) == ["M00000001"]


def test_restart_with_unchanged_log_keeps_waiting_for_a_change():
    t = LogTracker("1")
    feed(t, b"M00000001\n")
    t.restarted()
    assert feed(t, b"M00000001\n") == []
    assert of_type(feed(t, b"M0000"), "log_reset")[0]["reason"] == "truncated"


def test_partial_final_line_is_flushed_as_noise_once():
    t = LogTracker("1")
    feed(t, b"M00000001\nbye")
    assert t.flush() == [{"type": "noise", "participant": "1", "line_no": 2, "line": "bye"}]
    assert t.flush() == []
    assert feed(t, b"M00000001\nbye now\n") == []  # already reported as noise
    assert t.flush() == []


def test_pending_tokenless_line_is_reported_before_a_reset():
    t = LogTracker("1")
    feed(t, b"M00000001\nhalf a li")
    events = feed(t, b"other\n")
    assert [e["type"] for e in events] == ["noise", "log_reset", "noise"]
    assert events[0]["line"] == "half a li" and events[0]["line_no"] == 2
    assert events[2]["line_no"] == 1


def test_invalid_utf8_and_binary_bytes():
    log = b"\xff\xfe\x00bin M00000001 \xc3(\r\n\x80\x81\n"
    events = feed(LogTracker("1"), log)
    assert delivered(events) == ["M00000001"]
    assert events[0]["line"] == "\ufffd\ufffd\x00bin M00000001 \ufffd("
    assert events[0]["offset"] == 7
    assert events[1] == {"type": "noise", "participant": "1", "line_no": 2, "line": "\ufffd\ufffd"}


def test_long_lines_are_capped():
    events = feed(LogTracker("1"), b"x" * 5000 + b"M00000001" + b"y" * 5000 + b"\n")
    assert len(events[0]["line"]) == LINE_CAP
    assert events[0]["offset"] == 5000


_noise_line = st.text(alphabet="abcM0123 :[]", max_size=20).filter(lambda s: "M" not in s)


@st.composite
def logs(draw) -> tuple[bytes, list[str], list[tuple[int, str]]]:
    """A log of token lines and noise lines: (bytes, tokens in order, (line_no, noise))."""
    kinds = draw(st.lists(st.booleans(), min_size=1, max_size=40))
    lines, tokens, noise = [], [], []
    for line_no, is_token in enumerate(kinds, start=1):
        if is_token:
            token = f"M{len(tokens) + 1:08d}"
            prefix = draw(st.sampled_from(["", "[12:00:01.050] from 2: ", "got "]))
            tokens.append(token)
            lines.append(prefix + token)
        else:
            line = draw(_noise_line)
            noise.append((line_no, line))
            lines.append(line)
    return "\n".join(lines).encode() + b"\n", tokens, noise


@settings(max_examples=150, deadline=None)
@given(data=logs(), cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_property_any_chunking_yields_every_token_once_in_order(data, cuts):
    log, tokens, noise = data
    points = sorted({c % (len(log) + 1) for c in cuts} | {len(log)})
    t = LogTracker("1")
    events = feed(t, *(log[:p] for p in points)) + t.flush()
    assert delivered(events) == tokens
    assert [(e["line_no"], e["line"]) for e in of_type(events, "noise")] == noise
    assert of_type(events, "log_reset") == []


@settings(max_examples=100, deadline=None)
@given(data=logs(), steps=st.lists(st.tuples(st.integers(0, 10_000), st.booleans()), max_size=30))
def test_property_rewrites_and_renames_between_appends_count_each_token_once(data, steps):
    """Between appends the file may show a strict prefix (mid-rewrite) and get a new
    inode (temp-file rename): still every token exactly once, no reset."""
    log, tokens, _ = data
    t = LogTracker("1")
    events: list[dict] = []
    shown, inode = 0, 1
    for cut, renamed in steps:
        point = cut % (len(log) + 1)
        inode += renamed
        if point < shown:  # a rewrite in progress, then the rewrite completes
            events += feed(t, log[:point], identity=(1, inode))
        else:
            shown = point
        events += feed(t, log[:shown], identity=(1, inode))
    events += feed(t, log, identity=(1, inode + 1))
    assert delivered(events) == tokens
    assert of_type(events, "log_reset") == []


# --- the watcher on real files ----------------------------------------------------------


class Sink:
    """An `emit` that stamps each event with time.monotonic(), thread-safely."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict) -> float:
        now = time.monotonic()
        with self.lock:
            self.events.append({**event, "t": now})
        return now

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.events)

    def messages(self) -> list[str]:
        return delivered(self.snapshot())


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def rewrite_in_place(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def rewrite_by_rename(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def run_writer(path: Path, count: int, write: Callable[[Path, bytes], None], whole: bool):
    """Write `count` token lines (the whole log each time when `whole`); per token, the
    monotonic time right after it was written."""
    written: dict[str, float] = {}
    log = b""
    for n in range(1, count + 1):
        line = b"[t] from 1: " + tok(n) + b"\n"
        log += line
        write(path, log if whole else line)
        written[tok(n).decode()] = time.monotonic()
        time.sleep(0.002)
    return written


def latency_report(name: str, written: dict[str, float], events: list[dict]) -> float:
    lat = [e["t"] - written[e["message"]] for e in events if e["type"] == "deliver"]
    p50, worst = statistics.median(lat), max(lat)
    print(
        f"\n{name}: {len(lat)} tokens, latency p50 {p50 * 1000:.1f} ms, max {worst * 1000:.1f} ms"
    )
    return worst


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "write,whole",
    [(append, False), (rewrite_in_place, True), (rewrite_by_rename, True)],
    ids=["append", "rewrite-in-place", "temp-rename"],
)
def test_watcher_sees_every_token_once_and_soon(tmp_path: Path, write, whole):
    path = tmp_path / "p1.log"
    sink = Sink()
    watcher = LogWatcher(path, "1", sink)
    watcher.start()
    try:
        written = run_writer(path, 150, write, whole)
        want = list(written)
        wait_until(lambda: len(sink.messages()) >= len(want), 5, "all tokens seen")
    finally:
        watcher.close()
    events = sink.snapshot()
    assert delivered(events) == want
    assert of_type(events, "log_reset") == []
    assert [e["line_no"] for e in events] == list(range(1, len(want) + 1))
    assert latency_report(write.__name__, written, events) < 0.5


@pytest.mark.timeout(30)
def test_watcher_reports_truncation_and_deletion_as_new_generations(tmp_path: Path):
    path = tmp_path / "p1.log"
    sink = Sink()
    watcher = LogWatcher(path, "1", sink)
    watcher.start()
    try:
        path.write_bytes(b"M00000001\nM00000002\n")
        wait_until(lambda: len(sink.messages()) == 2, 5, "first generation")
        path.write_bytes(b"x\n")  # truncated in place to something that is not a prefix
        wait_until(lambda: of_type(sink.snapshot(), "log_reset"), 5, "truncation")
        path.unlink()
        wait_until(lambda: len(of_type(sink.snapshot(), "log_reset")) == 2, 5, "deletion")
        path.write_bytes(b"M00000001\n")
        wait_until(lambda: len(sink.messages()) == 3, 5, "recreated log")
    finally:
        watcher.close()
    events = sink.snapshot()
    assert [(e["type"], e.get("reason") or e.get("message") or e.get("line")) for e in events] == [
        ("deliver", "M00000001"),
        ("deliver", "M00000002"),
        ("log_reset", "truncated"),
        ("noise", "x"),
        ("log_reset", "deleted"),
        ("deliver", "M00000001"),
    ]


@pytest.mark.timeout(10)
def test_poll_now_reports_synchronously_and_close_flushes(tmp_path: Path):
    path = tmp_path / "p1.log"
    sink = Sink()
    watcher = LogWatcher(path, "1", sink, interval=60.0)  # the thread never polls again
    watcher.start()
    append(path, b"M00000001\n")
    watcher.poll_now()
    assert sink.messages() == ["M00000001"]
    append(path, b"M00000002\ngoodbye")
    started = time.monotonic()
    watcher.close()
    watcher.close()
    assert time.monotonic() - started < 1.0
    assert [e["type"] for e in sink.snapshot()] == ["deliver", "deliver", "noise"]
    assert sink.snapshot()[-1]["line"] == "goodbye"
    append(path, b"\nM00000003\n")
    watcher.poll_now()  # closed: nothing more
    assert sink.messages() == ["M00000001", "M00000002"]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("tick_ns", [1, 10_000_000], ids=["this-kernel", "coarse-10ms"])
def test_same_size_rewrite_within_one_timestamp_tick_is_seen(tmp_path: Path, monkeypatch, tick_ns):
    """A same-size in-place rewrite right after a read can leave the whole stat unchanged:
    kernels before 6.13 stamp mtime/ctime at jiffy resolution (simulated here by coarsening
    the stat the watcher compares to 10 ms ticks). The watcher must still read it."""

    def coarse(st: os.stat_result) -> tuple[int, ...]:
        ticks = (st.st_mtime_ns // tick_ns, st.st_ctime_ns // tick_ns)
        return (st.st_dev, st.st_ino, st.st_size, *ticks)

    monkeypatch.setattr(logwatch, "_signature", coarse)
    path = tmp_path / "p1.log"
    sink = Sink()
    watcher = LogWatcher(path, "1", sink, interval=60.0)
    watcher.start()
    for n in range(1, 21):
        with open(path, "r+b" if path.exists() else "wb") as f:
            f.write(tok(n) + b"\n")
        watcher.poll_now()
    watcher.close()
    assert sink.messages() == [tok(n).decode() for n in range(1, 21)]
    assert len(of_type(sink.snapshot(), "log_reset")) == 19


@pytest.mark.timeout(10)
def test_restarted_attributes_existing_content_to_the_old_process(tmp_path: Path):
    path = tmp_path / "p1.log"
    sink = Sink()
    watcher = LogWatcher(path, "1", sink)
    watcher.start()
    try:
        append(path, b"M00000001\n")
        watcher.restarted()  # polls first: M00000001 belongs to the old generation
        path.write_bytes(b"")  # the restarted program truncates its log when it starts...
        wait_until(lambda: of_type(sink.snapshot(), "log_reset"), 5, "the new generation")
        append(path, b"M00000001\n")  # ...and logs the same message again
        wait_until(lambda: len(sink.messages()) == 2, 5, "the repeated delivery")
    finally:
        watcher.close()
    events = sink.snapshot()
    assert [e["type"] for e in events] == ["deliver", "log_reset", "deliver"]
    assert events[1]["reason"] == "truncated"


@pytest.mark.timeout(10)
def test_a_failing_emit_is_raised_by_close(tmp_path: Path):
    path = tmp_path / "p1.log"

    def emit(event: dict) -> float:
        raise ValueError("recorder broken")

    watcher = LogWatcher(path, "1", emit)
    watcher.start()
    append(path, b"M00000001\n")
    with pytest.raises(RuntimeError, match="recorder broken"):
        watcher.close()


@pytest.mark.timeout(30)
def test_one_thread_watches_many_logs_cheaply(tmp_path: Path):
    sinks = [Sink() for _ in range(20)]
    group = LogWatchers()
    paths = [tmp_path / f"p{i}.log" for i in range(20)]
    watchers = [group.watch(p, str(i), s) for i, (p, s) in enumerate(zip(paths, sinks))]
    threads_before = threading.active_count()
    for w in watchers:
        w.start()
    group.start()
    try:
        assert threading.active_count() == threads_before + 1
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(1.0)  # measuring idle polling cost over a fixed window
        idle_cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        written: dict[tuple[int, str], float] = {}
        for n in range(1, 31):
            for i, p in enumerate(paths):
                append(p, tok(n) + b"\n")
                written[(i, tok(n).decode())] = time.monotonic()
            time.sleep(0.003)
        want = [tok(n).decode() for n in range(1, 31)]
        wait_until(lambda: all(s.messages() == want for s in sinks), 5, "every log seen")
    finally:
        group.close()
        group.close()
    lat = [e["t"] - written[(i, e["message"])] for i, s in enumerate(sinks) for e in s.events]
    print(
        f"\n20 logs, one thread: idle CPU {idle_cpu * 100:.1f}% of a core, latency p50 "
        f"{statistics.median(lat) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms"
    )
    assert all(s.messages() == want for s in sinks)
    assert max(lat) < 0.5
    assert idle_cpu < 0.5
