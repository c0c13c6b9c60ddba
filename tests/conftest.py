from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.procutil import ProcessGroup


@pytest.fixture
def procs() -> Iterator[ProcessGroup]:
    """Processes started through this group are killed (whole group) when the test ends."""
    group = ProcessGroup()
    try:
        yield group
    finally:
        group.close()
