"""`pams init`: write a working adapter for a submission by reading its files (layout, build;
pure) and probing its programs under the harness (probe, infer), then writing each field with
how it was found (writer). `init_submission` is the one entry point; docs/init.md."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from harness.adapters.adapter import AdapterError, load_adapter, render
from harness.adapters.init import build as builds
from harness.adapters.init.infer import Findings, Pace, probe
from harness.adapters.init.layout import LayoutError, choose, read_tree, scan
from harness.adapters.init.probe import Session, python_values
from harness.adapters.init.writer import Sheet
from harness.adapters.init.writer import render as render_sheet

DEFAULT_BUDGET = 60.0
PY_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


class InitError(Exception):
    """`pams init` could not write an adapter; str() is one line, `output` a build's output."""

    def __init__(self, summary: str, output: str = "") -> None:
        super().__init__(summary)
        self.output = output


def init_submission(
    directory: Path,
    output: Optional[Path] = None,
    lang: Optional[str] = None,
    budget: float = DEFAULT_BUDGET,
    coordinator: Optional[str] = None,
    participant: Optional[str] = None,
    force: bool = False,
    say: Optional[Callable[[str], None]] = None,
) -> Path:
    """Inspect and probe the submission in `directory` and write its adapter to `output`
    (default DIRECTORY/pams.toml); return that path. Nothing in `directory` is modified
    (builds and runs happen in a temporary directory); InitError says why it could not."""
    say = say or (lambda _m: None)
    d = Path(directory).resolve()
    if not d.is_dir():
        raise InitError(f"{directory}: not a directory")
    out = Path(output) if output is not None else d / "pams.toml"
    if out.exists() and not force:
        raise InitError(f"{out}: already exists (remove it, give -o FILE, or --force)")
    files = read_tree(d)
    try:
        layout = scan(files, lang)
        coord = choose(layout, "coordinator", coordinator)
        part = choose(layout, "participant", participant)
    except LayoutError as e:
        raise InitError(f"{directory}: {e}") from None
    say(
        f"{layout.lang}; coordinator {coord.name} ({coord.path}), "
        f"participant {part.name} ({part.path})"
    )
    plan = builds.plan(layout, files, coord, part)
    env = dict(PY_ENV) if layout.lang == "python" else {}
    scratch = Path(tempfile.mkdtemp(prefix="pams-init-"))
    started = time.monotonic()
    say(f"time budget {budget:g} s; scratch directory {scratch}")
    try:
        findings, plan = _probe(d, plan, env, layout.lang, scratch, started + budget, say)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    say(f"probing took {time.monotonic() - started:.1f} s of the {budget:g} s budget")
    text = render_sheet(
        _sheet(d, out, layout.lang, plan, env, coord.path, part.path, findings),
        findings,
        time.strftime("%Y-%m-%d"),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    try:
        load_adapter(str(out))
    except AdapterError as e:  # a bug of the writer: say so plainly
        raise InitError(f"the adapter written to {out} does not load: {e}") from None
    return out


def _probe(
    d: Path,
    plan: builds.Plan,
    env: dict[str, str],
    lang: str,
    scratch: Path,
    deadline: float,
    say: Callable[[str], None],
) -> tuple[Findings, builds.Plan]:
    if plan.steps:
        say(f"building ({plan.how}) in {scratch / 'build'}")
        try:
            built = builds.run_build(plan, d, scratch / "build", env)
        except builds.BuildFailed as e:
            raise InitError(f"cannot build the submission: {e}", e.output) from None
        plan, src, outdir = built.plan, str(built.src), str(built.out)
    else:
        src, outdir = str(d), str(scratch / "out")
    values = python_values(d)
    coord = [render(a, values) for a in builds.render(plan.coordinator, src, outdir)]
    part = [render(a, values) for a in builds.render(plan.participant, src, outdir)]
    pace = Pace(startup=15.0, ready=2.0, op=4.0) if lang == "java" else Pace()
    session = Session(scratch / "run", env, values, deadline)
    try:
        findings = probe(coord, part, session, pace, say)
    finally:
        session.close()
    if time.monotonic() > deadline:
        findings.unknown.append("the probe ran out of its time budget (give --budget more seconds)")
    return findings, plan


def _sheet(
    d: Path,
    out: Path,
    lang: str,
    plan: builds.Plan,
    env: dict[str, str],
    coord_path: str,
    part_path: str,
    f: Findings,
) -> Sheet:
    workdir = os.path.relpath(d, out.resolve().parent)
    startup, startup_how = None, ""
    if lang == "java":
        startup, startup_how = 20.0, "JVM start-up on a loaded grading machine"
    elif f.startup > 2.5:
        startup = float(max(10, round(4 * f.startup)))
        startup_how = f"it took {f.startup:.1f} s to listen when probed"
    return Sheet(
        name=d.name,
        workdir=workdir,
        build=builds.adapter_build(plan),
        build_how=plan.how,
        env=env,
        env_how="Python: unbuffered output, no __pycache__ written into the submission",
        coordinator_cmd=builds.adapter_cmd(plan.coordinator),
        coordinator_how=f"{coord_path}: named for the coordinator",
        participant_cmd=builds.adapter_cmd(plan.participant),
        participant_how=f"{part_path}: named for the participant",
        startup=startup,
        startup_how=startup_how,
    )
