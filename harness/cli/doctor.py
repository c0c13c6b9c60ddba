"""`pams doctor`: what this machine gives pams — the sandbox in use and the one `auto`
would pick, and why; whether per-run limits can be enforced; clock injection; the tools
the tests and pages use (docs/cli.md). Exit 0 always: it reports, it does not judge."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from harness.running import limits as lim
from harness.running import sandbox as sb


def add_doctor(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "doctor",
        help="what this machine gives pams (sandbox, limits, clock injection, tools)",
        description="Say which sandbox runs get and why, which could be used (PAMS_SANDBOX="
        "auto), whether per-run limits can be enforced, and which tools pams found.",
    )
    parser.set_defaults(func=cmd_doctor)


def cmd_doctor(_args: argparse.Namespace) -> int:
    for line in report():
        print(line)
    return 0


def report() -> list[str]:
    """The doctor's lines, one fact each."""
    in_use, best = sb.detect(), sb.detect("auto")
    lines = [
        f"python: {sys.version.split()[0]} ({sys.executable})",
        f"in use: {in_use.describe()}",
        f"with {sb.ENV_CHOICE}=auto: {best.describe()}",
        f"limits: {_limits()}",
        f"clock injection: {_clock()}",
    ]
    for tool, use in (("java", "Java submissions"), ("chromium", "pams show page tests")):
        found = shutil.which(tool)
        lines.append(f"{tool}: {found or 'not found'} ({use})")
    return lines


def _limits() -> str:
    group = lim.RunCgroup.create(f"doctor-{os.getpid()}", lim.Limits())
    cgroup = (
        f"cgroup v{group.version} (memory, processes, cpu per run)"
        if group
        else "no cgroup can be made here (memory and cpu not limited; processes by rlimit"
        " unless root)"
    )
    if group:
        group.close()
    rlimit = "prlimit (file size, open files)" if shutil.which("prlimit") else "no prlimit"
    return f"{cgroup}; {rlimit}; applied inside a sandbox only"


def _clock() -> str:
    from harness.running import clock

    try:
        return f"libfaketime at {clock.library_path()}"
    except clock.ClockUnavailable as e:
        return f"unavailable: {e}"
