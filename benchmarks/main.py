"""Benchmarks. `python -m benchmarks.main checkers [--events N | --deliveries N]
[--participants P] [--seed S]` writes a correct random trace of N events (or N deliveries) and
times `checkers.check_path` on it;
`… proxy [--ops N]` measures the recording proxy's overhead per op (benchmarks.proxy);
`… grade [--impl A] [--profile P] [-j N]` times a whole profile against an implementation.

The check runs in a child process, so its peak RSS is the checker's own, not the generator's.
Exit status: 0 when the (correct) trace passes, 1 when the checker rejects it, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from benchmarks import tracegen
from harness.exits import EXIT_ERROR
from harness.scenarios.registry import PROFILES

TARGET_SECONDS = 5.0  # 1,000,000 events (issue: performance)
TARGET_BYTES = 500 * 1024 * 1024
LARGE_SECONDS = 30.0  # a large trace by --deliveries: "well under" this (issue: bad input)
LARGE_BYTES = 1 << 30
_ROOT = Path(__file__).resolve().parents[1]


def mixed(knobs: tracegen.Knobs) -> tracegen.Knobs:
    """`knobs` with what a real run's trace holds besides clean ops: failures, timeouts, log
    noise and resets."""
    return dataclasses.replace(knobs, p_fail=0.05, p_info=0.01, p_noise=0.2, p_log_reset=0.02)


def peak_rss_bytes() -> int:
    """This process's peak resident set size (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def progress(text: str) -> None:
    """A progress line on stderr (stdout carries only the figures)."""
    print(f"pams bench: {text}", file=sys.stderr, flush=True)


def write_trace(path: Path, knobs: tracegen.Knobs, seed: int, events: int) -> int:
    """Stream a generated trace of about `events` events to `path`; return the event count."""
    return write_counted(path, knobs, seed, events)[0]


def write_counted(
    path: Path, knobs: tracegen.Knobs, seed: int, events: int, deliveries: Optional[int] = None
) -> tuple[int, int]:
    """Stream a generated trace of about `events` events (or `deliveries` deliveries) to
    `path`; return its event and delivery counts."""
    count, delivered = -1, 0  # the header is not an event
    with path.open("w", encoding="utf-8") as out:
        for line in tracegen.random_trace(knobs, seed, events, deliveries):
            out.write(line)
            out.write("\n")
            count += 1
            delivered += line.startswith('{"type":"deliver"')
    return count, delivered


def _check_child(path: str) -> int:
    """Child side: judge `path`, print one JSON line of figures."""
    from checkers import check_path

    start, cpu = time.perf_counter(), time.process_time()
    verdict = check_path(path)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    failed = [rule for rule, r in verdict.as_json()["rules"].items() if r["status"] != "pass"]
    figures: dict[str, Any] = {"seconds": seconds, "cpu_seconds": cpu}
    figures.update(peak_rss=peak_rss_bytes(), verdict=verdict.verdict, failed_rules=failed)
    print(json.dumps(figures))
    return 0


def measure_check(path: Path, timeout: float) -> dict[str, Any]:
    """Run the checker on `path` in a child interpreter and return its figures."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "benchmarks.main", "_check", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"checker process exited {done.returncode}: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_checkers(args: argparse.Namespace) -> dict[str, Any]:
    """Generate, check, and collect every figure of the checkers benchmark."""
    knobs = tracegen.Knobs(participants=args.participants, concurrent=not args.serialized)
    if not args.clean:
        knobs = mixed(knobs)
    with tempfile.TemporaryDirectory(prefix="pams-bench-") as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "trace.jsonl"
        size_text = (
            f"{args.events:,} events"
            if args.deliveries is None
            else f"{args.deliveries:,} deliveries"
        )
        progress(f"generating a correct trace of {size_text} into {path} ...")
        start = time.perf_counter()
        count, delivered = write_counted(path, knobs, args.seed, args.events, args.deliveries)
        generated = time.perf_counter() - start
        size = path.stat().st_size
        progress(f"generated in {generated:.1f} s; checking it in a child process ...")
        check = measure_check(path, args.timeout)
    large = args.deliveries is not None
    seconds, space = (LARGE_SECONDS, LARGE_BYTES) if large else (TARGET_SECONDS, TARGET_BYTES)
    met = check["seconds"] < seconds and check["peak_rss"] < space
    return {
        "events": count,
        "deliveries": delivered,
        "participants": args.participants,
        "seed": args.seed,
        "concurrent": knobs.concurrent,
        "mixed": not args.clean,
        "file_bytes": size,
        "generate_seconds": generated,
        "check_seconds": check["seconds"],
        "check_cpu_seconds": check["cpu_seconds"],
        "events_per_second": count / check["seconds"] if check["seconds"] else 0.0,
        "check_peak_rss_bytes": check["peak_rss"],
        "verdict": check["verdict"],
        "failed_rules": check["failed_rules"],
        "target": f"< {seconds:g} s, < {space // (1024 * 1024)} MiB",
        "target_met": met,
    }


def render(fig: dict[str, Any]) -> str:
    """The human summary of `bench_checkers` figures."""
    mib = 1024 * 1024
    rows = [
        ("events", f"{fig['events']:,} ({fig['participants']} participants, seed {fig['seed']})"),
        ("deliveries", f"{fig['deliveries']:,}"),
        ("mix", "fails, timeouts, log noise and resets" if fig["mixed"] else "clean (--clean)"),
        ("trace file", f"{fig['file_bytes'] / mib:.1f} MiB"),
        ("generate", f"{fig['generate_seconds']:.2f} s"),
        (
            "check",
            f"{fig['check_seconds']:.2f} s ({fig['events_per_second']:,.0f} events/s; "
            f"{fig['check_cpu_seconds']:.2f} s CPU)",
        ),
        ("check peak RSS", f"{fig['check_peak_rss_bytes'] / mib:.0f} MiB"),
        (
            "verdict",
            fig["verdict"] + (f" ({', '.join(fig['failed_rules'])})" * bool(fig["failed_rules"])),
        ),
        ("target", ("met" if fig["target_met"] else "MISSED") + f" ({fig['target']})"),
    ]
    return "\n".join(f"{name:<16}{value}" for name, value in rows)


def bench_grade(argv: list[str], prog: str) -> int:
    """Wall time of a profile's battery (default: basic against the reference, -j cores)."""
    p = argparse.ArgumentParser(prog=f"{prog} grade", description=bench_grade.__doc__)
    p.add_argument("--impl", default="reference", help="adapter (default reference)")
    p.add_argument("--profile", default="basic", choices=list(PROFILES), help="default basic")
    p.add_argument("-j", "--jobs", type=_positive, default=os.cpu_count() or 1)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument(
        "--sandbox",
        choices=("as-set", "compare"),
        default="as-set",
        help="as-set: as PAMS_SANDBOX says (default); compare: the battery without the sandbox,"
        " then with PAMS_SANDBOX=auto, and the ratio of their wall times",
    )
    args = p.parse_args(argv)
    if args.sandbox == "compare":
        return _compare_sandbox(argv, prog)
    from harness.adapters.adapter import AdapterError, load_adapter
    from harness.reports.grade import exit_status, run_battery, score
    from harness.scenarios.registry import profile

    try:
        adapter = load_adapter(args.impl)
    except AdapterError as e:
        print(f"{prog} grade: {e}", file=sys.stderr)
        return EXIT_ERROR
    names = list(profile(args.profile))
    with tempfile.TemporaryDirectory(prefix="pams-bench-grade-") as tmp:
        start = time.perf_counter()
        outcomes = run_battery(adapter, names, Path(tmp), args.jobs)
        wall = time.perf_counter() - start
    passed, total = score(outcomes)
    fig = {
        "profile": args.profile,
        "impl": args.impl,
        "jobs": args.jobs,
        "scenarios": len(names),
        "wall_seconds": wall,
        "scenario_seconds": {o.scenario: round(o.seconds, 2) for o in outcomes},
        "passed": passed,
        "counted": total,
    }
    if args.json:
        print(json.dumps(fig))
    else:
        slowest = max(outcomes, key=lambda o: o.seconds)
        print(
            f"profile {args.profile} against {args.impl}: {len(names)} scenarios, "
            f"-j {args.jobs}: {wall:.1f} s wall; {passed}/{total} pass; slowest "
            f"{slowest.scenario} {slowest.seconds:.1f} s"
        )
    return exit_status(outcomes)


def _compare_sandbox(argv: list[str], prog: str) -> int:
    """`bench grade` twice, without and with the sandbox, each as its own process (the
    sandbox choice is read once per process); prints both and the ratio."""
    import subprocess

    rest = [a for a in argv if a not in ("--sandbox", "compare", "--json")]
    walls: dict[str, float] = {}
    status = 0
    for mode in ("none", "auto"):
        env = {**os.environ, "PAMS_SANDBOX": mode}
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.main", "grade", *rest, "--json"],
            env=env,
            capture_output=True,
            text=True,
        )
        if not done.stdout.strip():
            print(f"{prog} grade: PAMS_SANDBOX={mode}: {done.stderr.strip()}", file=sys.stderr)
            return EXIT_ERROR
        fig = json.loads(done.stdout.strip().splitlines()[-1])
        walls[mode] = fig["wall_seconds"]
        status = max(status, done.returncode)
        print(
            f"PAMS_SANDBOX={mode}: {fig['wall_seconds']:.1f} s wall, "
            f"{fig['passed']}/{fig['counted']} pass",
            flush=True,
        )
    print(f"sandboxed / unsandboxed wall time: {walls['auto'] / walls['none']:.2f}")
    return status


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parser(prog: str = "python -m benchmarks.main") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("checkers", help="generate a correct trace and time the checker on it")
    # proxy and grade parse their own options (see main); listed here so --help names them
    sub.add_parser("proxy", help="the recording proxy's overhead per op (proxy --help)")
    sub.add_parser("grade", help="wall time of a profile's battery (grade --help)")
    sub.add_parser("impl", help="implementations side by side through their adapters (impl --help)")
    sub.add_parser("class", help="submissions/hour of pams class, and the ratio to the limit")
    sub.add_parser("show", help="pams show's page for a 100k-event run: first render (show --help)")
    size = c.add_mutually_exclusive_group()
    size.add_argument("--events", type=_positive, default=1_000_000, help="default 1,000,000")
    size.add_argument(
        "--deliveries",
        type=_positive,
        metavar="N",
        help="a trace of about N deliveries instead (e.g. 2600000 with --participants 40)",
    )
    c.add_argument("--participants", type=_positive, default=10, help="default 10")
    c.add_argument("--seed", type=int, default=1, help="default 1")
    c.add_argument("--serialized", action="store_true", help="no overlapping ops (default: some)")
    c.add_argument(
        "--clean",
        action="store_true",
        help="only ops that complete ok (default: some fail or time out, with log noise/resets)",
    )
    c.add_argument("--keep", metavar="PATH", help="write the trace to PATH and keep it")
    c.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for the check")
    c.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return p


def main(argv: Optional[list[str]] = None, prog: str = "python -m benchmarks.main") -> int:
    """Entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_check"] and len(argv) == 2:
        return _check_child(argv[1])
    if argv[:1] == ["proxy"]:
        from benchmarks import proxy as proxybench

        return proxybench.main(argv[1:])
    if argv[:1] == ["grade"]:
        return bench_grade(argv[1:], prog)
    if argv[:1] == ["show"]:
        from benchmarks import show

        return show.main(argv[1:], prog)
    if argv[:1] == ["impl"]:
        from benchmarks import impl

        return impl.main(argv[1:], prog)
    if argv[:1] == ["class"]:
        from benchmarks import classbench

        return classbench.main(argv[1:], prog)
    args = parser(prog).parse_args(argv)
    try:
        fig = bench_checkers(args)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"pams bench: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(fig) if args.json else render(fig))
    return 0 if fig["verdict"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
