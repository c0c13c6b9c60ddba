"""A wheel of this pams, for a bundle to install: built from the source tree it runs from
(`pip wheel --no-deps` over a clean copy of the packages), or a given one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

SOURCE = Path(__file__).resolve().parents[2]
PACKAGES = ("reference", "harness", "checkers", "benchmarks")
FILES = ("pyproject.toml", "README.md")


class WheelError(Exception):
    """The wheel could not be had; str says why in one line."""


def build_wheel(into: Path, given: Optional[Path] = None, timeout: float = 300.0) -> Path:
    """The pams wheel in `into`: a copy of `given`, or one built from SOURCE."""
    into.mkdir(parents=True, exist_ok=True)
    if given is not None:
        if not given.is_file() or given.suffix != ".whl":
            raise WheelError(f"--wheel {given}: not a wheel file")
        return Path(shutil.copy2(given, into / given.name))
    missing = [f for f in FILES if not (SOURCE / f).is_file()]
    if missing:
        raise WheelError(
            f"cannot build the pams wheel: no {missing[0]} in {SOURCE} (pams is not run from "
            "its source tree); give --wheel FILE"
        )
    with tempfile.TemporaryDirectory(prefix="pams-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in FILES:
            shutil.copy2(SOURCE / name, src / name)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name in PACKAGES:
            shutil.copytree(SOURCE / name, src / name, ignore=ignore)
        out = Path(tmp) / "out"
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise WheelError(f"pip wheel took more than {timeout:g} s") from None
        wheels = sorted(out.glob("pams-*.whl")) if done.returncode == 0 else []
        if not wheels:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel made"]
            raise WheelError(f"pip wheel failed (exit {done.returncode}): {last[0]}")
        return Path(shutil.copy2(wheels[0], into / wheels[0].name))
