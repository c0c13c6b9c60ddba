"""What an autograder grades with, fixed when the bundle or workflow is made: the scenarios,
repeats, seed, slots, and the rubric and adapter template files copied beside it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from harness.adapters.adapter import load_adapter
from harness.reports.rubric import load_rubric
from harness.scenarios.registry import REGISTRY, profile

CONFIG = "pams-autograder.json"
RUBRIC = "rubric.toml"
TEMPLATE = "adapter.toml"


@dataclass(frozen=True)
class Setup:
    """The grading every submission gets; `rubric` and `adapter` are files to ship (None:
    the default rubric; the submission's own pams.toml)."""

    scenarios: tuple[str, ...]
    selection: str
    repeat: int = 1
    seed: Optional[int] = None
    jobs: Optional[int] = None
    rubric: Optional[Path] = None
    adapter: Optional[Path] = None

    def to_json(self) -> dict[str, Any]:
        return {
            "scenarios": list(self.scenarios),
            "selection": self.selection,
            "repeat": self.repeat,
            "seed": self.seed,
            "jobs": self.jobs,
            "rubric": RUBRIC if self.rubric else None,
            "adapter": TEMPLATE if self.adapter else None,
        }


def make_setup(
    profile_name: str,
    scenarios: Optional[list[str]],
    repeat: int,
    seed: Optional[int],
    jobs: Optional[int],
    rubric: Optional[Path],
    adapter: Optional[Path],
) -> Setup:
    """A checked Setup (ValueError, AdapterError or RubricError, one line, for bad input)."""
    names = tuple(scenarios or profile(profile_name))
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)}")
    if repeat < 1:
        raise ValueError("--repeat must be at least 1")
    if jobs is not None and jobs < 1:
        raise ValueError("-j must be at least 1")
    load_rubric(rubric)
    if adapter is not None:
        load_adapter(str(adapter))
    selection = "selected scenarios" if scenarios else f"profile {profile_name}"
    return Setup(names, selection, repeat, seed, jobs, rubric, adapter)


def read_config(source: Path) -> dict[str, Any]:
    return json.loads((source / CONFIG).read_text(encoding="utf-8"))
