"""The battery as a pytest plugin: `pytest --pams-impl ADAPTER [--pams-profile P]` collects
one test item per scenario of the profile (the same registry as `pams grade`), so
pytest-xdist (`-n auto`, remote hosts) spreads grading over cores and machines. Without
`--pams-impl` the plugin adds nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional

import pytest

from harness.scenarios.registry import PROFILES, REGISTRY, profile


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("pams", "pams conformance battery")
    group.addoption(
        "--pams-impl",
        metavar="ADAPTER",
        default=None,
        help="grade this implementation (adapter TOML or 'reference')",
    )
    group.addoption(
        "--pams-profile",
        metavar="PROFILE",
        default="basic",
        choices=list(PROFILES),
        help="scenarios to run (default basic)",
    )
    group.addoption(
        "--pams-output",
        metavar="DIR",
        default=None,
        help="where traces go (default: a new temporary directory)",
    )
    group.addoption(
        "--pams-scenario",
        metavar="NAME",
        action="append",
        default=None,
        help="only this scenario (repeatable; default: the whole profile)",
    )
    group.addoption(
        "--pams-seed",
        metavar="N",
        type=int,
        default=None,
        help="seed for the random scenarios (default 1)",
    )


def pytest_collection_modifyitems(session: Any, config: Any, items: list) -> None:
    impl = config.getoption("--pams-impl")
    if not impl:
        return
    names = config.getoption("--pams-scenario") or profile(config.getoption("--pams-profile"))
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise pytest.UsageError(f"--pams-scenario: unknown scenario(s): {', '.join(unknown)}")
    from harness.adapters.adapter import AdapterError, load_adapter

    try:
        load_adapter(impl)  # a wrong path or a typo: one line now, not a traceback per item
    except AdapterError as e:
        raise pytest.UsageError(f"--pams-impl: {e}") from None
    items.extend(PamsItem.from_parent(session, name=f"pams::{n}", scenario=n) for n in names)


class PamsError(Exception):
    """A scenario that failed a rule or could not run; the message is the explanation."""


class PamsItem(pytest.Item):
    """One scenario of the battery against the implementation named by --pams-impl."""

    def __init__(self, *, scenario: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.add_marker(pytest.mark.timeout(600))

    def runtest(self) -> None:
        from harness.adapters.adapter import load_adapter
        from harness.reports.battery import ERROR, FAIL, SKIPPED, run_one

        adapter = load_adapter(self.config.getoption("--pams-impl"))
        out = _output(self.config.getoption("--pams-output")) / self.scenario
        outcome = run_one(adapter, self.scenario, out, seed=self.config.getoption("--pams-seed"))
        self.user_properties.append(("trace", str(outcome.trace)))
        if outcome.status == SKIPPED:
            pytest.skip(outcome.detail)
        if outcome.status in (FAIL, ERROR):
            raise PamsError(f"trace: {outcome.trace}\n{outcome.detail}")

    def repr_failure(self, excinfo: Any, style: Optional[str] = None) -> Any:
        if isinstance(excinfo.value, PamsError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, Optional[int], str]:
        return self.path, None, f"pams scenario {self.scenario}"


_DEFAULT_OUT: list[Path] = []


def _output(option: Optional[str]) -> Path:
    if option:
        return Path(option)
    if not _DEFAULT_OUT:
        _DEFAULT_OUT.append(Path(tempfile.mkdtemp(prefix="pams-pytest-")))
    return _DEFAULT_OUT[0]
