"""Which sandbox a run gets, and the command lines that build it (README "The sandbox").

A run's harness side (runner, proxies, probes, log watching) runs in its own network and PID
namespaces (`outer_argv`), so its ports never collide with another run's and every process in
it dies with it. Each program of the submission is started inside that by `inner_argv`: with
bubblewrap, a filesystem view where the system is read-only, only the program's own directory
is writable, /tmp is private, and the grader's home, the submission's siblings and the run's
trace are hidden; then `limits_argv` applies the per-run limits. Detection runs the real tools
once per process (`detect`); `PAMS_SANDBOX` = auto | bwrap | unshare | none chooses.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ENV_CHOICE = "PAMS_SANDBOX"  # auto (the default), bwrap, unshare or none
ENV_INSIDE = "PAMS_SANDBOX_INSIDE"  # set in the run's process: the kind it is inside
KINDS = ("bwrap", "unshare", "none")
PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Sandbox:
    """The sandbox in use: `kind` bwrap (network, processes and files), unshare (network and
    processes only) or none; `reason` says why this one, in one line."""

    kind: str
    reason: str
    tool: Optional[str] = None

    @property
    def isolates_files(self) -> bool:
        return self.kind == "bwrap"

    def describe(self) -> str:
        """One line for reports: what is isolated and why."""
        what = {
            "bwrap": "private network, processes and files",
            "unshare": "private network and processes; files NOT isolated",
            "none": "NOT sandboxed: the programs see this machine's files and network",
        }[self.kind]
        return f"sandbox: {self.kind} ({what}): {self.reason}"

    def header(self) -> dict[str, str]:
        """The trace header's `sandbox` field (docs/trace-format.md)."""
        return {"kind": self.kind, "reason": self.reason}


OUTER_BWRAP = (
    "--unshare-net",
    "--unshare-pid",
    "--die-with-parent",
    "--dev-bind",
    "/",
    "/",
    "--proc",
    "/proc",
)


def outer_argv(sandbox: Sandbox) -> list[str]:
    """The prefix that starts a run's harness process in fresh network and PID namespaces
    (the host's files as they are); empty without a sandbox."""
    if sandbox.kind == "bwrap":
        return [sandbox.tool or "bwrap", *OUTER_BWRAP]
    if sandbox.kind == "unshare":
        user = [] if os.geteuid() == 0 else ["--map-root-user"]
        return [
            sandbox.tool or "unshare",
            *user,
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
        ]
    return []


@dataclass(frozen=True)
class View:
    """What one program may see: `own` writable (its directory), `readable` read-only even
    where a hidden directory covers them (the submission, the Python and pams it runs on),
    `hidden` replaced by empty directories (the grader's home, the submission's siblings, the
    run directory with its trace)."""

    own: Path
    readable: tuple[Path, ...]
    hidden: tuple[Path, ...]


def inner_argv(sandbox: Sandbox, view: View) -> list[str]:
    """The prefix that starts one program of the submission in its filesystem view, with its
    own PID namespace and no capabilities (bwrap only; empty otherwise)."""
    if sandbox.kind != "bwrap":
        return []
    # no --die-with-parent: its PDEATHSIG follows the *thread* that started bwrap, and the
    # runner restarts programs from worker threads that end; the run's PID namespace and the
    # supervisor's teardown end every program instead
    argv = [
        sandbox.tool or "bwrap",
        "--unshare-pid",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    mounts: list[tuple[Path, tuple[str, ...]]]
    mounts = [(p, ("--tmpfs", str(p))) for p in view.hidden if p != Path("/")]
    mounts += [(p, ("--ro-bind", str(p), str(p))) for p in view.readable if p.exists()]
    mounts.append((view.own, ("--bind", str(view.own), str(view.own))))
    for _, mount in sorted(mounts, key=lambda m: len(m[0].parts)):  # outer ones first
        argv += mount
    return [*argv, "--chdir", str(view.own)]


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def view_for(own: Path, submission: Path, run_dir: Path, needed: Iterable[Path]) -> View:
    """The usual view: `own` writable; hidden the grader's home, the run directory and the
    submission's parent (its siblings are other students' work) unless that parent holds
    something the program needs (`needed`: the Python, pams, libfaketime, build outputs)."""
    needed = tuple(p.resolve() for p in needed)
    submission = submission.resolve()
    readable = (submission, *needed)
    hidden = [run_dir.resolve(), Path.home().resolve()]
    parent = submission.parent
    holds_needed = any(_within(n, parent) for n in needed)
    inside_needed = any(_within(parent, n) for n in needed)  # pams's own fixtures, say
    if parent != Path("/") and not holds_needed and not inside_needed:
        hidden.append(parent)
    return View(own.resolve(), readable, tuple(h for h in hidden if h not in readable))


def runtime_paths() -> list[Path]:
    """What every program may need to read: this Python (venv and base), pams itself."""
    here = Path(__file__).resolve().parents[2]
    return [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).parent, here]


def detect(choice: Optional[str] = None) -> Sandbox:
    """The sandbox to use: `choice` (or $PAMS_SANDBOX) bwrap/unshare/none, or with auto (the
    default) the first of bwrap, unshare that works here (each is tried for real once per
    process and value; README "The sandbox")."""
    return _detect((choice or os.environ.get(ENV_CHOICE) or "auto").strip().lower())


@functools.cache
def _detect(choice: str) -> Sandbox:
    if choice == "none":
        return Sandbox("none", f"turned off ({ENV_CHOICE}=none)")
    if choice not in ("auto", *KINDS):
        return Sandbox("none", f"{ENV_CHOICE}={choice!r} is not auto, bwrap, unshare or none")
    tried: list[str] = []
    for kind in ("bwrap", "unshare"):
        if choice in ("auto", kind):
            found = _try(kind)
            if isinstance(found, Sandbox):
                return found
            tried.append(found)
    return Sandbox("none", "; ".join(tried) or "no sandbox tool tried")


def _try(kind: str) -> Sandbox | str:
    """A working Sandbox of `kind`, or why it does not work here (one line)."""
    tool = shutil.which("bwrap" if kind == "bwrap" else "unshare")
    if tool is None:
        package = "bubblewrap" if kind == "bwrap" else "util-linux"
        return f"{kind} not found (Debian package {package})"
    probe = Sandbox(kind, "", tool)
    argv = outer_argv(probe)
    if kind == "bwrap":
        here = Path.cwd()
        argv += inner_argv(probe, View(here, (), ()))
    problem = _run_probe([*argv, "true"])
    if problem:
        return f"{kind} does not work here: {problem}"
    reason = {
        "bwrap": "bubblewrap works here",
        "unshare": "bubblewrap is not available; util-linux unshare works (install bubblewrap"
        " to isolate files too)",
    }[kind]
    return Sandbox(kind, reason, tool)


def _run_probe(argv: list[str]) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return last
    return ""


def inside() -> Optional[Sandbox]:
    """The sandbox this process runs inside (set by the parent that started it), or None."""
    kind = os.environ.get(ENV_INSIDE)
    if kind not in KINDS:
        return None
    return Sandbox(
        kind,
        os.environ.get(ENV_INSIDE + "_REASON", ""),
        shutil.which("bwrap" if kind == "bwrap" else "unshare"),
    )
