from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.procutil import ProcessGroup

# CI (CI=true) draws the same hypothesis examples on every run, so a run's verdict is the
# code's, not the dice's; a developer's run explores new examples each time (and keeps
# failing ones in .hypothesis/). Loaded here, before any test module defines its settings.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


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
