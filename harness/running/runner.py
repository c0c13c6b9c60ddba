"""One scenario against one implementation: start its processes behind recording proxies,
drive the schedule (one worker thread per participant, one for the coordinator), watch the
logs, inject faults, probe ports, and record everything to `trace.jsonl`. The runner records;
it never judges (the CLI hands the trace to the checkers)."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import itertools
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from checkers import traceformat as tf
from harness.adapters import adapter as adapters
from harness.adapters.adapter import Adapter
from harness.running import limits as lim
from harness.running import opmachine as om
from harness.running import sandbox as sb
from harness.running.opmachine import OpMachine
from harness.running.pacing import Pacer
from harness.running.ports import PortPicker, bind_error
from harness.running.recorder import Recorder
from harness.scenarios.model import COMMANDS, COORDINATOR, Scenario, Step

Progress = Callable[[str], None]
HOST = "127.0.0.1"
DEFAULT_LATENCY = 1.0  # L when the scenario does not set latency_bound (docs/rules.md)
PROBE_GRACE = 2.0  # seconds a released port may take to become bindable after the reply
LOG_NAME = "messages.log"


class RunError(Exception):
    """The implementation could not be run (build failed, never started); str says why."""


@dataclass(frozen=True)
class RunResult:
    """Where a run's trace is, or why there is none (`error`: could not run the
    implementation; `skipped`: a fault could not be applied faithfully here)."""

    scenario: str
    run_dir: Path
    trace_path: Optional[Path]
    error: Optional[str] = None
    skipped: Optional[str] = None
    seconds: float = 0.0
    notes: tuple[str, ...] = ()


@dataclass
class _Pending:
    """The op a participant's worker waits on; `outcome` is set when the machine settles it."""

    op: int
    f: str
    port: Optional[int]
    t: float = 0.0  # when it was invoked
    request_at: Optional[float] = None  # when its first request bytes reached the coordinator
    index: int = 0  # this op's command is the index-th written to the current process
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Optional[str] = None


@dataclass
class _Participant:
    pid: str
    workdir: Path
    proxy_port: int
    proxy_port2: int
    machine: OpMachine
    proxy: Any = None
    child: Any = None
    watcher: Any = None
    clock: Any = None
    port: Optional[int] = None
    port2: int = 0
    pending: Optional[_Pending] = None

    @property
    def log(self) -> Path:
        return self.workdir / LOG_NAME


_ACTIVE: set = set()
_ACTIVE_LOCK = threading.Lock()


def abort_all() -> None:
    """Stop every run in progress in this process (Ctrl-C during `pams grade`): each stops
    its schedule, kills its processes and leaves a truncated trace."""
    with _ACTIVE_LOCK:
        runs = list(_ACTIVE)
    for run in runs:
        run.aborted = True
        run.stop.set()
    from harness.running import isolated

    isolated.stop_all()  # runs in sandboxes: each is asked to do the same


def require_empty(path: Path, what: str) -> Path:
    """`path`, if it is absent or an empty directory (else ValueError naming `what`): old logs
    in a reused directory would read as deliveries."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"{path}: {what} exists and is not empty")
    return path


def fresh_dir(output: Optional[Path], root: str, name: str = "") -> Path:
    """`output` (absent or empty), or a new `root/TIME[-name][-N]` when it is None."""
    if output is not None:
        return require_empty(output, "output directory")
    stem = time.strftime("%Y%m%d-%H%M%S") + (f"-{name}" if name else "")
    output, n = Path(root) / stem, 1
    while output.exists():
        n += 1
        output = Path(root) / f"{stem}-{n}"
    return output


def run_scenario(
    adapter: Adapter,
    scenario: Scenario,
    out_dir: Path,
    progress: Optional[Progress] = None,
    sandboxed: Optional[bool] = None,
) -> RunResult:
    """Run `scenario` against `adapter`, recording into `out_dir` (created; must be empty or
    absent, else ValueError: old logs there would read as deliveries). Never raises for the
    implementation's misbehaviour: see RunResult. With `sandboxed` (default: whenever a
    sandbox works here, harness.running.sandbox) the run happens in its own sandbox."""
    out = require_empty(Path(out_dir), "run directory")
    say = progress or (lambda _m: None)
    # absolute: each process runs in its own directory, so {config}/{log} must not be relative
    out = out.absolute()
    sandbox = sb.detect("auto") if sandboxed else sb.detect() if sandboxed is None else None
    if sandbox is None or sandbox.kind == "none":
        return _Run(adapter, scenario, out, say, build=True).execute()
    from harness.running import isolated

    start = time.monotonic()
    failed = _build(adapter, out)
    if failed:
        return RunResult(scenario.name, out, None, error=failed, seconds=time.monotonic() - start)
    out.mkdir(parents=True, exist_ok=True)
    skipped = clock_skip_reason(adapter, scenario, out) if scenario.needs_clock else None
    if skipped:  # measured here, once per process, not in every run's own process
        return RunResult(
            scenario.name, out, None, skipped=skipped, seconds=time.monotonic() - start
        )
    job = {"adapter": adapter, "scenario": scenario, "out_dir": out}
    return isolated.run(job, sandbox, say)


def run_prepared(
    adapter: Adapter, scenario: Scenario, out_dir: Path, progress: Optional[Progress] = None
) -> RunResult:
    """The run itself, in a sandbox's process: the parent checked `out_dir`, built the
    implementation and checked clock injection (run_scenario)."""
    return _Run(adapter, scenario, out_dir, progress or (lambda _m: None), build=False).execute()


def _unsandboxed() -> sb.Sandbox:
    """The trace header's `sandbox` of a run started without one: why, in one line."""
    usual = sb.detect()
    if usual.kind == "none":
        return usual
    return sb.Sandbox("none", f"started without one (sandboxed=False), though {usual.reason}")


def clock_skip_reason(adapter: Adapter, sc: Scenario, run_dir: Path) -> Optional[str]:
    """Why this scenario's clock faults cannot be applied faithfully here, or None: each
    runtime that gets a fake clock is self-tested once (harness.running.clock.selftest)."""
    from harness.running import clock

    needs: dict[str, str] = {}  # process kind -> the strongest clock fault it gets
    for target, _ in sc.clock_offsets:
        needs.setdefault(_kind(target), "clock_offset")
    for step in sc.steps:
        if step.action == "clock_step":
            needs[_kind(step.target)] = "clock_step"
    for kind, fault in sorted(needs.items()):
        spec = adapter.coordinator if kind == "coordinator" else adapter.participant
        runtime = clock.runtime_of(spec.cmd[0])
        try:
            support = clock.selftest(runtime, adapter.clock.fake_monotonic, _cache_dir())
            clock.FakeClock(run_dir / "clock-check", 0.0, False).env()
        except clock.ClockUnavailable as e:
            return f"clock faults skipped: {e}"
        reason = support.skip_reason(fault)
        if reason:
            return f"{fault} skipped for the {kind} ({runtime}): {reason}"
    return None


def _build(adapter: Adapter, out: Path) -> Optional[str]:
    """Build the implementation once per process; why it failed (output in build.log)."""
    try:
        adapters.build(adapter)
    except adapters.BuildError as e:
        out.mkdir(parents=True, exist_ok=True)
        (out / "build.log").write_text(getattr(e, "output", "") or "")
        return f"{e} (output in {out / 'build.log'})"
    return None


class _Run:
    """One run: builds, starts the coordinator and the participants behind their proxies,
    drives the schedule (one worker thread per target; `Pacer` says when each step is due),
    feeds each participant's op-completion machine what its proxy and stdout show and carries
    out what the machine decides, injects faults (a table per fault), probes ports, and tears
    everything down. It records and never judges."""

    def __init__(
        self, adapter: Adapter, sc: Scenario, run_dir: Path, progress: Progress, build: bool
    ):
        self.adapter, self.sc, self.run_dir, self.say = adapter, sc, run_dir, progress
        self.build = build
        self.sandbox = sb.inside() or _unsandboxed()
        self.cgroup: Optional[lim.RunCgroup] = None
        self.run_id = uuid.uuid4().hex[:12]
        self.ports = PortPicker(*adapter.ports)
        self.op_ids = itertools.count(1)
        self.lock = threading.Lock()  # the op machines, and the order of what they emit
        self.done_re = adapter.commands.done_re
        self.policy = adapter.commands.policy(
            sc.latency_bound if sc.latency_bound is not None else DEFAULT_LATENCY,
            adapter.timing.op_timeout,
        )
        self.pacer = Pacer(0.0, adapter.timing.op_timeout)  # t0 set when the schedule starts
        self.labelled = threading.Condition(self.lock)
        self.parts: dict[str, _Participant] = {}
        self.coordinator: Any = None
        self.coordinator_clock: Any = None
        self.coordinator_port = 0
        self.coordinator_port2 = 0
        self.rec: Optional[Recorder] = None
        self.sup: Any = None
        self.hub: Any = None
        self.logs: Any = None
        self.t0 = 0.0
        self.stop = threading.Event()
        self.notes: list[str] = []
        self.aborted = False
        self.offsets: dict[str, float] = dict(sc.clock_offsets)

    # ------------------------------------------------------------------ lifecycle

    def execute(self) -> RunResult:
        start = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        trace = self.run_dir / "trace.jsonl"
        try:
            skipped = self._prepare()
            if skipped:
                return RunResult(
                    self.sc.name,
                    self.run_dir,
                    None,
                    skipped=skipped,
                    seconds=time.monotonic() - start,
                )
            with self._port_lock(), self._active():
                self._record(trace)
        except RunError as e:
            return RunResult(
                self.sc.name,
                self.run_dir,
                trace if trace.exists() else None,
                error=str(e),
                seconds=time.monotonic() - start,
            )
        return RunResult(
            self.sc.name,
            self.run_dir,
            trace,
            seconds=time.monotonic() - start,
            notes=tuple(self.notes),
        )

    @contextlib.contextmanager
    def _active(self) -> Iterator[None]:
        with _ACTIVE_LOCK:
            _ACTIVE.add(self)
        try:
            yield
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(self)

    def _prepare(self) -> Optional[str]:
        """Build the implementation once; check clock injection when the scenario needs it."""
        if not self.build:  # the parent of a sandboxed run did both
            return None
        failed = _build(self.adapter, self.run_dir)
        if failed:
            raise RunError(failed)
        return (
            clock_skip_reason(self.adapter, self.sc, self.run_dir) if self.sc.needs_clock else None
        )

    @contextlib.contextmanager
    def _port_lock(self) -> Iterator[None]:
        """Serialize runs of adapters with a hard-coded coordinator port (docs/adapter.md)."""
        port = self.adapter.coordinator.port
        if not port or self.sandbox.kind != "none":  # a sandbox has a network of its own
            yield
            return
        path = Path(tempfile.gettempdir()) / f"pams-port-{port}.lock"
        with open(path, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _record(self, trace: Path) -> None:
        from harness.proxy.hub import ProxyHub
        from harness.running.logwatch import LogWatchers
        from harness.running.procs import StartError, Supervisor, listening_ports

        if self.sandbox.kind != "none":
            self.cgroup = lim.RunCgroup.create(self.run_id, self.adapter.limits)
        self.rec = Recorder(trace, self._header())
        self.sup = Supervisor(self.run_id, self.rec.emit, on_exit=self._on_exit)
        self.hub = ProxyHub(self._emit, listening=listening_ports)
        self.logs = LogWatchers()
        finished = False
        try:
            self.hub.start()
            self.logs.start()
            self._start_coordinator()
            for p in self.sc.participants:
                self._start_participant(p)
            self._drive()
            if not self.stop.is_set():
                self.say(f"draining for {self.sc.drain:g} s")
                self.stop.wait(self.sc.drain)
            finished = not self.aborted
        except StartError as e:
            raise RunError(str(e)) from None
        finally:
            self._teardown(finished)

    def _teardown(self, finished: bool) -> None:
        assert self.rec is not None
        self.stop.set()
        with _signals_deferred():  # a second Ctrl-C must not cut the kill short
            with contextlib.suppress(Exception):
                self.sup.close()
            self._limits_reached()
            with contextlib.suppress(Exception):
                self.logs.close()  # a final read and flush of every log
            with contextlib.suppress(Exception):
                self.hub.close()
            self.ports.close()
            if finished:
                self.rec.finish()
            else:
                self.rec.abandon()

    def _header(self) -> dict[str, Any]:
        sc, a = self.sc, self.adapter
        header: dict[str, Any] = tf.header(
            sc.td,
            list(sc.participants),
            run_id=self.run_id,
            created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            implementation={"name": a.name, "adapter": str(a.path) if a.path else None},
            scenario=sc.to_json(),
            seed=sc.seed,
            boundary=sc.boundary,
            deliveries="proxy+log" if a.proxy.rewrite_ports else "log",
            op_timeout=a.timing.op_timeout,
            exit_on_deregister=a.participant.exit_on_deregister,
            harness={"python": sys.version.split()[0]},
            sandbox=self.sandbox.header(),
            limits={**asdict(a.limits), "enforced_by": self._enforcement()},
        )
        if sc.tolerance is not None:
            header["tolerance"] = sc.tolerance
        if sc.latency_bound is not None:
            header["latency_bound"] = sc.latency_bound
        return header

    # ------------------------------------------------------------------ processes

    def _values(self, **kw: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "python": sys.executable,
            "workdir": str(self.adapter.workdir),
            "td": adapters.format_td(self.sc.td),
            "coordinator_host": HOST,
            "coordinator_port": self.coordinator_port,
        }
        values.update(kw)
        return values

    def _env(self, values: dict[str, Any], fake_clock: Any) -> dict[str, str]:
        env = self.adapter.env_dict()
        env["PYTHONUNBUFFERED"] = env.get("PYTHONUNBUFFERED", "1")
        if fake_clock is not None:
            env.update(fake_clock.env())
        return env

    def _fake_clock(self, target: str, workdir: Path) -> Any:
        offsets = dict(self.sc.clock_offsets)
        stepped = any(s.target == target and s.action == "clock_step" for s in self.sc.steps)
        if target not in offsets and not stepped:
            return None
        from harness.running.clock import FakeClock

        clock = FakeClock(
            workdir / "faketime.rc", offsets.get(target, 0.0), self.adapter.clock.fake_monotonic
        )
        return clock

    def _start_coordinator(self) -> None:
        a = self.adapter
        workdir = self.run_dir / "coordinator"
        workdir.mkdir(exist_ok=True)
        port = a.coordinator.port or self.ports.pick()
        self.coordinator_port = port
        config = workdir / "coordinator.conf"
        self.coordinator_port2 = self.ports.pick()
        values = self._values(
            port=port,
            config=str(config),
            config_name=config.name,
            port2=self.coordinator_port2,
            coordinator_port2=self.coordinator_port2,
        )
        config.write_text(a.coordinator_config(values))
        self.coordinator_clock = self._fake_clock(COORDINATOR, workdir)
        self.say(f"starting the coordinator on port {port}")
        self.coordinator = self.sup.start(
            COORDINATOR,
            self._contained(a.coordinator_argv(values), workdir),
            workdir,
            self._env(values, self.coordinator_clock),
            wrapped=self.sandbox.isolates_files,  # bwrap reports death by signal N as 128 + N
        )
        self._clock_fault(COORDINATOR, self.coordinator_clock)
        for line in a.preamble("coordinator", values):
            self.coordinator.write_line(line)
        self.sup.wait_listening(port, self.coordinator, a.timing.startup)

    def _start_participant(self, p: str) -> None:
        a = self.adapter
        workdir = self.run_dir / f"p{p}"
        workdir.mkdir(exist_ok=True)
        part = _Participant(
            p, workdir, self.ports.pick(), self.ports.pick(), OpMachine(self.policy)
        )
        part.port2 = self.ports.pick()
        self.parts[p] = part
        part.proxy = self.hub.add_participant(
            p,
            [
                (part.proxy_port, self.coordinator_port),
                (part.proxy_port2, self.coordinator_port2),
            ],
            on_control=lambda kind, conn, data, p=p: self._control(p, kind, conn, data),
            port_source=self.ports.pick,
            rewrite_ports=a.proxy.rewrite_ports,
        )
        config = workdir / "participant.conf"
        values = self._participant_values(part)
        config.write_text(a.participant_config(values))
        part.clock = self._fake_clock(p, workdir)
        cap = self.adapter.limits.file_size
        part.watcher = self.logs.watch(part.log, p, self.rec.emit, cap)  # type: ignore[union-attr]
        part.watcher.start()
        self._spawn(part)
        self._clock_fault(p, part.clock)

    def _participant_values(self, part: _Participant, **kw: Any) -> dict[str, Any]:
        config = part.workdir / "participant.conf"
        return self._values(
            id=part.pid,
            log=str(part.log),
            log_name=LOG_NAME,
            config=str(config),
            config_name=config.name,
            coordinator_port=part.proxy_port,
            coordinator_port2=part.proxy_port2,
            port2=part.port2,
            **kw,
        )

    def _spawn(self, part: _Participant) -> None:
        values = self._participant_values(part)
        self._feed(part, om.Restarted(self._now()))
        part.child = self.sup.start(
            part.pid,
            self._contained(self.adapter.participant_argv(values), part.workdir),
            part.workdir,
            self._env(values, part.clock),
            on_line=lambda stream, line, p=part.pid: self._line(p, stream, line),
            prompt=self.adapter.commands.prompt_re,
            wrapped=self.sandbox.isolates_files,  # bwrap reports death by signal N as 128 + N
        )
        for line in self.adapter.preamble("participant", values):
            part.child.write_line(line)

    def _contained(self, argv: list[str], workdir: Path) -> list[str]:
        """`argv` inside the run's limits and, with bubblewrap, its filesystem view (as is
        without a sandbox)."""
        if self.sandbox.kind == "none":
            return argv
        view = sb.view_for(workdir, self.adapter.workdir, self.run_dir, sb.runtime_paths())
        return [
            *lim.prelude(self.cgroup),
            *sb.inner_argv(self.sandbox, view),
            *lim.rlimits(self.adapter.limits, self.cgroup),
            *argv,
        ]

    def _enforcement(self) -> str:
        if self.sandbox.kind == "none":
            return "none (limits apply inside a sandbox)"
        cgroup = (
            f"cgroup v{self.cgroup.version}"
            if self.cgroup
            else "no cgroup (memory and cpu not limited)"
        )
        rlimit = "prlimit" if shutil.which("prlimit") else "no prlimit"
        return f"{cgroup}, {rlimit}"

    def _limits_reached(self) -> None:
        """Record each limit the run's programs reached, then remove the run's cgroup."""
        if self.cgroup is None:
            return
        for hit in self.cgroup.hits():
            self.notes.append(hit.detail)
            self._emit(tf.limit(hit.limit, "run", hit.detail))
        self.cgroup.close()

    def _clock_fault(self, target: str, fake_clock: Any) -> None:
        if fake_clock is not None:
            offset = dict(self.sc.clock_offsets).get(target, 0.0)
            self._emit(tf.fault("clock_offset", target, offset=offset))

    def _on_exit(self, target: str, returncode: Optional[int]) -> None:
        """A participant that exits is restarted before its next command (adapter permitting);
        a coordinator that exits ends the schedule early: the trace shows what happened."""
        if target in self.parts and self.parts[target].proxy is not None:
            self.parts[target].proxy.release_delivery_ports()
        if target == COORDINATOR and not self.stop.is_set():
            self.notes.append(
                f"the coordinator exited with code {returncode} during the run; "
                "the schedule was stopped there"
            )
            self.stop.set()

    # ------------------------------------------------------------------ schedule

    def _drive(self) -> None:
        by_target: dict[str, list[Step]] = {}
        for step in self.sc.steps:
            by_target.setdefault(step.target, []).append(step)
        self.t0 = self.pacer.t0 = self.rec.now()  # type: ignore[union-attr]
        self._emit({"type": "schedule", "event": "start", "steps": len(self.sc.steps)})
        self.say(f"driving {len(self.sc.steps)} steps over {self.sc.duration:.1f} s")
        workers = [
            threading.Thread(target=self._worker, args=(t, steps), daemon=True, name=f"pams-{t}")
            for t, steps in by_target.items()
        ]
        for w in workers:
            w.start()
        bound = self.sc.duration + len(self.sc.steps) * (self.adapter.timing.op_timeout + 2)
        deadline = time.monotonic() + bound + 10
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
        if any(w.is_alive() for w in workers):
            raise RunError(f"the schedule did not finish within {bound + 10:.0f} s")

    def _worker(self, target: str, steps: list[Step]) -> None:
        for step in steps:
            if not self._wait_for(step):
                return
            self.say(f"{step.describe()}")
            pending: Optional[_Pending] = None
            if target == COORDINATOR:
                self._coordinator_fault(step)
            elif step.action in COMMANDS:
                pending = self._op(self.parts[target], step)
            else:
                self._participant_fault(self.parts[target], step)
            if step.label:
                self._mark(step.label, pending.request_at if pending else None)
            if pending is not None:
                self._after_op(self.parts[target], pending)

    def _wait_for(self, step: Step) -> bool:
        """Wait until `step` is due: its planned time, and when it follows a labelled step,
        the moment that step took effect (its request reached the coordinator; a fault: when
        it was injected) plus the planned gap between them; a command is then sent early by
        the time the participant last took to pass a command on to the coordinator and half
        the time the coordinator took to acknowledge it (re-read while waiting), so the
        offline periods and message ages a scenario intends hold at the coordinator however
        slow the program is. False when the run is stopping."""
        anchor = self.sc.label(step.follows) if step.follows else None
        if step.follows:
            bound = self.adapter.timing.op_timeout * 3 + step.at
            with self.labelled:
                self.labelled.wait_for(
                    lambda: step.follows in self.pacer.effects or self.stop.is_set(), bound
                )
        while not self.stop.is_set():
            with self.lock:
                delay = self.pacer.due(step, anchor) - self._now()
            if delay <= 0:
                return True
            if self.stop.wait(min(delay, 0.05)):
                return False
        return False

    def _mark(self, label: str, at: Optional[float]) -> None:
        with self.labelled:
            self.pacer.took_effect(label, self._now() if at is None else at)
            self.labelled.notify_all()

    # ------------------------------------------------------------------ ops

    def _op(self, part: _Participant, step: Step) -> _Pending:
        """Carry out one command (until the machine settles it)."""
        a = self.adapter
        self._ensure_running(part)
        f = step.action
        port = None
        if f in ("register", "reconnect"):
            port = part.port if step.port == "same" and part.port else self.ports.pick()
        values = self._participant_values(part, port=port or "", message=step.message or "")
        line = a.command_line(f, values)
        pending = _Pending(next(self.op_ids), f, port)
        event = tf.invoke(pending.op, part.pid, f, planned=round(self.t0 + step.at, 6))
        if port is not None:
            event["port"] = port
        if step.message is not None:
            event["message"] = step.message
        with self.lock:
            t = pending.t = self._emit(event)
            part.pending = pending
            self._run_actions(part, part.machine.handle(om.Invoke(pending.op, f, t)))
            pending.index = part.machine.written
        part.proxy.arm(pending.op, f, port)
        part.child.write_line(line)
        self._await(part, pending)
        if port is not None:
            part.port = port
        return pending

    def _after_op(self, part: _Participant, pending: _Pending) -> None:
        """The port probe after a disconnect/deregister, and the adapter's min_gap."""
        if pending.f in ("disconnect", "deregister") and pending.outcome == "ok" and part.port:
            self._probe(part, pending)
        if self.adapter.commands.min_gap:
            self.stop.wait(self.adapter.commands.min_gap)

    def _await(self, part: _Participant, pending: _Pending) -> None:
        """Wait for the machine to settle `pending`, ticking it at its deadlines."""
        while not pending.done.is_set():
            with self.lock:
                deadline = part.machine.deadline()
            wait = 0.05 if deadline is None else max(0.0, deadline - self._now())
            if pending.done.wait(min(wait, 0.05)):
                return
            self._feed(part, om.Tick(self._now()))

    def _ensure_running(self, part: _Participant) -> None:
        if part.child.alive() or not self.adapter.participant.restart_on_exit:
            return
        self._emit(tf.process(part.pid, "restart", reason="exited before its next command"))
        part.watcher.restarted()
        self._spawn(part)

    def _feed(self, part: _Participant, event: om.Event) -> None:
        with self.lock:
            self._run_actions(part, part.machine.handle(event))

    def _run_actions(self, part: _Participant, actions: list[om.Action]) -> None:
        """Carry out the machine's actions (caller holds the lock, so events keep order)."""
        for action in actions:
            if isinstance(action, om.RequestSeen):
                pending = part.pending
                if pending is not None and pending.op == action.op:
                    pending.request_at = action.t
                    if pending.index > 1:  # the first command also waits for the start-up
                        self.pacer.measured(part.pid, lag=action.t - pending.t)
                self._ready_probe(part, action)
                continue
            self._emit(action.event())
            if isinstance(action, om.Settle):
                part.proxy.disarm(action.op)
                self._settled(part, action)

    def _settled(self, part: _Participant, settle: om.Settle) -> None:
        """Wake the worker waiting on the op; learn how long the coordinator took to ack."""
        pending = part.pending
        if pending is None or pending.op != settle.op:
            return
        acked = settle.outcome == "ok" and dict(settle.fields).get("acknowledged") is not False
        if acked and pending.request_at is not None and pending.index > 1:
            self.pacer.measured(part.pid, ack=settle.t - pending.request_at)
        pending.outcome = settle.outcome
        pending.done.set()

    def _control(self, p: str, kind: str, conn: int, data: bytes) -> None:
        """A control event from the participant's proxy (loop thread)."""
        part = self.parts.get(p)
        if part is None:
            return
        self._feed(part, om.control_event(kind, conn, data, self._now()))

    def _line(self, p: str, stream: str, line: str) -> None:
        """A stdout line: judged once the proxy has passed on every byte it had before it."""
        part = self.parts.get(p)
        if stream != "stdout" or part is None or part.proxy is None:
            return
        self.hub.barrier(part.proxy)
        self._feed(part, om.Line(line, self._now()))

    def _now(self) -> float:
        assert self.rec is not None
        return self.rec.now()

    def _emit(self, event: dict) -> float:
        assert self.rec is not None
        return self.rec.emit(event)

    def _ready_probe(self, part: _Participant, seen: om.RequestSeen) -> None:
        """When a register/reconnect request reaches the coordinator, is thread-B listening
        on the port it advertises? (The assignment: it must be, before the request is sent.)"""
        pending = part.pending
        if seen.f not in ("register", "reconnect") or pending is None or pending.port is None:
            return
        from harness.running.procs import listening_ports

        try:
            ok = pending.port in listening_ports()
        except OSError:
            return
        self._emit(tf.probe("listening", part.pid, pending.port, ok, op=seen.op))

    def _probe(self, part: _Participant, pending: _Pending) -> None:
        """Once a disconnect/deregister has returned (its reply line, when the adapter has a
        done_pattern; else its completion): can thread-B's port be bound again? Retried for
        PROBE_GRACE seconds so a busy machine's scheduling delay is not a violation."""
        port = part.port
        assert port is not None
        replied = self._await_reply(part, pending)
        deadline = time.monotonic() + PROBE_GRACE
        while True:
            error = bind_error(port, HOST)
            if not error or time.monotonic() >= deadline or self.stop.is_set():
                break
            time.sleep(0.01)
        after = "reply line" if replied else "completion"
        event = tf.probe("port_released", part.pid, port, not error, after=after)
        if error:
            event["error"] = f"{error} (still after {PROBE_GRACE:g} s)"
        self._emit(event)

    def _await_reply(self, part: _Participant, pending: _Pending) -> bool:
        """Wait (L at most: the line may never come when the adapter's pattern matches only
        errors) for the command's reply line, if the adapter matches one."""
        if self.done_re is None:
            return False
        deadline = time.monotonic() + min(self.adapter.timing.op_timeout, self.policy.latency)
        while part.machine.done_lines < pending.index and not self.stop.is_set():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return part.machine.done_lines >= pending.index

    # ------------------------------------------------------------------ faults

    def _participant_fault(self, part: _Participant, step: Step) -> None:
        event = tf.fault(step.action, part.pid, planned=round(self.t0 + step.at, 6))
        if step.action == "clock_step":
            self._step_clock(part.clock, part.pid, step)
            return
        _PARTICIPANT_FAULTS[step.action](self, part, event)

    def _kill(self, part: _Participant, event: dict[str, Any]) -> None:
        self._emit(event)
        part.child.kill()
        part.proxy.release_delivery_ports()  # the coordinator meets a refusal, as direct
        self._feed(part, om.Killed(self._now()))

    def _restart(self, part: _Participant, event: dict[str, Any]) -> None:
        if part.child.alive():
            part.child.kill()
        self._emit(event)
        part.watcher.restarted()
        self._spawn(part)

    def _pause(self, part: _Participant, event: dict[str, Any]) -> None:
        self._emit(event)
        part.child.pause()
        self._feed(part, om.Hold(self._now()))

    def _resume(self, part: _Participant, event: dict[str, Any]) -> None:
        part.child.resume()
        self._emit(event)
        self._feed(part, om.Release(self._now()))

    def _partition(self, part: _Participant, event: dict[str, Any]) -> None:
        self._emit(event)
        part.proxy.partition()

    def _heal(self, part: _Participant, event: dict[str, Any]) -> None:
        part.proxy.heal()
        self._emit(event)

    def _coordinator_fault(self, step: Step) -> None:
        event = tf.fault(step.action, COORDINATOR, planned=round(self.t0 + step.at, 6))
        if step.action == "pause":
            self._emit(event)
            self.coordinator.pause()
            for part in self.parts.values():
                self._feed(part, om.Hold(self._now()))
        elif step.action == "resume":
            self.coordinator.resume()
            self._emit(event)
            for part in self.parts.values():
                self._feed(part, om.Release(self._now()))
        elif step.action == "clock_step":
            self._step_clock(self.coordinator_clock, COORDINATOR, step)

    def _step_clock(self, fake_clock: Any, target: str, step: Step) -> None:
        assert fake_clock is not None and step.offset is not None
        self.offsets[target] = self.offsets.get(target, 0.0) + step.offset
        fake_clock.set_offset(self.offsets[target])
        self._emit(tf.fault("clock_step", target, offset=step.offset))


_PARTICIPANT_FAULTS: dict[str, Callable[[_Run, _Participant, dict[str, Any]], None]] = {
    "kill": _Run._kill,
    "restart": _Run._restart,
    "pause": _Run._pause,
    "resume": _Run._resume,
    "partition": _Run._partition,
    "heal": _Run._heal,
}


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """In the main thread, hold SIGINT/SIGTERM until the block ends (teardown is bounded), then
    hand the first one that came to the handler that was in place (KeyboardInterrupt for
    SIGINT); elsewhere (signals only reach the main thread) do nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda sig, _frame: came.append(sig)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: installed outside Python; ours stays (harmless)
                signal.signal(sig, handler)
    if came:
        handler = previous[signal.Signals(came[0])]
        if callable(handler):
            handler(came[0], None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), came[0])


def _kind(target: str) -> str:
    return "coordinator" if target == COORDINATOR else "participant"


def _cache_dir() -> Path:
    path = Path(tempfile.gettempdir()) / "pams-cache"
    path.mkdir(exist_ok=True)
    return path
