"""How a submission is built and started (`plan`, pure), and running that build once into a
directory of its own (`run_build`), never inside the submission.

Argv elements may hold two tokens: `$SRC` (the sources: the submission, or a copy of it for
build tools that write next to their sources) and `$OUT` (the build output directory). The
probe fills them with its scratch directories; the written adapter with `{workdir}` and
`{workdir}/pams-build`."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Optional

from harness.adapters.init.layout import SKIP_DIRS, Candidate, Layout, java_clashes, role_score

OUT_NAME = "pams-build"  # the written adapter's build output, under its workdir
JAVA = ("java", "-Djava.net.preferIPv4Stack=true")
BUILD_TIMEOUT = 300.0
IN_COPY = ("make", "maven", "gradle")  # tools that write next to the sources


@dataclass(frozen=True)
class Plan:
    """The build steps and the argv prefix of each role (tokens `$SRC`, `$OUT`); `discover`
    says the programs are only known after the build (make, cmake: executables by name)."""

    steps: tuple[tuple[str, ...], ...]
    coordinator: tuple[str, ...]
    participant: tuple[str, ...]
    in_copy: bool = False
    discover: str = ""  # "" or the directory token searched for executables ("$SRC", "$OUT")
    how: str = ""  # one line: what was detected and what the build does


def plan(layout: Layout, files: Mapping[str, str], coord: Candidate, part: Candidate) -> Plan:
    """The build and run plan of a submission whose two programs are `coord` and `part`."""
    system = layout.build_system
    if system == "maven":
        return _jvm(
            ("mvn", "-q", "-DskipTests", "package"),
            "$SRC/target/classes",
            coord,
            part,
            "Maven (pom.xml)",
        )
    if system == "gradle":
        tool = "./gradlew" if "gradlew" in files else "gradle"
        return _jvm((tool, "-q", "classes"), "$SRC/build/classes/java/main", coord, part, "Gradle")
    if system == "cmake":
        steps = (("cmake", "-S", "$SRC", "-B", "$OUT"), ("cmake", "--build", "$OUT"))
        return Plan(steps, (), (), discover="$OUT", how="CMake (CMakeLists.txt), built out of tree")
    if system == "make":
        return Plan((("make",),), (), (), in_copy=True, discover="$SRC", how="Make (Makefile)")
    if layout.lang == "java":
        return _javac(layout, files, coord, part)
    if layout.lang in ("c", "cpp"):
        return _cc(layout, files, coord, part)
    return Plan(
        (),
        ("{python}", f"$SRC/{coord.path}"),
        ("{python}", f"$SRC/{part.path}"),
        how="Python sources, no build",
    )


def _jvm(step: tuple[str, ...], classes: str, coord: Candidate, part: Candidate, how: str) -> Plan:
    return Plan(
        (step,),
        (*JAVA, "-cp", classes, coord.name),
        (*JAVA, "-cp", classes, part.name),
        in_copy=True,
        how=f"{how}; classes in {classes.replace('$SRC/', '')}",
    )


def _javac(layout: Layout, files: Mapping[str, str], coord: Candidate, part: Candidate) -> Plan:
    root = layout.source_root
    clashes = java_clashes(files, layout.sources)
    if not clashes:
        srcs = tuple(f"$SRC/{p}" for p in layout.sources)
        step = ("javac", "-d", "$OUT/classes", "-sourcepath", f"$SRC/{root}", *srcs)
        return Plan(
            (step,),
            (*JAVA, "-cp", "$OUT/classes", coord.name),
            (*JAVA, "-cp", "$OUT/classes", part.name),
            how="plain Java sources, compiled together with javac",
        )
    steps = tuple(
        ("javac", "-d", f"$OUT/{role}", "-sourcepath", f"$SRC/{root}", f"$SRC/{c.path}")
        for role, c in (("coordinator", coord), ("participant", part))
    )
    return Plan(
        steps,
        (*JAVA, "-cp", "$OUT/coordinator", coord.name),
        (*JAVA, "-cp", "$OUT/participant", part.name),
        how=f"plain Java sources; both programs define {', '.join(sorted(clashes))}, so each "
        "is compiled on its own into its own directory",
    )


def _cc(layout: Layout, files: Mapping[str, str], coord: Candidate, part: Candidate) -> Plan:
    main_paths = {c.path for c in layout.mains}
    shared = tuple(
        f"$SRC/{p}" for p in layout.sources if p not in main_paths and not p.endswith(".h")
    )
    cc = ("g++", "-std=c++17") if layout.lang == "cpp" else ("gcc",)
    steps = []
    for c in (coord, part):
        exe = f"$OUT/{PurePosixPath(c.path).stem}"
        steps.append((*cc, "-O2", "-pthread", "-o", exe, f"$SRC/{c.path}", *shared, "-lm"))
    stem = lambda c: f"$OUT/{PurePosixPath(c.path).stem}"  # noqa: E731
    line_buffered = ("stdbuf", "-oL", "-eL") if shutil.which("stdbuf") else ()
    return Plan(
        tuple(steps),
        (*line_buffered, stem(coord)),
        (*line_buffered, stem(part)),
        how=f"{layout.lang.upper()} sources without a build file, compiled with {cc[0]}",
    )


def render(argv: tuple[str, ...], src: str, out: str) -> list[str]:
    """`argv` with `$SRC`/`$OUT` replaced."""
    return [a.replace("$OUT", out).replace("$SRC", src) for a in argv]


def adapter_build(p: Plan) -> list[str]:
    """The `build` field of the written adapter (run in workdir): empty, one argv, or one
    `sh -c` line when there are several steps or an output directory to create."""
    if not p.steps:
        return []
    steps = [render(s, ".", OUT_NAME) for s in p.steps]
    steps = [
        [a[2:] if a.startswith("./") and len(a) > 2 and i else a for i, a in enumerate(s)]
        for s in steps
    ]
    uses_out = any(OUT_NAME in a for s in steps for a in s)
    if len(steps) == 1 and not uses_out:
        return steps[0]
    script = "; ".join(shlex.join(s) for s in steps)
    return [
        "sh",
        "-c",
        f"set -e; mkdir -p {OUT_NAME}; {script}" if uses_out else f"set -e; {script}",
    ]


def adapter_cmd(prefix: tuple[str, ...]) -> list[str]:
    """A role's argv prefix as the written adapter says it."""
    return render(prefix, "{workdir}", "{workdir}/" + OUT_NAME)


@dataclass(frozen=True)
class Built:
    """Where a build ran: the sources it used (`src`, a copy for IN_COPY tools), its output
    directory, and the plan with the programs filled in once they are known."""

    src: Path
    out: Path
    plan: Plan
    output: str


class BuildFailed(Exception):
    """The build did not succeed; str() is one line, `output` the tail of its output."""

    def __init__(self, summary: str, output: str) -> None:
        super().__init__(summary)
        self.output = output


def run_build(
    p: Plan, submission: Path, scratch: Path, env: Optional[Mapping[str, str]] = None
) -> Built:
    """Run the plan's steps once with `$OUT` = scratch/out (and `$SRC` = a copy under scratch
    for IN_COPY tools): nothing is written into `submission`."""
    out = scratch / "out"
    out.mkdir(parents=True, exist_ok=True)
    src = submission
    if p.in_copy:
        src = scratch / "src"
        shutil.copytree(
            submission, src, symlinks=True, ignore=shutil.ignore_patterns(*SKIP_DIRS - {"bin"})
        )
    before = _executables(src) if p.discover == "$SRC" else set()
    log: list[str] = []
    for step in p.steps:
        argv = render(step, str(src), str(out))
        log.append("$ " + shlex.join(argv))
        log.append(_run_step(argv, src, env))
    output = "\n".join(log)
    if p.discover:
        where = out if p.discover == "$OUT" else src
        found = sorted(_executables(where) - before)
        p = _discovered(p, where, found, "$OUT" if p.discover == "$OUT" else "$SRC")
    return Built(src, out, p, output)


def _run_step(argv: list[str], cwd: Path, env: Optional[Mapping[str, str]]) -> str:
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        raise BuildFailed(f"build step {argv[0]}: program not found ({e.strerror})", "") from None
    try:
        text, _ = proc.communicate(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BuildFailed(
            f"build timed out after {BUILD_TIMEOUT:.0f} s: {shlex.join(argv)}", ""
        ) from None
    output = text.decode("utf-8", errors="replace")[-65536:]
    if proc.returncode != 0:
        raise BuildFailed(f"build failed (exit {proc.returncode}): {shlex.join(argv)}", output)
    return output


def _executables(root: Path) -> set[str]:
    found = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part in ("CMakeFiles",) or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and os.access(path, os.X_OK) and path.suffix in ("", ".out", ".exe"):
            found.add(rel.as_posix())
    return found


def _discovered(p: Plan, where: Path, found: list[str], token: str) -> Plan:
    """The plan with each role's program taken from the executables the build produced."""
    progs = tuple(Candidate(name, name, 0) for name in found)
    chosen = {}
    for role in ("coordinator", "participant"):
        scored = sorted(((role_score(role, c, ""), c.path) for c in progs), reverse=True)
        if not scored or scored[0][0] == 0 or (len(scored) > 1 and scored[1][0] == scored[0][0]):
            names = ", ".join(found) or "none"
            raise BuildFailed(
                f"the build made no program that is clearly the {role} (executables: {names})", ""
            )
        chosen[role] = scored[0][1]
    line_buffered = ("stdbuf", "-oL", "-eL") if shutil.which("stdbuf") else ()
    return replace(
        p,
        coordinator=(*line_buffered, f"{token}/{chosen['coordinator']}"),
        participant=(*line_buffered, f"{token}/{chosen['participant']}"),
        discover="",
    )
