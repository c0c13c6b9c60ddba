"""`pams bench show`: how fast `pams show`'s page is for a large run. Generates a correct random
trace (benchmarks.tracegen: 20 participants, failures, timeouts, log noise, kills and pauses)
of about N events, writes its page, loads it in headless Chromium and prints the time to the
first full render (navigation start to the end of the first draw, the page's own clock), the
page's size and build time, and the time of a redraw at full view and zoomed in while panning.
Target: first render under 2 s for 100,000 events. Figures only; nothing is asserted."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from benchmarks import tracegen
from benchmarks.main import mixed, progress, write_trace
from harness.exits import EXIT_ERROR

TARGET_MS = 2000.0
REDRAWS = """(function () {
  var P = window.pamsPage, r = {}, t, i;
  t = performance.now(); for (i = 0; i < 5; i++) P.draw(); r.full_ms = (performance.now() - t) / 5;
  P.zoom(0.02);
  t = performance.now(); for (i = 0; i < 10; i++) { P.pan(0.05); P.draw(); }
  r.zoomed_pan_ms = (performance.now() - t) / 10;
  P.fit(0, 1e12); return r; })()"""


def knobs(participants: int) -> tracegen.Knobs:
    """A stress run's shape: overlapping ops, failures and timeouts, some kills and pauses."""
    base = mixed(tracegen.Knobs(participants=participants, concurrent=True))
    return dataclasses.replace(base, p_info=0.002, p_kill=0.01, p_pause=0.01)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    from harness.reports.pagebrowser import Browser
    from harness.reports.pagefile import write_page

    with tempfile.TemporaryDirectory(prefix="pams-bench-show-") as tmp:
        trace = Path(args.keep) if args.keep else Path(tmp) / "trace.jsonl"
        progress(f"generating a trace of {args.events:,} events into {trace} ...")
        events = write_trace(trace, knobs(args.participants), args.seed, args.events)
        start = time.perf_counter()
        page, verdict = write_page(trace, trace.with_suffix(".html"))
        build = time.perf_counter() - start
        size = page.stat().st_size
        progress(f"page written in {build:.1f} s ({size / 2**20:.1f} MiB); loading it ...")
        with Browser(width=1600, height=1000) as browser:
            start = time.perf_counter()
            browser.open(page, timeout=args.timeout)
            load = time.perf_counter() - start
            rendered = browser.evaluate("window.pamsRendered")
            drawn = browser.evaluate("window.pamsDrawn")
            redraw = browser.evaluate(REDRAWS)
    return {
        "events": events,
        "participants": args.participants,
        "seed": args.seed,
        "verdict": verdict.verdict,
        "page_bytes": size,
        "build_seconds": build,
        "first_render_ms": rendered,
        "load_event_seconds": load,
        "redraw_full_ms": redraw["full_ms"],
        "redraw_zoomed_pan_ms": redraw["zoomed_pan_ms"],
        "drawn": drawn,
        "target_met": rendered is not None and rendered < TARGET_MS,
    }


def render(fig: dict[str, Any]) -> str:
    drawn = fig["drawn"] or {}
    met = "met" if fig["target_met"] else "MISSED"
    rows = [
        ("events", f"{fig['events']:,} ({fig['participants']} participants, seed {fig['seed']})"),
        ("page", f"{fig['page_bytes'] / 2**20:.1f} MiB, built in {fig['build_seconds']:.2f} s"),
        ("first render", f"{fig['first_render_ms']:.0f} ms (navigation start to first draw)"),
        ("load event", f"{fig['load_event_seconds']:.2f} s (as the driver saw it)"),
        (
            "redraw",
            f"{fig['redraw_full_ms']:.1f} ms full view, "
            f"{fig['redraw_zoomed_pan_ms']:.1f} ms zoomed in, panning",
        ),
        ("drawn", ", ".join(f"{v:,} {k}" for k, v in drawn.items())),
        ("target", f"{met} (first render < {TARGET_MS:.0f} ms)"),
    ]
    return "\n".join(f"{name:<14}{value}" for name, value in rows)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Optional[list[str]] = None, prog: str = "python -m benchmarks.main") -> int:
    p = argparse.ArgumentParser(prog=f"{prog} show", description=__doc__.split("\n")[0])
    p.add_argument("--events", type=_positive, default=100_000, help="default 100,000")
    p.add_argument("--participants", type=_positive, default=20, help="default 20")
    p.add_argument("--seed", type=int, default=1, help="default 1")
    p.add_argument("--keep", metavar="PATH", help="write the trace to PATH (page beside it)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds allowed for the load")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    from harness.reports.pagebrowser import BrowserError

    try:
        fig = bench(args)
    except (OSError, BrowserError) as e:
        print(f"{prog} show: {e}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(fig) if args.json else render(fig))
    return 0
