"""`pams show`'s page as one self-contained HTML file: the page model (harness/reports/page.py)
and the trace's raw lines embedded as JSON, the script and style inline; nothing is fetched.
The default path is the trace's with the suffix `.html` (`DIR/trace.jsonl` -> `DIR/trace.html`)."""

from __future__ import annotations

import html
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from checkers import Verdict
from harness.reports.page import model


def default_path(trace: Path) -> Path:
    """Where the page of `trace` goes unless told otherwise: beside it, suffix .html."""
    return trace.with_suffix(".html")


def _asset(name: str) -> str:
    return resources.files("harness.reports").joinpath(name).read_text(encoding="utf-8")


def _json_block(element_id: str, value: Any) -> str:
    """A <script type="application/json"> block; `<` is escaped so no text can end it."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    text = text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f'<script type="application/json" id="{element_id}">{text}</script>\n'


def render(data: dict[str, Any], raw_lines: list[str]) -> str:
    """The page's HTML text for a model and the raw lines it names."""
    meta = data["meta"]
    title = f"pams show: {meta['verdict'].upper()} {meta['scenario'] or meta['trace']}"
    script = _asset("page.js").replace("</", "<\\/")
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f"<title>{html.escape(title)}</title>\n",
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f"<style>\n{_asset('page.css')}</style>\n</head>\n<body>\n",
            '<header id="summary"></header>\n<div id="bar"></div>\n<div id="legend"></div>\n',
            '<div id="view"><canvas id="lanes"></canvas><div id="tip"></div></div>\n',
            '<div id="status"></div>\n',
            '<main><section id="violations"></section>',
            '<section id="details"><h2>details</h2><p class="muted">Click an op, a delivery, '
            "a fault or a violation to see its raw events, wire bytes and process output."
            "</p></section></main>\n",
            "<noscript><p>This page draws with JavaScript; `pams show --text TRACE` prints "
            "the same timeline in a terminal.</p></noscript>\n",
            _json_block("pams-model", data),
            _json_block("pams-trace", raw_lines),
            f"<script>\n{script}</script>\n</body>\n</html>\n",
        ]
    )


def write_page(trace: Path, out: Optional[Path] = None) -> tuple[Path, Verdict]:
    """Write the page of `trace` to `out` (default `default_path`), atomically; return the
    path and the verdict (TraceError if the trace is unreadable, OSError if it cannot be
    written)."""
    target = out if out is not None else default_path(trace)
    data, raw_lines, verdict = model(trace)
    text = render(data, raw_lines)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target, verdict
