"""Per-run resource limits (docs/adapter.md `[limits]`): a cgroup per run where this machine
lets pams make one (memory, processes, CPU: a busy loop is slowed, not the machine), and
rlimits on every program (file size, open files; processes where no cgroup can count them).

`prelude` is the command prefix that puts a program in the run's cgroup, ignores SIGXFSZ (a
write past the file-size cap fails with EFBIG instead of killing the program) and applies the
rlimits with util-linux `prlimit`. `RunCgroup.hits()` says which limits were reached."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Limits:
    """What one run's programs may use together (memory, processes, cpu in cores) and each
    program alone (file_size, open_files); 0 means no limit (cpu's default: a quota slows
    JVM start-up, so busy loops are slowed only where the adapter asks)."""

    memory: int = 2 * 2**30
    processes: int = 1024
    cpu: float = 0.0
    file_size: int = 256 * 2**20
    open_files: int = 4096

    def describe(self) -> str:
        return (
            f"memory {_size(self.memory)}, processes {self.processes or 'any'}, "
            f"cpu {self.cpu:g} cores, file size {_size(self.file_size)}, "
            f"open files {self.open_files or 'any'}"
        )


def _size(n: int) -> str:
    if not n:
        return "any"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class Hit:
    """A limit reached during the run: `limit` (memory, processes, cpu, file_size) and a
    one-line `detail` for the trace and the report."""

    limit: str
    detail: str


class RunCgroup:
    """The cgroup(s) of one run: v1 (one directory per controller) or v2 (one directory).
    `create` returns None where no cgroup can be made here (not root, read-only, no
    controllers); `close` kills what is left in it and removes it."""

    def __init__(self, dirs: dict[str, Path], version: int, limits: Limits):
        self.dirs = dirs
        self.version = version
        self.limits = limits

    @classmethod
    def create(cls, run_id: str, limits: Limits) -> Optional[RunCgroup]:
        """The run's cgroup(s): pids and memory always, cpu only for a CPU limit (a cgroup in
        the cpu controller is scheduled as one task against every other process, so under
        load it would starve the run's programs: seconds-late first commands, false alarms)."""
        name = f"pams-{run_id}"
        v1 = {c: CGROUP_ROOT / c for c in _controllers(limits)}
        if all((d / "cgroup.procs").exists() for d in v1.values()):
            return cls._make({c: d / name for c, d in v1.items()}, 1, limits)
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            return cls._make_v2(CGROUP_ROOT / name, limits)
        return None

    @classmethod
    def _make(cls, dirs: dict[str, Path], version: int, limits: Limits) -> Optional[RunCgroup]:
        made: dict[str, Path] = {}
        try:
            for controller, path in dirs.items():
                path.mkdir()
                made[controller] = path
            group = cls(made, version, limits)
            group._apply()
            return group
        except OSError:
            for path in made.values():
                with contextlib.suppress(OSError):
                    path.rmdir()
            return None

    @classmethod
    def _make_v2(cls, path: Path, limits: Limits) -> Optional[RunCgroup]:
        enable = " ".join(f"+{c}" for c in _controllers(limits))
        with contextlib.suppress(OSError):
            (CGROUP_ROOT / "cgroup.subtree_control").write_text(enable)
        return cls._make({"all": path}, 2, limits)

    def _apply(self) -> None:
        lim = self.limits
        quota = int(lim.cpu * CPU_PERIOD_US) if lim.cpu else -1
        if self.version == 1:
            settings = {
                "pids": [("pids.max", str(lim.processes or "max"))],
                "memory": [("memory.limit_in_bytes", str(lim.memory or -1))],
                "cpu": [
                    ("cpu.cfs_period_us", str(CPU_PERIOD_US)),
                    ("cpu.cfs_quota_us", str(quota)),
                ],
            }
            for controller, files in settings.items():
                for name, value in files if controller in self.dirs else ():
                    (self.dirs[controller] / name).write_text(value)
            return
        path = self.dirs["all"]
        (path / "pids.max").write_text(str(lim.processes or "max"))
        (path / "memory.max").write_text(str(lim.memory or "max"))
        if lim.cpu:
            (path / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs.values()]

    def hits(self) -> list[Hit]:
        """The limits reached so far (read from the cgroup's event counters)."""
        checks = (self._processes_hit, self._memory_hit, self._cpu_hit)
        return [hit for check in checks if (hit := check()) is not None]

    def _processes_hit(self) -> Optional[Hit]:
        refused = _counter(self._read("pids", "pids.events"), "max")
        if not refused:
            return None
        detail = f"{self.limits.processes} processes/threads ({refused} refused forks)"
        return Hit("processes", f"the run's programs reached {detail}")

    def _memory_hit(self) -> Optional[Hit]:
        if self.version == 2:
            events = self._read("memory", "memory.events")
            reached = _counter(events, "oom_kill") or _counter(events, "max")
        else:
            reached = _counter(self._read("memory", "memory.oom_control"), "oom_kill")
            failcnt = self._read("memory", "memory.failcnt").strip()
            reached = reached or (int(failcnt) if failcnt.isdigit() else 0)
        if not reached:
            return None
        return Hit("memory", f"the run's programs reached {_size(self.limits.memory)} of memory")

    def _cpu_hit(self) -> Optional[Hit]:
        throttled = _counter(self._read("cpu", "cpu.stat"), "nr_throttled")
        if not throttled:
            return None
        detail = f"{self.limits.cpu:g} cores ({throttled} throttled periods)"
        return Hit("cpu", f"the run's programs were slowed to {detail}")

    def _read(self, controller: str, name: str) -> str:
        path = self.dirs.get(controller) or self.dirs.get("all")
        if path is None:
            return ""
        try:
            return (path / name).read_text()
        except OSError:
            return ""

    def close(self) -> None:
        """Kill every process still in the cgroup, then remove it (bounded, quiet)."""
        deadline = time.monotonic() + 2.0
        for path in self.dirs.values():
            while time.monotonic() < deadline:
                pids = _members(path)
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, 9)
                time.sleep(0.02)
            with contextlib.suppress(OSError):
                path.rmdir()


def _controllers(limits: Limits) -> tuple[str, ...]:
    return ("pids", "memory", "cpu") if limits.cpu else ("pids", "memory")


def _members(path: Path) -> list[int]:
    try:
        return [int(x) for x in (path / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _counter(text: str, key: str) -> int:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return 0


def _user_tasks() -> int:
    """Processes and threads of this user now: RLIMIT_NPROC counts all of them, so the run's
    allowance is added to what the user already runs (a desktop's browser included)."""
    uid, count = os.getuid(), 0
    for proc in psutil.process_iter(["uids", "num_threads"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if proc.info["uids"].real == uid:
                count += proc.info["num_threads"] or 1
    return count


def prelude(cgroup: Optional[RunCgroup]) -> list[str]:
    """`sh -c ...`: join the run's cgroup, ignore SIGXFSZ, exec the rest of the command line."""
    joins = "".join(
        f"echo $$ > {shlex.quote(str(f))} 2>/dev/null; "
        for f in (cgroup.procs_files() if cgroup else [])
    )
    return ["sh", "-c", joins + "trap '' XFSZ; exec \"$@\"", "pams-limits"]


def rlimits(limits: Limits, cgroup: Optional[RunCgroup]) -> list[str]:
    """`prlimit --fsize=... --nofile=... [--nproc=...] --` for one program (empty where
    util-linux prlimit is missing); processes by rlimit only where no cgroup counts them
    (an rlimit counts every process of the user, and root is exempt from it)."""
    tool = shutil.which("prlimit")
    if tool is None:
        return []
    argv = [tool]
    if limits.file_size:
        argv.append(f"--fsize={limits.file_size}")
    if limits.open_files:
        argv.append(f"--nofile={limits.open_files}")
    if limits.processes and cgroup is None and os.geteuid() != 0:
        argv.append(f"--nproc={limits.processes + _user_tasks()}")
    return [*argv, "--"] if len(argv) > 1 else []
