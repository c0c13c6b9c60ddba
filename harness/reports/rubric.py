"""The rubric (docs/rubric.md): how scenario outcomes become points. A TOML file layered on the
shipped default; pure scoring functions from outcomes to points, shared by every report
(`pams grade`, `pams class`, JUnit, Gradescope)."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10
    import tomli as tomllib

from checkers import RULES
from harness.reports.battery import ERROR, FAIL, PASS, SKIPPED, UNEXERCISED, Outcome
from harness.scenarios.registry import REGISTRY

DEFAULT_PATH = Path(__file__).resolve().parent / "default-rubric.toml"
FLAKY = ("mean", "worst", "best")
SCOPES = ("run", "rule")
_SCORING = (
    "points",
    "boundary_weight",
    "partial",
    "not_exercised_penalty",
    "not_exercised_scope",
    "flaky",
)


class RubricError(Exception):
    """An unusable rubric; str is one line `PATH: FIELD: reason`."""


@dataclass(frozen=True)
class Rubric:
    """Points per scenario and how they are split between rules, repeats and boundary ones."""

    source: str
    points: float
    boundary_weight: float
    partial: bool
    not_exercised_penalty: float
    not_exercised_scope: str
    flaky: str
    rules: tuple[tuple[str, float], ...]
    scenarios: tuple[tuple[str, float], ...] = ()

    def weight(self, rule: str) -> float:
        return dict(self.rules).get(rule, 0.0)

    def scenario_points(self, name: str, boundary: bool) -> float:
        """The most a scenario can earn."""
        base = dict(self.scenarios).get(name, self.points)
        return base * (self.boundary_weight if boundary else 1.0)

    def describe(self) -> str:
        """One line for every report."""
        weights = ", ".join(f"{r} {w:g}" for r, w in self.rules)
        special = ", ".join(f"{s} {p:g}" for s, p in self.scenarios)
        split = "partial credit by rule weight" if self.partial else "all or nothing per scenario"
        return (
            f"rubric: {self.source}: {self.points:g} points a scenario"
            + (f" ({special})" if special else "")
            + f", boundary x{self.boundary_weight:g}, {split} ({weights}); not exercised loses "
            f"{100 * self.not_exercised_penalty:g}% of "
            + (
                "every rule's share in that run"
                if self.not_exercised_scope == "run"
                else "that rule's share"
            )
            + f"; repeats: {self.flaky}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "points": self.points,
            "boundary_weight": self.boundary_weight,
            "partial": self.partial,
            "not_exercised_penalty": self.not_exercised_penalty,
            "not_exercised_scope": self.not_exercised_scope,
            "flaky": self.flaky,
            "rules": dict(self.rules),
            "scenarios": dict(self.scenarios),
        }


@dataclass(frozen=True)
class Score:
    """Points earned of the most possible, in all and per rule (`rules[r] = (earned, most)`)."""

    points: float
    most: float
    rules: Mapping[str, tuple[float, float]]


NOTHING = Score(0.0, 0.0, {})


# --- loading ---------------------------------------------------------------------------------
def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RubricError(f"{path}: cannot read rubric: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise RubricError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise RubricError(f"{path}: invalid TOML: {e}") from None


def _suggest(word: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _number(where: str, field: str, value: Any, most: Optional[float] = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise RubricError(f"{where}: {field}: must be a number, not {value!r}")
    if value < 0 or (most is not None and value > most):
        bound = f"between 0 and {most:g}" if most is not None else "0 or more"
        raise RubricError(f"{where}: {field}: must be {bound}, not {value!r}")
    return float(value)


def _table(where: str, raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise RubricError(f"{where}: {key}: must be a table ([{key}])")
    return value


def _weights(where: str, raw: dict[str, Any], key: str, known: Sequence[str]) -> dict[str, float]:
    out = {}
    for name, value in _table(where, raw, key).items():
        if name not in known:
            what = "rule" if key == "rules" else "scenario"
            raise RubricError(f"{where}: {key}.{name}: unknown {what}{_suggest(name, known)}")
        out[name] = _number(where, f"{key}.{name}", value)
    return out


def parse_rubric(raw: dict[str, Any], where: str, base: Optional[Rubric] = None) -> Rubric:
    """A Rubric from a parsed TOML table; fields it lacks come from `base` (RubricError)."""
    for key in raw:
        if key not in ("scoring", "rules", "scenarios"):
            raise RubricError(
                f"{where}: {key}: unknown table{_suggest(key, ['scoring', 'rules', 'scenarios'])}"
                " (one of scoring, rules, scenarios)"
            )
    scoring = _table(where, raw, "scoring")
    for key in scoring:
        if key not in _SCORING:
            raise RubricError(f"{where}: scoring.{key}: unknown field{_suggest(key, _SCORING)}")
    defaults: dict[str, Any] = base.to_json() if base else {}
    missing = [k for k in _SCORING if k not in scoring and k not in defaults]
    if missing:
        raise RubricError(f"{where}: scoring.{missing[0]}: missing")
    value = {**{k: defaults.get(k) for k in _SCORING}, **scoring}
    if not isinstance(value["partial"], bool):
        raise RubricError(f"{where}: scoring.partial: must be true or false")
    if value["not_exercised_scope"] not in SCOPES:
        raise RubricError(
            f"{where}: scoring.not_exercised_scope: must be one of {', '.join(SCOPES)}"
        )
    if value["flaky"] not in FLAKY:
        raise RubricError(f"{where}: scoring.flaky: must be one of {', '.join(FLAKY)}")
    rules = {**(dict(base.rules) if base else {}), **_weights(where, raw, "rules", RULES)}
    absent = [r for r in RULES if r not in rules]
    if absent:
        raise RubricError(f"{where}: rules.{absent[0]}: missing")
    scenarios = {
        **(dict(base.scenarios) if base else {}),
        **_weights(where, raw, "scenarios", list(REGISTRY)),
    }
    return Rubric(
        source=where,
        points=_number(where, "scoring.points", value["points"]),
        boundary_weight=_number(where, "scoring.boundary_weight", value["boundary_weight"]),
        partial=value["partial"],
        not_exercised_penalty=_number(
            where, "scoring.not_exercised_penalty", value["not_exercised_penalty"], most=1.0
        ),
        not_exercised_scope=value["not_exercised_scope"],
        flaky=value["flaky"],
        rules=tuple((r, rules[r]) for r in RULES),
        scenarios=tuple(sorted(scenarios.items())),
    )


def default_rubric() -> Rubric:
    rubric = parse_rubric(_read(DEFAULT_PATH), str(DEFAULT_PATH))
    return Rubric(**{**rubric.__dict__, "source": "default"})


def load_rubric(path: Optional[Path]) -> Rubric:
    """The rubric in `path` layered on the default (the default itself for None)."""
    base = default_rubric()
    return base if path is None else parse_rubric(_read(path), str(path), base)


# --- scoring ---------------------------------------------------------------------------------
def _credit(rubric: Rubric, status: str) -> float:
    return {PASS: 1.0, FAIL: 0.0, UNEXERCISED: 1.0 - rubric.not_exercised_penalty}[status]


def score_run(rubric: Rubric, o: Outcome) -> Score:
    """One run: its scenario's points split between the rules it checked, each rule's share
    earned by its credit (partial), or the lowest credit applied to all (not partial); a rule
    not exercised caps every credit of the run (scope "run")."""
    if o.status == SKIPPED:
        return NOTHING
    most = rubric.scenario_points(o.scenario, o.boundary)
    if o.status == ERROR:
        return Score(0.0, most, {})
    checked = {
        r: s for r, s in o.rules.items() if s in (PASS, FAIL, UNEXERCISED) and rubric.weight(r)
    }
    total = sum(rubric.weight(r) for r in checked)
    if not total:  # nothing weighed: the scenario's result decides
        return Score(most if o.status == PASS else 0.0, most, {})
    credits = {r: _credit(rubric, s) for r, s in checked.items()}
    if rubric.not_exercised_scope == "run" and UNEXERCISED in checked.values():
        # what passed in a run that never showed what its scenario needs proves little
        cap = _credit(rubric, UNEXERCISED)
        credits = {r: min(c, cap) for r, c in credits.items()}
    if not rubric.partial:
        lowest = min(credits.values())
        credits = dict.fromkeys(credits, lowest)
    shares = {r: most * rubric.weight(r) / total for r in checked}
    rules = {r: (shares[r] * credits[r], shares[r]) for r in checked}
    earned = most * sum(rubric.weight(r) * credits[r] for r in checked) / total
    return Score(earned, most, rules)


def score_repeats(rubric: Rubric, runs: Sequence[Outcome]) -> Score:
    """The repeats of one scenario: the mean of their scores, or the worst or best repeat."""
    scores = [score_run(rubric, o) for o in runs if o.status != SKIPPED]
    if not scores:
        return NOTHING
    if rubric.flaky == "worst":
        return min(scores, key=lambda s: s.points)
    if rubric.flaky == "best":
        return max(scores, key=lambda s: s.points)
    n = len(scores)
    names = [r for r in RULES if any(r in s.rules for s in scores)]
    rules = {
        r: (
            sum(s.rules.get(r, (0.0, 0.0))[0] for s in scores) / n,
            sum(s.rules.get(r, (0.0, 0.0))[1] for s in scores) / n,
        )
        for r in names
    }
    return Score(sum(s.points for s in scores) / n, sum(s.most for s in scores) / n, rules)


def total(scores: Sequence[Score]) -> Score:
    """The sum of scenario scores, per rule too."""
    rules: dict[str, tuple[float, float]] = {}
    for s in scores:
        for r, (earned, most) in s.rules.items():
            e, m = rules.get(r, (0.0, 0.0))
            rules[r] = (e + earned, m + most)
    ordered = {r: rules[r] for r in RULES if r in rules}
    return Score(sum(s.points for s in scores), sum(s.most for s in scores), ordered)
