"""`pams show`'s HTML page rendered in a real headless Chromium (one browser for the module):
a failing trace's violation is drawn and explained in the DOM, a screenshot of a shipped
failing trace shows its lanes, its arrows and the violation in red, and the page fetches
nothing. Skipped, with the reason, where Chromium is absent (.ci/run installs it)."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkers import check_path
from harness.reports.pagebrowser import Browser, find_chromium
from harness.reports.pagefile import write_page
from tests.procutil import REPO

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        find_chromium() is None, reason="no chromium on PATH (Debian: apt-get install chromium)"
    ),
]
TRACES = REPO / "traces"
WIDTH = 1200


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(width=WIDTH, height=900) as b:
        yield b


def show(browser: Browser, trace: str, tmp: Path) -> Path:
    page, _ = write_page(TRACES / trace, tmp / "page.html")
    browser.open(page)
    assert browser.evaluate("document.documentElement.dataset.rendered") == "1"
    return page


def test_a_failing_traces_violation_is_drawn_and_explained(
    browser: Browser, tmp_path: Path
) -> None:
    show(browser, "fail-no-duplicate.jsonl", tmp_path)
    (violation,) = check_path(TRACES / "fail-no-duplicate.jsonl").violations
    drawn = browser.evaluate("window.pamsDrawn")
    assert drawn["violations"] == 1 and drawn["lanes"] == 3 and drawn["arrows"] >= 1
    listed = browser.evaluate("document.getElementById('violations').innerText")
    assert violation.why in listed and "no-duplicate" in listed
    summary = browser.evaluate("document.getElementById('summary').innerText")
    assert "FAIL" in summary and "fail-no-duplicate" in summary and "hand-written" in summary
    browser.evaluate("document.querySelector('#violations li').click()")
    details = browser.evaluate("document.getElementById('details').innerText")
    assert violation.line() in details
    assert '"type": "deliver"' in details or '"type":"deliver"' in details  # the raw events


def test_a_screenshot_of_a_shipped_failing_trace_shows_lanes_arrows_and_the_violation(
    browser: Browser, tmp_path: Path
) -> None:
    show(browser, "fail-no-miss.jsonl", tmp_path)
    box = browser.evaluate(
        "(function(){var r=document.getElementById('lanes').getBoundingClientRect();"
        "return [r.left, r.top + window.scrollY, r.width, r.height];})()"
    )
    # where the page says it drew: each participant lane's middle, the p1 -> p2 arrow's
    # middle (the delivery of M00000021 to p2), and the violation mark on p3
    where = browser.evaluate(
        "(function(){var P = window.pamsPage.geometry;"
        "return {lanes: [1, 2, 3].map(function (l) { return P.laneMiddle(l, 0.6); }),"
        " arrow: P.arrowMiddle(1), mark: P.violationMark(0)};})()"
    )
    clip = {"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1}
    params = {"format": "png", "captureBeyondViewport": True, "clip": clip}
    png = browser.call("Page.captureScreenshot", params, session=True)["data"]
    image = decode_png(base64.b64decode(png))
    online = (0xDF, 0xF1, 0xE3)
    for x, y in where["lanes"]:
        assert near(image.pixel(x, y), online, 6), (x, y, image.pixel(x, y))
    ax, ay = where["arrow"]
    assert any(bluish(image.pixel(ax + dx, ay)) for dx in range(-2, 3)), "no arrow drawn"
    mx, my = where["mark"]
    red = [image.pixel(mx + dx, my + dy) for dx in range(-6, 7) for dy in range(-6, 7)]
    assert sum(r > 180 and g < 90 and b < 90 for r, g, b in red) >= 10, "no violation mark"


def test_the_filters_keep_one_message_or_one_participant(browser: Browser, tmp_path: Path) -> None:
    show(browser, "basic-pass.jsonl", tmp_path)
    assert browser.evaluate("window.pamsDrawn.arrows") == 11

    def filtered(element: str, value: str) -> int:
        browser.evaluate(
            f"(function(){{var e = document.getElementById('{element}'); e.value = '{value}';"
            "e.dispatchEvent(new Event('change')); var P = window.pamsPage;"
            "P.fit(0, P.horizon); P.draw(); return 1;})()"
        )
        return int(browser.evaluate("window.pamsDrawn.arrows"))

    assert filtered("fmsg", "M00000002") == 3  # p2's message, to p1, p2 and (at reconnect) p3
    assert filtered("fmsg", "") == 11
    assert filtered("fpart", "3") == 6  # p3's 4 deliveries, and its M00000003 to p1 and p2


def test_the_page_fetches_nothing(browser: Browser, tmp_path: Path) -> None:
    browser.call("Network.enable", session=True)
    try:
        show(browser, "faults-pause-fail-immediacy.jsonl", tmp_path)
        urls = [
            e["params"]["request"]["url"]
            for e in browser.events
            if e.get("method") == "Network.requestWillBeSent"
        ]
    finally:
        browser.call("Network.disable", session=True)
    assert urls and all(u.startswith(("file:", "data:", "about:")) for u in urls), urls
    assert browser.evaluate("window.pamsDrawn")["faults"] >= 2  # the pause and its resume


# ------------------------------------------------------------------- a small PNG decoder


class Image:
    def __init__(self, width: int, height: int, channels: int, rows: list[bytes]) -> None:
        self.width, self.height, self.channels, self.rows = width, height, channels, rows

    def pixel(self, x: float, y: float) -> tuple[int, int, int]:
        row, at = self.rows[int(y)], int(x) * self.channels
        return row[at], row[at + 1], row[at + 2]


def decode_png(data: bytes) -> Image:
    """8-bit RGB or RGBA, non-interlaced: what Chromium's screenshots are."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat, head = 8, b"", b""
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        at += 12 + length
        if kind == b"IHDR":
            head = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", head)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    channels = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return Image(width, height, channels, rows)


def near(got: tuple[int, int, int], want: tuple[int, int, int], slack: int) -> bool:
    return all(abs(g - w) <= slack for g, w in zip(got, want))


def bluish(rgb: tuple[int, int, int]) -> bool:
    r, g, b = rgb
    return b - r > 25 and b > 120
