"""`pams bench impl`: throughput and latency of implementations side by side, each driven
through its adapter like everything else (no proxy on the measured path), alternating the
implementations round by round (docs/cli.md).

Two workloads per implementation and round: a **burst** of N msends written at once to
participant 1's stdin (throughput until every token is in every log), and **steady** sends
from every participant in turn at a target rate (latency from writing the line to the token in
another participant's log). Missing and duplicated deliveries, the coordinator's peak RSS and
CPU are counted too; the table ends with each figure's ratio to the first implementation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from harness.adapters.adapter import Adapter, AdapterError, build, load_adapter
from harness.exits import EXIT_ERROR, EXIT_FAIL, EXIT_PASS
from harness.running.logwatch import LogWatchers
from harness.running.ports import PortPicker
from harness.running.procs import StartError, Supervisor
from harness.scenarios.tokens import token

HOST = "127.0.0.1"
LOG = "messages.log"
TD = 5.0
SETTLE = 10.0  # seconds a workload may take to deliver everything before the rest is missing
# Logs are polled (harness.running.logwatch): every 5 ms in the burst (throughput over the whole
# burst), every 0.25 ms in the steady workload so a latency is read at most that late.
STEADY_POLL = 0.00025


@dataclass(frozen=True)
class Figures:
    """One implementation's figures in one round."""

    impl: str
    burst_msgs_per_s: float
    burst_deliveries_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    missing: int
    duplicated: int
    coordinator_rss_mib: float
    coordinator_cpu_s: float


class _Deliveries:
    """Every token's arrival times in every log (fed by the log watchers), and the time the
    last of an awaited set of deliveries came in (no polling: the bench's own CPU is kept off
    the cores the implementation runs on)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[tuple[str, str], list[float]] = {}
        self._waiting: set[tuple[str, str]] = set()
        self._all_in = threading.Event()
        self._last = 0.0

    def emit(self, event: dict[str, Any]) -> float:
        now = time.monotonic()
        if event.get("type") == "deliver":
            key = (event["participant"], event["message"])
            with self.lock:
                self.seen.setdefault(key, []).append(now)
                if key in self._waiting:
                    self._waiting.discard(key)
                    if not self._waiting:
                        self._last = now
                        self._all_in.set()
        return now

    def wait(self, tokens: list[str], members: list[str], deadline: float) -> float:
        """Wait until every member has every token or `deadline` passes; return the arrival
        time of the last one (`deadline` if some never came)."""
        pairs = {(p, m) for m in tokens for p in members}
        with self.lock:
            self._waiting = pairs - self.seen.keys()
            self._all_in.clear()
            arrived = [self.seen[pair][0] for pair in pairs - self._waiting]
            self._last = max(arrived, default=0.0)
            if not self._waiting:
                return self._last
        if self._all_in.wait(max(0.0, deadline - time.monotonic())):
            return self._last
        return deadline


class _System:
    """One implementation's coordinator and participants, started directly (no proxy)."""

    def __init__(self, adapter: Adapter, root: Path, k: int) -> None:
        self.adapter, self.root, self.k = adapter, root, k
        self.ports = PortPicker(*adapter.ports)
        self.sup = Supervisor(uuid.uuid4().hex[:12], lambda e: time.monotonic())
        self.logs = LogWatchers()
        self.deliveries = _Deliveries()
        self.members = [str(i) for i in range(1, k + 1)]
        self.children: dict[str, Any] = {}
        self.done = Counter[str]()
        self.coordinator: Any = None

    def start(self) -> None:
        a = self.adapter
        port = a.coordinator.port or self.ports.pick()
        port2 = self.ports.pick()
        base: dict[str, object] = {
            "python": sys.executable,
            "workdir": str(a.workdir),
            "td": f"{TD:g}",
            "coordinator_host": HOST,
            "coordinator_port": port,
            "coordinator_port2": port2,
            "port2": port2,
        }
        self.base = base
        cdir = self.root / "coordinator"
        cdir.mkdir(parents=True)
        conf = cdir / "coordinator.conf"
        values = {**base, "port": port, "config": str(conf), "config_name": conf.name}
        conf.write_text(a.coordinator_config(values))
        self.coordinator = self.sup.start(
            "coordinator", a.coordinator_argv(values), cdir, a.env_dict()
        )
        for line in a.preamble("coordinator", values):
            self.coordinator.write_line(line)
        self.sup.wait_listening(port, self.coordinator, a.timing.startup)
        self.logs.start()
        for p in self.members:
            self._start_participant(p)
        for p in self.members:
            self.command(p, "register", port=self.ports.pick())
        self.wait_done(len(self.members), self.adapter.timing.op_timeout)

    def _start_participant(self, p: str) -> None:
        a = self.adapter
        pdir = self.root / f"p{p}"
        pdir.mkdir()
        conf, log = pdir / "participant.conf", pdir / LOG
        values = {**self.base, "id": p, "log": str(log), "log_name": LOG}
        values.update(config=str(conf), config_name=conf.name)
        conf.write_text(a.participant_config(values))
        self.values = values
        watcher = self.logs.watch(log, p, self.deliveries.emit)
        watcher.start()
        done_re = a.commands.done_re

        def on_line(stream: str, line: str, p: str = p) -> None:
            if stream == "stdout" and done_re is not None and done_re.search(line):
                self.done[p] += 1

        child = self.sup.start(
            "p" + p, a.participant_argv(values), pdir, a.env_dict(), on_line=on_line
        )
        for line in a.preamble("participant", values):
            child.write_line(line)
        self.children[p] = child

    def command(self, p: str, f: str, **extra: Any) -> None:
        values = {**self.values, "id": p, **extra}
        self.children[p].write_line(self.adapter.command_line(f, values))

    def wait_done(self, count: int, timeout: float) -> None:
        """Wait for `count` reply lines in all (when the adapter matches them), else 1 s."""
        if self.adapter.commands.done_re is None:
            time.sleep(1.0)
            return
        deadline = time.monotonic() + timeout
        while sum(self.done.values()) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def resources(self) -> tuple[float, float]:
        """(RSS MiB, CPU seconds) of the coordinator's process tree."""
        try:
            proc = psutil.Process(self.coordinator.pid)
            procs = [proc, *proc.children(recursive=True)]
            rss = sum(x.memory_info().rss for x in procs) / 2**20
            cpu = sum(sum(x.cpu_times()[:2]) for x in procs)
        except psutil.Error:
            return 0.0, 0.0
        return rss, cpu

    def close(self) -> None:
        self.sup.close()
        self.logs.close()
        self.ports.close()


def _burst(system: _System, n: int, first: int) -> tuple[float, float, list[str]]:
    tokens = [token(first + i) for i in range(n)]
    start = time.monotonic()
    for t in tokens:
        system.command("1", "msend", message=t)
    done = system.deliveries.wait(tokens, system.members, start + SETTLE)
    elapsed = max(done - start, 1e-9)
    return n / elapsed, n * system.k / elapsed, tokens


def _steady(
    system: _System, rate: float, seconds: float, first: int
) -> tuple[list[float], list[str]]:
    written: dict[str, tuple[str, float]] = {}
    burst_poll, system.logs.interval = system.logs.interval, STEADY_POLL
    start, n = time.monotonic(), 0
    while time.monotonic() - start < seconds:  # one msend every 1/rate s, senders in turn
        p, t = system.members[n % system.k], token(first + n)
        written[t] = (p, time.monotonic())
        system.command(p, "msend", message=t)
        n += 1
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
    tokens = list(written)
    system.deliveries.wait(tokens, system.members, time.monotonic() + SETTLE)
    system.logs.interval = burst_poll
    latencies = []
    with system.deliveries.lock:
        for t, (sender, at) in written.items():
            for p in system.members:
                times = system.deliveries.seen.get((p, t))
                if p != sender and times:
                    latencies.append((times[0] - at) * 1000)
    return latencies, tokens


def measure(adapter: Adapter, k: int, n: int, rate: float, seconds: float) -> Figures:
    """Both workloads against `adapter` with `k` participants."""
    with tempfile.TemporaryDirectory(prefix="pams-bench-impl-") as tmp:
        system = _System(adapter, Path(tmp), k)
        try:
            system.start()
            msgs, deliveries, burst = _burst(system, n, 1)
            latencies, steady = _steady(system, rate, seconds, n + 1)
            rss, cpu = system.resources()
            expected = [(p, t) for t in burst + steady for p in system.members]
            with system.deliveries.lock:  # late deliveries may still come in
                seen = system.deliveries.seen
                missing = sum((p, t) not in seen for p, t in expected)
                duplicated = sum(len(times) - 1 for times in seen.values() if len(times) > 1)
        finally:
            system.close()
    ordered = sorted(latencies) or [float("nan")]
    return Figures(
        adapter.name,
        round(msgs, 1),
        round(deliveries, 1),
        round(statistics.median(ordered), 3),
        round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        round(ordered[-1], 3),
        missing,
        duplicated,
        round(rss, 1),
        round(cpu, 2),
    )


def _median(rounds: list[Figures]) -> Figures:
    """Per figure, the median over rounds (counts: the sum)."""
    fields = asdict(rounds[0])
    out: dict[str, Any] = {"impl": fields.pop("impl")}
    for key in fields:
        values = [getattr(r, key) for r in rounds]
        out[key] = sum(values) if key in ("missing", "duplicated") else statistics.median(values)
    return Figures(**out)


COLUMNS = (
    ("burst_msgs_per_s", "burst msg/s"),
    ("burst_deliveries_per_s", "deliv/s"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p99_ms", "p99 ms"),
    ("latency_max_ms", "max ms"),
    ("missing", "missing"),
    ("duplicated", "dup"),
    ("coordinator_rss_mib", "coord MiB"),
    ("coordinator_cpu_s", "coord CPU s"),
)


def table(results: list[Figures]) -> str:
    """The figures of each implementation, then each one's ratio to the first."""
    width = max(len(r.impl) for r in results + [results[0]]) + 2
    head = f"{'impl':<{width}}" + "".join(f"{label:>13}" for _, label in COLUMNS)
    rows = [head]
    for r in results:
        rows.append(f"{r.impl:<{width}}" + "".join(f"{getattr(r, k):>13g}" for k, _ in COLUMNS))
    base = results[0]
    for r in results[1:]:
        cells = []
        for key, _ in COLUMNS:
            a, b = getattr(base, key), getattr(r, key)
            cells.append(f"{b / a:>12.2f}x" if a else f"{'-':>13}")
        rows.append(f"{r.impl + ' / ' + base.impl:<{width}}" + "".join(cells))
    return "\n".join(rows)


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{prog} impl", description=__doc__.split("\n\n")[0])
    p.add_argument("--impl", action="append", required=True, metavar="ADAPTER", help="repeatable")
    p.add_argument("--participants", type=int, default=3, metavar="K", help="default 3")
    p.add_argument("--messages", type=int, default=300, metavar="N", help="burst size (300)")
    p.add_argument("--rate", type=float, default=200.0, help="steady msg/s in all (200)")
    p.add_argument("--seconds", type=float, default=3.0, help="steady workload length (3)")
    p.add_argument("--rounds", type=int, default=1, help="rounds, alternating impls (1)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    return p


def main(argv: list[str], prog: str = "pams bench") -> int:
    args = parser(prog).parse_args(argv)
    if args.participants < 2 or args.messages < 1 or args.rate <= 0 or args.rounds < 1:
        print(
            f"{prog} impl: --participants >= 2, --messages, --rate, --rounds > 0", file=sys.stderr
        )
        return EXIT_ERROR
    try:
        adapters = [load_adapter(ref) for ref in args.impl]
        for adapter in adapters:
            build(adapter)
    except (AdapterError, OSError) as e:
        print(f"{prog} impl: {e}", file=sys.stderr)
        return EXIT_ERROR
    rounds: dict[str, list[Figures]] = {a.name: [] for a in adapters}
    try:
        for i in range(args.rounds):
            for adapter in adapters:
                print(
                    f"round {i + 1}/{args.rounds}: {adapter.name} ...", file=sys.stderr, flush=True
                )
                fig = measure(adapter, args.participants, args.messages, args.rate, args.seconds)
                rounds[adapter.name].append(fig)
    except StartError as e:
        print(f"{prog} impl: cannot run the implementation: {e}", file=sys.stderr)
        return EXIT_ERROR
    results = [_median(rounds[a.name]) for a in adapters]
    if args.json:
        print(
            json.dumps({"participants": args.participants, "results": [asdict(r) for r in results]})
        )
    else:
        print(table(results))
    bad = any(r.missing or r.duplicated for r in results)
    return EXIT_FAIL if bad else EXIT_PASS
