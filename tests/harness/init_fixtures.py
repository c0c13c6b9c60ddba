"""The submissions of tests/fixtures/init/SUBMISSIONS.toml, materialized as directories a
student could hand in (coordinator.py and participant.py), for the `pams init` tests."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the py39/py310 tox environments
    import tomli as tomllib

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SPEC = FIXTURES / "init" / "SUBMISSIONS.toml"
SUBMISSIONS: dict[str, dict] = tomllib.loads(SPEC.read_text(encoding="utf-8"))

SHIM = '''"""{role} of the {name} fixture (tests/fixtures/init/SUBMISSIONS.toml)."""
import runpy
import sys

if __name__ == "__main__":
    {argv} = {switches!r}
    {run}
'''

JAVA_SHIM = """// {role} of a pams init fixture: the reference's {role}, started from Java.
public class {cls} {{
    public static void main(String[] args) throws Exception {{
        java.util.List<String> argv = new java.util.ArrayList<>();
        argv.add({python});
        argv.add("-m");
        argv.add("reference.{role}");
        argv.addAll(java.util.Arrays.asList(args));
        Process p = new ProcessBuilder(argv).inheritIO().start();
        System.exit(p.waitFor());
    }}
}}
"""


def _run(program: str, role: str) -> str:
    if program == "reference":
        return f'runpy.run_module("reference.{role}", run_name="__main__", alter_sys=True)'
    path = FIXTURES / program
    run = f'runpy.run_path({str(path)!r}, run_name="__main__")'
    return f"sys.path.insert(0, {str(path.parent)!r})\n    {run}"


def materialize(name: str, into: Path, spec: Optional[dict] = None) -> Path:
    """Write the submission `name` (or one given by `spec`, a table as in SUBMISSIONS.toml)
    into `into/name`; return that directory."""
    spec = spec or SUBMISSIONS[name]
    d = into / name
    d.mkdir(parents=True)
    for role in ("coordinator", "participant"):
        program, *switches = spec[role]
        if program.endswith(".java"):
            shutil.copy(FIXTURES / program, d / Path(program).name)
            continue
        if switches == ["java"]:
            (d / f"{role.capitalize()}.java").write_text(
                JAVA_SHIM.format(
                    cls=role.capitalize(), python=json.dumps(sys.executable), role=role
                )
            )
            continue
        argv = "sys.argv[1:1]"
        if switches[:1] == ["!"]:  # the program's own arguments are ignored
            argv, switches = "sys.argv[1:]", switches[1:]
        text = SHIM.format(
            role=role, name=name, argv=argv, switches=switches, run=_run(program, role)
        )
        (d / f"{role}.py").write_text(text)
    return d


def hand_written(name: str) -> Path:
    return FIXTURES / SUBMISSIONS[name]["adapter"]
