"""The battery's kill matrix: every mutant of tests/fixtures/mutants run through the real harness
(`run_scenario`) on the scenarios MUTANTS.toml says catch it, the traces judged by the checkers.
Each mutant must fail its rule(s), the rules its bug necessarily breaks too, and nothing else.

`python -m tests.mutants.test_mutants_matrix [--profile P] [-j N]` prints the matrix (mutant x
rule); with `--profile`, every mutant runs every scenario of that profile (or `all`) instead."""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from tests.procutil import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python < 3.11
    import tomli as tomllib

pytestmark = pytest.mark.process

MUTANTS = REPO / "tests" / "fixtures" / "mutants"
CATALOGUE: dict[str, dict] = tomllib.loads((MUTANTS / "MUTANTS.toml").read_text())
WORKERS = 4  # concurrent runs: mostly waiting on schedules, little CPU


@dataclass(frozen=True)
class Cell:
    """One run of one mutant on one scenario: the rules violated, or why there is no verdict."""

    mutant: str
    scenario: str
    violated: frozenset[str] = frozenset()
    skipped: Optional[str] = None
    error: Optional[str] = None
    run_dir: Optional[Path] = None


def run_cell(mutant: str, scenario: str, out: Path) -> Cell:
    """Run `mutant` on `scenario` with the harness, into `out`, and judge the trace."""
    from checkers import check_path
    from harness.adapters.adapter import load_adapter
    from harness.running.runner import run_scenario
    from harness.scenarios.registry import get_scenario

    adapter = load_adapter(str(MUTANTS / CATALOGUE[mutant]["adapter"]))
    result = run_scenario(adapter, get_scenario(scenario), out)
    if result.skipped:
        return Cell(mutant, scenario, skipped=result.skipped, run_dir=out)
    if result.error or result.trace_path is None:
        return Cell(mutant, scenario, error=result.error or "no trace", run_dir=out)
    verdict = check_path(str(result.trace_path))
    violated = frozenset(v.rule for v in verdict.violations)
    return Cell(mutant, scenario, violated, run_dir=out)


def run_matrix(jobs: list[tuple[str, str]], out: Path, workers: int = WORKERS) -> list[Cell]:
    """Every (mutant, scenario) job, `workers` at a time; each run in its own directory."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda j: run_cell(j[0], j[1], out / f"{j[0]}--{j[1]}"), jobs))


def _jobs(catalogue: dict[str, dict]) -> list[tuple[str, str]]:
    return [(m, s) for m, entry in catalogue.items() for s in entry["scenarios"]]


def catalogue_jobs() -> list[tuple[str, str]]:
    """The (mutant, scenario) runs MUTANTS.toml asks for."""
    return _jobs(CATALOGUE)


def problems(cells: list[Cell]) -> list[str]:
    """What contradicts MUTANTS.toml: a catching scenario without a verdict or that fails none
    of the rules it must catch the mutant by, a rule failed that is not expected, an
    `also_fails` rule that no scenario failed."""
    found = []
    for mutant, entry in CATALOGUE.items():
        must, also = set(entry["rules"]), set(entry["also_fails"])
        catches = entry.get("catches", {})
        mine = [c for c in cells if c.mutant == mutant and c.scenario in entry["scenarios"]]
        judged = [c for c in mine if c.skipped is None]
        for c in judged:
            by = set(catches.get(c.scenario, must))
            if c.error:
                found.append(f"{mutant} on {c.scenario}: could not run: {c.error}")
            elif not c.violated & by:
                found.append(
                    f"{mutant} survived {c.scenario}: none of {sorted(by)} failed"
                    f" (violated: {sorted(c.violated)}; {c.run_dir})"
                )
            elif c.violated - must - also:
                extra = sorted(c.violated - must - also)
                found.append(f"{mutant} on {c.scenario} also failed {extra} ({c.run_dir})")
        verdicts = [c.violated for c in judged if not c.error]
        missing = also - set().union(*verdicts)
        if missing and len(verdicts) == len(mine):  # judged on every scenario that should catch
            found.append(f"{mutant}: no scenario failed {sorted(missing)}")
    return found


def render(cells: list[Cell]) -> str:
    """The kill matrix, one row per mutant: X = failed one of its rules, x = failed a rule its
    bug breaks too, ! = failed an unexpected rule, . = passed; then the scenarios that failed
    it (with their rules) and those that did not (s skipped, E error)."""
    from checkers.rulebook import RULES

    width = max(map(len, CATALOGUE))
    lines = [f"{'mutant':<{width}} {' '.join(RULES)}  killed by / survived"]
    for mutant, entry in CATALOGUE.items():
        mine = [c for c in cells if c.mutant == mutant]
        if not mine:
            continue
        violated = set().union(*(c.violated for c in mine))
        marks = " ".join(f"{_mark(rule, violated, entry):>{len(rule)}}" for rule in RULES)
        killed = [f"{c.scenario} ({', '.join(sorted(c.violated))})" for c in mine if c.violated]
        survived = [_survivor(c) for c in mine if not c.violated]
        tail = "; ".join(killed) + (f" | survived: {', '.join(survived)}" if survived else "")
        lines.append(f"{mutant:<{width}} {marks}  {tail}")
    return "\n".join(lines)


def _survivor(cell: Cell) -> str:
    if cell.skipped or cell.error:
        return f"{cell.scenario} ({'s' if cell.skipped else 'E'})"
    return cell.scenario


def _mark(rule: str, violated: set[str], entry: dict) -> str:
    if rule not in violated:
        return "."
    if rule in entry["rules"]:
        return "X"
    return "x" if rule in entry["also_fails"] else "!"


def _expected() -> list[Cell]:
    """The matrix as MUTANTS.toml predicts it (each scenario failing its catching rules)."""
    cells = []
    for m, s in catalogue_jobs():
        entry = CATALOGUE[m]
        by = entry.get("catches", {}).get(s, entry["rules"])
        cells.append(Cell(m, s, frozenset(by + entry["also_fails"])))
    return cells


def _with(cells: list[Cell], scenario: str, cell: Cell) -> list[Cell]:
    return [cell if c.scenario == scenario and c.mutant == cell.mutant else c for c in cells]


def test_problems_reports_survivors_and_stray_rules() -> None:
    """The judgement of the matrix itself: a survivor, an unexpected rule, a missing companion
    rule and a run that could not happen are each reported; the predicted outcome and a
    skipped run are not."""
    good = _expected()
    assert problems(good) == []
    om = "online-multicast"
    survived = problems(_with(good, om, Cell("batches", om)))
    assert len(survived) == 1
    assert survived[0].startswith(f"batches survived {om}: none of ['immediacy'] failed")
    stray = problems(_with(good, om, Cell("batches", om, frozenset({"immediacy", "no-miss"}))))
    assert len(stray) == 1 and stray[0].startswith(f"batches on {om} also failed ['no-miss']")
    back = "coordinator-step-back"
    wrong = problems(_with(good, back, Cell("wall-clock", back, frozenset({"no-miss"}))))
    assert len(wrong) == 1 and wrong[0].startswith(f"wall-clock survived {back}: none of")
    alone = problems(_with(good, om, Cell("phantom", om, frozenset({"no-phantom"}))))
    assert alone == ["phantom: no scenario failed ['no-miss']"]
    assert problems(_with(good, om, Cell("phantom", om, error="boom"))) == [
        f"phantom on {om}: could not run: boom"
    ]
    assert problems(_with(good, om, Cell("phantom", om, skipped="no clock"))) == []


@pytest.mark.timeout(240)
def test_every_mutant_is_killed_on_its_rule(tmp_path: Path) -> None:
    pytest.importorskip("harness.running.runner")
    cells = run_matrix(catalogue_jobs(), tmp_path)
    matrix = render(cells)
    print(f"\n{matrix}")
    found = problems(cells)
    assert not found, "\n".join([*found, "", matrix])
    skipped = [f"{c.mutant} on {c.scenario}: {c.skipped}" for c in cells if c.skipped]
    if skipped:
        warnings.warn("not judged: " + "; ".join(skipped), stacklevel=1)


def main(argv: Optional[list[str]] = None) -> int:
    """Print the kill matrix; exit 1 when it contradicts MUTANTS.toml."""
    parser = argparse.ArgumentParser(prog="python -m tests.mutants.test_mutants_matrix")
    parser.add_argument("--profile", help="run every mutant on this profile's scenarios")
    parser.add_argument("-j", type=int, default=WORKERS, help="concurrent runs")
    parser.add_argument("-o", type=Path, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args(argv)
    jobs = catalogue_jobs()
    if args.profile:
        from harness.scenarios.registry import profile

        jobs = [(m, s) for m in CATALOGUE for s in profile(args.profile)]
    out = args.o or Path(tempfile.mkdtemp(prefix="pams-mutants-"))
    cells = run_matrix(jobs, out, args.j)
    print(render(cells))
    found = problems(cells)
    print(
        "\n".join(found) if found else "every mutant killed as MUTANTS.toml says", file=sys.stderr
    )
    print(f"runs kept in {out}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
