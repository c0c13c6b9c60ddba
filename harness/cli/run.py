"""`pams run`, `pams replay` and `pams scenarios`: one scenario against one implementation,
a recorded schedule driven again, and the list of built-in scenarios (docs/cli.md)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from checkers import TraceError, check_path
from harness.adapters.adapter import Adapter, AdapterError, load_adapter
from harness.cli.options import add_impl, positive_seconds
from harness.exits import EXIT_ERROR, EXIT_FAIL, EXIT_PASS
from harness.reports.battery import page_beside
from harness.running import sandbox
from harness.running.runner import RunResult, fresh_dir, run_scenario
from harness.scenarios.model import Scenario, ScenarioError, from_json, load_file
from harness.scenarios.registry import PROFILES, REGISTRY, get_scenario


def add_run(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="run one scenario against an implementation, record and check it",
        description="Run one scenario (a built-in name or a TOML/JSON file) against the "
        "implementation an adapter describes; record DIR/trace.jsonl, the configs, logs and "
        "output; then print the checkers' verdict. Exit 0 pass, 1 a rule failed, 2 the "
        "implementation could not be run or the input is bad.",
    )
    parser.add_argument(
        "--scenario",
        required=True,
        metavar="NAME|FILE",
        help="built-in scenario name (pams scenarios) or a scenario file",
    )
    parser.add_argument("--seed", type=int, help="seed for random scenarios (default 1)")
    parser.add_argument(
        "--td", type=positive_seconds, metavar="S", help="override the scenario's td"
    )
    add_common(parser)
    parser.set_defaults(func=cmd_run)


def add_replay(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "replay",
        help="drive the schedule recorded in a trace again, record and check",
        description="Drive the concrete schedule stored in TRACE's header (same commands, "
        "tokens, faults and relative times) against ADAPTER, record a new trace and check "
        "it. Exit codes as for run.",
    )
    parser.add_argument("trace", metavar="TRACE", help="a recorded trace (.jsonl)")
    add_common(parser)
    parser.set_defaults(func=cmd_replay)


def add_common(parser: argparse.ArgumentParser) -> None:
    add_impl(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        type=Path,
        help="run directory (must be empty or absent; default pams-runs/TIME-SCENARIO)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")


def add_scenarios(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "scenarios",
        help="list the built-in scenarios and profiles",
        description="List the built-in scenarios and profiles.",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable list")
    parser.add_argument("--show", metavar="NAME", help="print one scenario's schedule")
    parser.add_argument("--seed", type=int, help="seed for random scenarios (with --show)")
    parser.set_defaults(func=cmd_scenarios)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        adapter = load_adapter(args.impl)
        scenario = resolve_scenario(args.scenario, args.seed, args.td)
        out = run_dir(args.output, scenario.name)
    except (AdapterError, ScenarioError, ValueError) as e:
        return fail_input("run", e)
    return run_and_report(adapter, scenario, out, args)


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        adapter = load_adapter(args.impl)
        scenario = scenario_of_trace(Path(args.trace))
        out = run_dir(args.output, scenario.name)
    except (AdapterError, ScenarioError, ValueError) as e:
        return fail_input("replay", e)
    return run_and_report(adapter, scenario, out, args)


def resolve_scenario(ref: str, seed: Optional[int], td: Optional[float]) -> Scenario:
    """A built-in name, else a scenario file path."""
    if ref in REGISTRY:
        return get_scenario(ref, seed=seed, td=td)
    path = Path(ref)
    if not path.exists():
        raise ScenarioError(
            f"{ref}: no such built-in scenario or file (pams scenarios lists the built-in ones)"
        )
    scenario = load_file(path)
    return scenario if td is None else scenario.with_td(td)


def scenario_of_trace(path: Path) -> Scenario:
    """The schedule stored in a trace's header (docs/trace-format.md `scenario`)."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        header = json.loads(first)
    except ValueError:
        raise ScenarioError(f"{path}:1: not a JSON header line") from None
    if not isinstance(header, dict) or header.get("type") != "header":
        raise ScenarioError(f"{path}:1: the first line is not a trace header")
    if "scenario" not in header:
        raise ScenarioError(f"{path}:1: header has no scenario to replay")
    return from_json(header["scenario"], f"{path}:1: header.scenario")


def run_dir(output: Optional[Path], name: str) -> Path:
    """The run directory: `output` if empty or absent, else a fresh one under pams-runs/."""
    return fresh_dir(output, "pams-runs", name)


def run_and_report(
    adapter: Adapter, scenario: Scenario, out: Path, args: argparse.Namespace
) -> int:
    started = time.monotonic()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - started:6.2f}s] {message}", file=sys.stderr, flush=True)

    progress(f"{scenario.name} against {adapter.name}, recording into {out}")
    progress(sandbox.detect().describe())
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # SIGTERM stops a run as Ctrl-C does (signals reach the main thread only)
        previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        result = run_scenario(adapter, scenario, out, progress=progress)
    except KeyboardInterrupt:
        print(
            f"pams: interrupted; every process was stopped; partial trace in {out}", file=sys.stderr
        )
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return report(result, args)


def interrupt(signum: int, _frame: Any) -> None:
    """Signal handler: stop the run the way Ctrl-C does (the runner then kills everything)."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def report(result: RunResult, args: argparse.Namespace) -> int:
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.error:
        where = f"(run directory {result.run_dir})"
        print(f"pams: cannot run the implementation: {result.error} {where}", file=sys.stderr)
        return EXIT_ERROR
    if result.skipped:
        print(f"SKIPPED {result.scenario}: {result.skipped}")
        return EXIT_PASS
    assert result.trace_path is not None
    try:
        verdict = check_path(str(result.trace_path))
    except TraceError as e:
        print(f"pams: the recorded trace is unreadable (a harness bug): {e}", file=sys.stderr)
        return EXIT_ERROR
    page, why = page_beside(result.trace_path)  # a page failure is a note, never an error
    if why:
        print(why.strip(), file=sys.stderr)
    if args.json:
        shown = {"page": str(page)} if page else {}
        print(json.dumps({"trace": str(result.trace_path), **shown, **verdict.as_json()}))
    else:
        print(verdict.summary())
        print(f"trace: {result.trace_path}  ({result.seconds:.1f} s)")
        if page:
            print(f"page: {page}")
    return EXIT_PASS if verdict.passed else EXIT_FAIL


def fail_input(command: str, error: Exception) -> int:
    print(f"pams {command}: {error}", file=sys.stderr)
    return EXIT_ERROR


def cmd_scenarios(args: argparse.Namespace) -> int:
    if args.show:
        try:
            scenario = get_scenario(args.show, seed=args.seed)
        except ScenarioError as e:
            return fail_input("scenarios", e)
        print(json.dumps(scenario.to_json(), indent=2) if args.json else show(scenario))
        return EXIT_PASS
    rows = [listing(name) for name in REGISTRY]
    if args.json:
        print(
            json.dumps({"scenarios": rows, "profiles": {k: list(v) for k, v in PROFILES.items()}})
        )
        return EXIT_PASS
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        tag = " [boundary]" if r["boundary"] else (" [random]" if r["random"] else "")
        print(
            f"{r['name']:<{width}}  {r['profile']:<6}  {r['participants']:>2}p  "
            f"{r['seconds']:>5.1f}s  {r['description']}{tag}"
        )
    print()
    for name, members in PROFILES.items():
        print(f"profile {name}: {', '.join(members)}")
    return EXIT_PASS


def listing(name: str) -> dict[str, Any]:
    entry = REGISTRY[name]
    sc = entry.make(1)
    return {
        "name": name,
        "profile": entry.profile,
        "description": entry.description,
        "participants": len(sc.participants),
        "seconds": sc.duration,
        "td": sc.td,
        "faults": sorted(sc.faults),
        "boundary": sc.boundary,
        "random": entry.random,
    }


def show(scenario: Scenario) -> str:
    head = (
        f"{scenario.name}: {scenario.description}\n td {scenario.td:g} s, participants "
        f"{', '.join(scenario.participants)}"
    )
    offsets = "".join(f"\n clock offset {t}: {o:+g} s" for t, o in scenario.clock_offsets)
    expect = "".join(
        f"\n must exercise ({e.rule}): {e.count} x {e.kind}"
        + (
            f", aged {e.min_age or 0:g}..{e.max_age if e.max_age is not None else 'any'}"
            if e.min_age is not None or e.max_age is not None
            else ""
        )
        for e in scenario.expect
    )
    return head + offsets + expect + "\n" + "\n".join(s.describe() for s in scenario.steps)
