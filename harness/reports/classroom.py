"""`pams class`: many submissions graded in one command, the scenarios of all of them sharing
the same slots, each finished submission stored as `DIR/NAME/result.json` so that a run
interrupted and started again on the same directory grades only what was unfinished
(docs/cli.md). The outputs (summary.csv, summary.json, index.html) are in classsummary."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

from harness.adapters import adapter as adapters
from harness.adapters.adapter import DIRECTORY_FILES, Adapter, AdapterError, load_adapter
from harness.reports.battery import ERROR, Outcome, run_one
from harness.reports.grade import SHORT, plural, repeat_seed, run_dir
from harness.running.runner import abort_all
from harness.scenarios.registry import REGISTRY, get_scenario

STATE = "class.json"
RESULT = "result.json"
FORMAT = "pams-class"
STARTUP_SECONDS = 1.0  # what a run costs besides its schedule, before any run has been timed


class ClassError(Exception):
    """Unusable input for `pams class` (one line)."""


@dataclass(frozen=True)
class Submission:
    """One submission: `name` (unique; its directory under DIR) and the adapter reference."""

    name: str
    ref: str


@dataclass(frozen=True)
class Result:
    """A finished submission: its runs, or why it could not run; wall time in seconds."""

    name: str
    ref: str
    adapter: str
    outcomes: tuple[Outcome, ...]
    reason: str = ""
    seconds: float = 0.0
    kept: bool = False  # loaded from an earlier `pams class` on the same directory


@dataclass(frozen=True)
class Plan:
    """What every submission is graded on."""

    scenarios: tuple[str, ...]
    repeat: int = 1
    seed: Optional[int] = None

    def to_json(self) -> dict[str, Any]:
        return {"scenarios": list(self.scenarios), "repeat": self.repeat, "seed": self.seed}


# --- submissions and the class directory -----------------------------------------------------
def submission_name(ref: str) -> str:
    """A directory's name, the directory of a pams.toml/adapter.toml, or a file's stem."""
    path = Path(ref)
    if ref == "reference" and not path.exists():
        return "reference"
    path = path.resolve()
    if path.is_dir() or path.name in DIRECTORY_FILES:
        return (path if path.is_dir() else path.parent).name
    return path.stem


def submissions(refs: list[str]) -> list[Submission]:
    """The submissions named on the command line (ClassError for a missing path or two with
    one name)."""
    out: dict[str, Submission] = {}
    for ref in refs:
        if ref != "reference" and not Path(ref).exists():
            raise ClassError(f"{ref}: no such file or directory")
        sub = Submission(submission_name(ref), ref)
        if sub.name in out:
            raise ClassError(
                f"two submissions named {sub.name}: {out[sub.name].ref} and {ref} "
                "(their directories under -o would be the same)"
            )
        out[sub.name] = sub
    return list(out.values())


def open_class_dir(out: Path, plan: Plan) -> None:
    """Create DIR or accept one an earlier `pams class` made (ClassError for any other
    non-empty directory: resuming deletes unfinished submissions' directories in it)."""
    state = out / STATE
    if out.exists() and not out.is_dir():
        raise ClassError(f"{out}: output exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not state.is_file():
        raise ClassError(f"{out}: exists, is not empty and was not made by pams class")
    out.mkdir(parents=True, exist_ok=True)
    _write_json(state, {"format": FORMAT, "version": 1, **plan.to_json()})


def _write_json(path: Path, data: Any) -> None:
    """Write atomically: a reader (or a resume after a kill) sees the old file or the new."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --- results as JSON ---------------------------------------------------------------------------
def _is_path_field(f: dataclasses.Field) -> bool:
    return "Path" in str(f.type)


def outcome_json(o: Outcome, base: Path) -> dict[str, Any]:
    """An Outcome as JSON, paths relative to `base` when inside it."""
    data: dict[str, Any] = {}
    for f in dataclasses.fields(o):
        value = getattr(o, f.name)
        if isinstance(value, Path):
            value = os.path.relpath(value, base) if value.is_relative_to(base) else str(value)
        data[f.name] = value
    return data


def outcome_from_json(data: dict[str, Any], base: Path) -> Outcome:
    values = {}
    for f in dataclasses.fields(Outcome):
        if f.name not in data:
            continue
        value = data[f.name]
        if _is_path_field(f) and isinstance(value, str):
            value = base / value
        values[f.name] = value
    return Outcome(**values)


def result_json(r: Result, plan: Plan, base: Path) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "name": r.name,
        "ref": r.ref,
        "adapter": r.adapter,
        "reason": r.reason,
        "seconds": r.seconds,
        "plan": plan.to_json(),
        "outcomes": [outcome_json(o, base) for o in r.outcomes],
    }


def load_result(sub: Submission, out: Path, plan: Plan) -> Optional[Result]:
    """The stored result of `sub`, if it was finished with this plan (else None)."""
    path = out / sub.name / RESULT
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or data.get("plan") != plan.to_json():
            return None
        outcomes = tuple(outcome_from_json(o, out) for o in data["outcomes"])
        return Result(
            sub.name, sub.ref, data["adapter"], outcomes, data["reason"], data["seconds"], True
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --- scheduling --------------------------------------------------------------------------------
@dataclass
class _Sub:
    index: int
    sub: Submission
    adapter: Optional[Adapter] = None
    runs: dict[tuple[str, int], Outcome] = field(default_factory=dict)
    started: float = 0.0
    reason: str = ""
    queued: int = 0  # runs submitted or waiting, not finished


@dataclass(frozen=True)
class _Task:
    sub: _Sub
    scenario: str = ""  # "" = load the adapter and build
    k: int = 0

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (self.sub.index, 1 if self.scenario else 0, 0, self.k)


@functools.cache
def expected_seconds(name: str) -> float:
    """A run's expected length: its schedule, drain and start-up."""
    sc = get_scenario(name)
    return sc.duration + sc.drain + STARTUP_SECONDS


class ClassRun:
    """Grades the submissions not already finished, `jobs` runs at a time over all of them;
    `on_result` is called (main thread) with each submission as it finishes."""

    def __init__(
        self,
        subs: list[Submission],
        out: Path,
        plan: Plan,
        jobs: int,
        on_result: Callable[[Result], None],
        stream: Optional[TextIO] = sys.stderr,
    ) -> None:
        self.out, self.plan, self.jobs, self.on_result = out, plan, jobs, on_result
        self.stream = stream
        self.subs = [_Sub(i, s) for i, s in enumerate(subs)]
        self.tasks = [(n, k) for n in plan.scenarios for k in range(1, plan.repeat + 1)]
        self.ready: list[_Task] = []
        self.inflight: dict[Future, _Task] = {}
        self.began: dict[Future, float] = {}
        self.started = time.monotonic()
        self.done_subs = 0
        self.done_runs = 0
        self.timed = [0.0, 0.0]  # actual, expected seconds of the runs finished
        self.lock = threading.Lock()

    # the loop (main thread)
    def run(self) -> None:
        for s in self.subs:
            shutil.rmtree(self.out / s.sub.name, ignore_errors=True)  # unfinished: start over
            self.ready.append(_Task(s))
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        try:
            while self.ready or self.inflight:
                self._fill(pool)
                finished, _ = wait(list(self.inflight), timeout=30.0, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._handle(future)
                if not finished:
                    self._progress("")
        except BaseException:  # Ctrl-C / SIGTERM: stop every run; each kills its processes
            self.ready.clear()
            for f in self.inflight:
                f.cancel()
            while any(not f.done() for f in self.inflight):
                abort_all()  # again and again: a run may start just after the first call
                wait(list(self.inflight), timeout=0.2)
            pool.shutdown(wait=True)
            raise
        pool.shutdown(wait=True)

    def _fill(self, pool: ThreadPoolExecutor) -> None:
        self.ready.sort(key=lambda t: t.key)
        while self.ready and len(self.inflight) < self.jobs:
            task = self.ready.pop(0)
            if task.sub.reason:  # the submission could not run: drop its remaining runs
                continue
            future = pool.submit(self._work, task)
            self.inflight[future] = task
            self.began[future] = time.monotonic()

    def _work(self, task: _Task) -> Any:
        s = task.sub
        if not task.scenario:
            s.started = time.monotonic()
            adapter = load_adapter(s.sub.ref)
            adapters.build(adapter)
            return adapter
        assert s.adapter is not None
        where = run_dir(self.out / s.sub.name, task.scenario, task.k, self.plan.repeat)
        try:
            return run_one(s.adapter, task.scenario, where, repeat_seed(self.plan.seed, task.k))
        except Exception as e:  # a harness fault costs this run only, said plainly
            entry = REGISTRY[task.scenario]
            detail = f"harness error: {type(e).__name__}: {e}"
            return Outcome(task.scenario, entry.profile, False, ERROR, {}, None, detail)

    def _handle(self, future: Future) -> None:
        task = self.inflight.pop(future)
        began = self.began.pop(future)
        s = task.sub
        try:
            value = future.result()
        except (AdapterError, adapters.BuildError) as e:
            self._could_not_run(s, str(e), getattr(e, "output", "") or "")
            return
        if not task.scenario:
            s.adapter = value
            self.ready += [_Task(s, n, k) for n, k in self.tasks]
            s.queued = len(self.tasks)
            self._progress(f"{s.sub.name}: built, {plural(len(self.tasks), 'run')} queued")
            return
        outcome: Outcome = value
        s.runs[(task.scenario, task.k)] = outcome
        s.queued -= 1
        self.done_runs += 1
        self.timed[0] += time.monotonic() - began
        self.timed[1] += expected_seconds(task.scenario)
        self._progress(
            f"{s.sub.name}: {SHORT[outcome.status]} {task.scenario}"
            + (f" #{task.k}" if self.plan.repeat > 1 else "")
            + f" ({outcome.seconds:.1f} s)"
        )
        if len(s.runs) == 1 and outcome.status == ERROR and not s.reason:
            # the first run could not start the implementation: the others would not either
            s.reason = outcome.detail.splitlines()[0] if outcome.detail else "could not run"
            self._finish(s)
        elif s.queued == 0 and not s.reason:
            self._finish(s)

    def _could_not_run(self, s: _Sub, reason: str, output: str) -> None:
        s.reason = reason
        (self.out / s.sub.name).mkdir(parents=True, exist_ok=True)
        if output:
            (self.out / s.sub.name / "build.log").write_text(output, encoding="utf-8")
        self._finish(s)

    def _finish(self, s: _Sub) -> None:
        ordered = tuple(s.runs[t] for t in self.tasks if t in s.runs)
        path = s.adapter.path if s.adapter is not None else None
        result = Result(
            s.sub.name,
            s.sub.ref,
            str(path) if path else s.sub.ref,
            ordered,
            s.reason,
            time.monotonic() - s.started if s.started else 0.0,
        )
        (self.out / s.sub.name).mkdir(parents=True, exist_ok=True)
        _write_json(self.out / s.sub.name / RESULT, result_json(result, self.plan, self.out))
        self.done_subs += 1
        state = f"could not run: {s.reason}" if s.reason else "graded"
        self._progress(f"{s.sub.name}: {state} ({result.seconds:.1f} s)")
        self.on_result(result)

    # progress
    def left(self) -> float:
        """Estimated seconds left: the expected length of every run not finished, scaled by
        how long finished runs took against their schedules, spread over the slots."""
        ratio = self.timed[0] / self.timed[1] if self.timed[1] else 1.0
        now = time.monotonic()
        pending = sum(
            expected_seconds(t.scenario) if t.scenario else 0.0
            for t in self.ready
            if not t.sub.reason
        )
        unbuilt = sum(
            len(self.tasks) for t in [*self.ready, *self.inflight.values()] if not t.scenario
        )
        average = sum(expected_seconds(n) for n, _ in self.tasks) / max(1, len(self.tasks))
        running = sum(
            max(0.0, expected_seconds(t.scenario) * ratio - (now - self.began[f]))
            for f, t in self.inflight.items()
            if t.scenario
        )
        return ((pending + unbuilt * average) * ratio + running) / self.jobs

    def _progress(self, what: str) -> None:
        if self.stream is None:
            return
        running = len({t.sub.index for t in self.inflight.values()})
        elapsed = time.monotonic() - self.started
        line = (
            f"[{elapsed:6.1f}s] {self.done_subs}/{len(self.subs)} submissions done, "
            f"{running} running, ~{self.left():.0f} s left"
        )
        print(line + (f": {what}" if what else ""), file=self.stream, flush=True)
