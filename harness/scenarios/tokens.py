"""Message tokens the harness sends: `M` and eight digits. `M` never occurs after a token's
first byte, so a token found inside a run of others (`M00000001M00000002`) is exactly one
sent token, whatever the log's format."""

from __future__ import annotations

import re
from collections.abc import Iterator

TOKEN_WIDTH = 9
TOKEN_RE = re.compile(rb"M[0-9]{8}")
TOKEN_TEXT_RE = re.compile(r"M[0-9]{8}")


def token(n: int) -> str:
    """The n-th token of a run (n >= 0)."""
    if not 0 <= n < 10**8:
        raise ValueError(f"token number out of range: {n}")
    return f"M{n:08d}"


def tokens(start: int = 1) -> Iterator[str]:
    """Tokens start, start+1, … in order."""
    n = start
    while True:
        yield token(n)
        n += 1
