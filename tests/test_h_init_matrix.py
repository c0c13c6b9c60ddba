"""The `pams init` equivalence matrix: for every submission of tests/fixtures/init/
SUBMISSIONS.toml (the alternative implementation's variants and the student fixtures),
`pams init` writes an adapter, and every scenario of the basic profile is run with it and with
the hand-written adapter; the verdicts (status and failed rules per scenario) must agree.

Too slow for the default suite (two basic batteries per fixture): run it as
`python -m tests.test_h_init_matrix [-j N] [NAME...]`; it prints one line per fixture and
exits 1 if any differs. tests/harness/test_h_init.py runs a few of these in the suite."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.harness.init_fixtures import SUBMISSIONS, hand_written, materialize

WORKERS = 6  # concurrent scenario runs: mostly waiting on schedules


@dataclass(frozen=True)
class Row:
    """One fixture: the verdict per scenario under each adapter, and the inferred fields that
    differ from the hand-written ones."""

    name: str
    hand: dict[str, tuple[str, frozenset[str]]]
    inferred: dict[str, tuple[str, frozenset[str]]]
    fields: tuple[str, ...]
    init_seconds: float
    error: str = ""

    @property
    def equivalent(self) -> bool:
        return not self.error and self.hand == self.inferred

    def score(self, side: dict[str, tuple[str, frozenset[str]]]) -> str:
        return f"{sum(1 for s, _ in side.values() if s == 'pass')}/{len(side)}"


def verdict(outcome: object) -> tuple[str, frozenset[str]]:
    """(status, failed rules) of a battery Outcome."""
    from harness.reports.battery import FAIL, UNEXERCISED

    rules = outcome.rules or {}  # type: ignore[attr-defined]
    failed = frozenset(r for r, st in rules.items() if st in (FAIL, UNEXERCISED))
    return str(outcome.status), failed  # type: ignore[attr-defined]


def field_diffs(hand: Path, inferred: Path) -> tuple[str, ...]:
    """The adapter fields that matter to a run and differ (hand-written -> inferred)."""
    from harness.adapters.adapter import load_adapter

    a, b = load_adapter(str(hand)), load_adapter(str(inferred))
    pairs = {
        "coordinator.config": (a.coordinator.config, b.coordinator.config),
        "coordinator.port": (a.coordinator.port, b.coordinator.port),
        "coordinator.stdin_preamble": (a.coordinator.stdin_preamble, b.coordinator.stdin_preamble),
        "participant.config": (a.participant.config, b.participant.config),
        "participant.stdin_preamble": (a.participant.stdin_preamble, b.participant.stdin_preamble),
        "participant.exit_on_deregister": (
            a.participant.exit_on_deregister,
            b.participant.exit_on_deregister,
        ),
        "ports": (a.ports, b.ports),
    }
    for op in ("register", "deregister", "disconnect", "reconnect", "msend"):
        pairs[f"commands.{op}"] = (getattr(a.commands, op), getattr(b.commands, op))
    for key in ("done_pattern", "reply_pattern", "refusal_pattern", "complete_on"):
        pairs[f"commands.{key}"] = (getattr(a.commands, key), getattr(b.commands, key))
    return tuple(f"{k}: {x!r} -> {y!r}" for k, (x, y) in pairs.items() if x != y)


def run_fixture(name: str, root: Path, pool: ThreadPoolExecutor) -> Row:
    """init one fixture, then both batteries (scenarios in `pool`)."""
    from harness.adapters.adapter import load_adapter
    from harness.adapters.init import InitError, init_submission
    from harness.reports.battery import run_one
    from harness.scenarios.registry import profile

    d = materialize(name, root / "subs")
    started = time.monotonic()
    try:
        path = init_submission(d, budget=60)
    except InitError as e:
        return Row(name, {}, {}, (), time.monotonic() - started, error=str(e))
    seconds = time.monotonic() - started
    names = list(profile("basic"))
    sides = {"hand": load_adapter(str(hand_written(name))), "inferred": load_adapter(str(path))}
    futures = {
        (side, sc): pool.submit(run_one, adapter, sc, root / "runs" / name / side / sc)
        for side, adapter in sides.items()
        for sc in names
    }
    got = {side: {sc: verdict(futures[(side, sc)].result()) for sc in names} for side in sides}
    return Row(name, got["hand"], got["inferred"], field_diffs(hand_written(name), path), seconds)


def describe(row: Row) -> str:
    if row.error:
        return f"{row.name}: init failed: {row.error}"
    head = (
        f"{row.name}: {'equivalent' if row.equivalent else 'DIFFERS'}; hand {row.score(row.hand)}"
        f", inferred {row.score(row.inferred)} (init {row.init_seconds:.1f} s)"
    )
    lines = [head]
    for sc in row.hand:
        if row.hand[sc] != row.inferred.get(sc):
            h, i = row.hand[sc], row.inferred.get(sc, ("missing", frozenset()))
            lines.append(f"    {sc}: hand {h[0]} {sorted(h[1])}, inferred {i[0]} {sorted(i[1])}")
    lines += [f"    field {d}" for d in row.fields]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.test_h_init_matrix")
    parser.add_argument("names", nargs="*", metavar="NAME", help="fixtures (default: all)")
    parser.add_argument("-j", "--jobs", type=int, default=WORKERS, help="scenario runs at once")
    parser.add_argument("--keep", type=Path, help="keep runs and adapters in this directory")
    args = parser.parse_args(argv)
    names = args.names or list(SUBMISSIONS)
    unknown = [n for n in names if n not in SUBMISSIONS]
    if unknown:
        parser.error(f"unknown fixture(s): {', '.join(unknown)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="pams-init-matrix-") as tmp:
        root = args.keep or Path(tmp)
        with ThreadPoolExecutor(args.jobs) as pool:
            for name in names:
                row = run_fixture(name, root, pool)
                print(describe(row), flush=True)
                rows.append(row)
    same = sum(1 for r in rows if r.equivalent)
    print(f"\n{same}/{len(rows)} fixtures: the inferred adapter gets the same verdicts")
    return 0 if same == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
