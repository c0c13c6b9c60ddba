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


# Modules whose tests start real coordinator/participant processes (or pams itself) get the
# `process` marker here, in one place, so `pytest -m "not process"` is the fast suite; modules
# that mix mark their process tests themselves (`@pytest.mark.process`).
PROCESS_MODULES = frozenset(
    {
        "test_h_grade",
        "test_h_run",
        "test_h_hostile_runs",
        "test_h_procs",
        "test_ref_conformance",
        "test_ref_participant",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.split(".")[-1] in PROCESS_MODULES:
            item.add_marker(pytest.mark.process)
