"""What `pams class` writes of the graded submissions (docs/cli.md): one row per submission
in `summary.csv` and `summary.json`, `index.html` (a sortable table linking each submission's
report and each failure's run page, and a per-rule histogram of the class), and each
submission's `report.txt`. Rows are ordered as a grader reads them: best score first, those
that could not run last."""

from __future__ import annotations

import csv
import html
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from checkers import RULES
from harness.reports.battery import ERROR, FAIL, PASS, SKIPPED, Outcome
from harness.reports.classroom import Plan, Result
from harness.reports.grade import grouped, overall, plural, pts, report, scenario_scores
from harness.reports.rubric import Rubric, total
from harness.scenarios.registry import get_scenario

BINS = 5  # histogram bars: 0-20 %, ..., 80-100 % of the points


@dataclass(frozen=True)
class Row:
    """One submission as the summary shows it."""

    name: str
    adapter: str
    points: float
    most: float
    rules: dict[str, tuple[float, float]]
    passed: int
    counted: int
    failed: tuple[str, ...]
    links: tuple[tuple[str, str], ...]  # (failed scenario, its run's page or trace, relative)
    runs: str  # "passed/counted" runs
    reason: str
    seconds: float
    report: str  # relative path of report.txt

    @property
    def percent(self) -> Optional[float]:
        return 100.0 * self.points / self.most if self.most else None


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path, base)


def run_page(o: Outcome) -> Optional[Path]:
    """The run's HTML page beside its trace when there is one, else the trace."""
    page = getattr(o, "page", None)
    if isinstance(page, Path) and page.is_file():
        return page
    if o.trace is None:
        return None
    beside = o.trace.parent / "page.html"
    return beside if beside.is_file() else o.trace


def most_points(rubric: Rubric, plan: Plan) -> float:
    """The most a submission can earn on the plan's scenarios."""
    return sum(rubric.scenario_points(n, get_scenario(n).boundary) for n in plan.scenarios)


def row(r: Result, rubric: Rubric, out: Path, plan: Plan) -> Row:
    scores = scenario_scores(list(r.outcomes), rubric) if r.outcomes else {}
    battery = total(list(scores.values()))
    most = most_points(rubric, plan) if r.reason else battery.most  # could not run: 0 of all
    groups = grouped(r.outcomes)
    results = {n: overall(runs) for n, runs in groups.items()}
    failed = tuple(n for n, s in results.items() if s in (FAIL, ERROR))
    links = []
    for n in failed:
        first = next(o for o in groups[n] if o.status in (FAIL, ERROR))
        page = run_page(first)
        if page is not None:
            links.append((n, _rel(page, out)))
    counted = [s for s in results.values() if s != SKIPPED]
    runs = [o for o in r.outcomes if o.status != SKIPPED]
    return Row(
        name=r.name,
        adapter=r.adapter,
        points=0.0 if r.reason else battery.points,
        most=most,
        rules=dict(battery.rules),
        passed=counted.count(PASS),
        counted=len(counted),
        failed=failed,
        links=tuple(links),
        runs=f"{sum(o.status == PASS for o in runs)}/{len(runs)}",
        reason=r.reason,
        seconds=r.seconds,
        report=f"{r.name}/report.txt",
    )


def ordered(rows: Sequence[Row]) -> list[Row]:
    """Best first (share of the points, then points), ties by name; could-not-run last."""
    return sorted(rows, key=lambda w: (bool(w.reason), -(w.percent or 0.0), -w.points, w.name))


def submission_report(r: Result, rubric: Rubric, plan: Plan, out: Path) -> str:
    selection = plural(len(plan.scenarios), "scenario")
    if r.reason:
        log = out / r.name / "build.log"
        more = f"\nbuild output: {_rel(log, out)}" if log.is_file() else ""
        return f"pams class: {r.name} ({r.adapter})\ncould not run: {r.reason}{more}\n"
    return report(list(r.outcomes), r.name, selection, out / r.name, rubric) + "\n"


# --- files -----------------------------------------------------------------------------------
def csv_text(rows: Sequence[Row]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["submission", "score", "max_score", "percent", "scenarios_passed", "scenarios_counted",
         "scenarios_failed", "runs_passed", "could_not_run", "wall_seconds", *RULES, "adapter"]
    )  # fmt: skip
    for w in rows:
        percent = "" if w.percent is None else f"{w.percent:.1f}"
        writer.writerow(
            [w.name, pts(w.points), pts(w.most), percent, w.passed, w.counted,
             " ".join(w.failed), w.runs, w.reason, f"{w.seconds:.1f}",
             *(pts(w.rules[r][0]) if r in w.rules else "" for r in RULES), w.adapter]
        )  # fmt: skip
    return buf.getvalue()


def summary_json(rows: Sequence[Row], rubric: Rubric, plan: Plan) -> dict[str, Any]:
    return {
        "format": "pams-class-summary",
        "version": 1,
        "plan": plan.to_json(),
        "rubric": rubric.to_json(),
        "submissions": [
            {
                "submission": w.name,
                "adapter": w.adapter,
                "score": round(w.points, 4),
                "max_score": round(w.most, 4),
                "percent": None if w.percent is None else round(w.percent, 2),
                "rules": {
                    r: {"points": round(e, 4), "max_points": round(m, 4)}
                    for r, (e, m) in w.rules.items()
                },
                "scenarios_passed": w.passed,
                "scenarios_counted": w.counted,
                "scenarios_failed": list(w.failed),
                "failure_pages": dict(w.links),
                "runs_passed": w.runs,
                "could_not_run": w.reason or None,
                "wall_seconds": round(w.seconds, 2),
                "report": w.report,
            }
            for w in rows
        ],
    }


def write_summary(results: Sequence[Result], rubric: Rubric, plan: Plan, out: Path) -> list[Row]:
    """Every output file, from the results so far; returns the rows in order."""
    for r in results:
        (out / r.name).mkdir(parents=True, exist_ok=True)
        (out / r.name / "report.txt").write_text(submission_report(r, rubric, plan, out))
    rows = ordered([row(r, rubric, out, plan) for r in results])
    _replace(out / "summary.csv", csv_text(rows))
    _replace(out / "summary.json", json.dumps(summary_json(rows, rubric, plan), indent=1) + "\n")
    _replace(out / "index.html", index_html(rows, rubric, plan))
    return rows


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- index.html --------------------------------------------------------------------------------
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}th,td{padding:3px 7px;border-bottom:1px solid #ddd;
text-align:right;white-space:nowrap}th{cursor:pointer;background:#f3f3f3;position:sticky;top:0}
td.l,th.l{text-align:left}td.bad{color:#b00}td.cnr{color:#777;font-style:italic}
.hists{display:flex;flex-wrap:wrap;gap:18px;margin:1em 0}.hist{width:150px}
.bars{display:flex;align-items:flex-end;height:60px;gap:2px;border-bottom:1px solid #999}
.bar{flex:1;background:#4a7bd0;min-height:1px}.hist small{display:flex;
justify-content:space-between;color:#666}.hist b{font-weight:600;font-size:12px}
"""
SCRIPT = """
document.querySelectorAll('th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
    var up = th.dataset.dir !== 'up'; th.dataset.dir = up ? 'up' : 'down';
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return up ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cell(text: str, value: object, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<td{klass} data-v="{_e(value)}">{text}</td>'


def histogram(title: str, shares: Sequence[float]) -> str:
    """Bars of how many submissions got each fifth of the points (shares in 0..1)."""
    counts = [0] * BINS
    for s in shares:
        counts[min(BINS - 1, int(s * BINS))] += 1
    top = max(counts) or 1
    bars = "".join(
        f'<div class="bar" style="height:{100 * c / top:.0f}%" '
        f'title="{100 * i // BINS}-{100 * (i + 1) // BINS}%: {c}"></div>'
        for i, c in enumerate(counts)
    )
    return (
        f'<div class="hist"><b>{_e(title)}</b><div class="bars">{bars}</div>'
        f"<small><span>0%</span><span>100%</span></small></div>"
    )


def index_html(rows: Sequence[Row], rubric: Rubric, plan: Plan) -> str:
    graded = [w for w in rows if not w.reason]
    heads = ["#", "submission", "score", "%", "scenarios", *RULES, "failed", "could not run", "s"]
    left = {"submission", "failed", "could not run"}
    th = "".join(f'<th class="{"l" if h in left else ""}">{_e(h)}</th>' for h in heads)
    body = []
    for i, w in enumerate(rows, start=1):
        cells = [
            _cell(str(i), i),
            _cell(f'<a href="{_e(w.report)}">{_e(w.name)}</a>', w.name, "l"),
            _cell(f"{pts(w.points)}/{pts(w.most)}", w.points),
            _cell("" if w.percent is None else f"{w.percent:.0f}", w.percent or -1),
            _cell(f"{w.passed}/{w.counted}", w.passed),
        ]
        for r in RULES:
            earned, most = w.rules.get(r, (0.0, 0.0))
            bad = "bad" if most and earned < most - 1e-9 else ""
            cells.append(_cell(pts(earned) if most else "-", earned if most else -1, bad))
        links = ", ".join(f'<a href="{_e(href)}">{_e(n)}</a>' for n, href in w.links) or ", ".join(
            _e(n) for n in w.failed
        )
        cells.append(_cell(links, len(w.failed), "l"))
        cells.append(_cell(_e(w.reason), w.reason, "l cnr" if w.reason else "l"))
        cells.append(_cell(f"{w.seconds:.0f}", w.seconds))
        body.append("<tr>" + "".join(cells) + "</tr>")
    hists = [histogram("score", [w.points / w.most for w in graded if w.most])]
    for r in RULES:
        shares = [w.rules[r][0] / w.rules[r][1] for w in graded if w.rules.get(r, (0, 0))[1]]
        if shares:
            hists.append(histogram(r, shares))
    repeat = f", each {plan.repeat} times" if plan.repeat > 1 else ""
    scenarios = plural(len(plan.scenarios), "scenario")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>pams class</title>'
        f"<style>{STYLE}</style></head><body>\n"
        f"<h1>pams class: {len(rows)} submissions</h1>\n"
        f"<p>{scenarios}{repeat}: {_e(', '.join(plan.scenarios))}</p>\n"
        f"<p>{_e(rubric.describe())}</p>\n"
        f'<h2>The class, per rule</h2><div class="hists">{"".join(hists)}</div>\n'
        "<h2>Submissions</h2><p>Click a heading to sort; a submission links to its report, "
        "a failed scenario to its run's page.</p>\n"
        f"<table><thead><tr>{th}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>\n"
        f"<script>{SCRIPT}</script>\n</body></html>\n"
    )
