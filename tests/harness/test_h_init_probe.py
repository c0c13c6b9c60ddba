"""`pams init` end to end on real processes: it infers every quirk of the alternative
implementation at once (config formats and path on stdin, a fixed coordinator port,
capitalised words, 4-digit ports, exit on deregister, its prompt), agrees with the hand-written
adapters of a few quirk fixtures where they must agree, grades the same on a scenario, never
touches the submission's files, lists candidates and reports build errors plainly (exit 2),
and builds clashing Java programs apart. The full fixture matrix is tests/test_h_init_matrix.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from harness.adapters.adapter import Adapter, load_adapter
from harness.adapters.init import InitError, init_submission
from harness.adapters.init import build as builds
from harness.adapters.init.layout import choose, read_tree, scan
from harness.reports.battery import run_one
from tests.harness.init_fixtures import FIXTURES, hand_written, materialize
from tests.procutil import REPO

pytestmark = [pytest.mark.process, pytest.mark.timeout(180)]

EVERYTHING = {
    # it ignores its arguments and asks for its config file name on stdin
    "coordinator": ["altimpl/coordinator.py", "!", "--kv-config", "--config-from-stdin"],
    "participant": [
        "altimpl/participant.py",
        "--caps-commands",
        "--four-digit-ports",
        "--exit-on-deregister",
        "--config-from-stdin",
        "--kv-config",
    ],
}
COMPARED = ("alt-caps", "ok-liar")  # inferred vs hand-written


def tree_hash(root: Path) -> str:
    """A digest of every path, mode and content under `root`."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        h.update(f"{path.relative_to(root)}\0{st.st_mode}\0".encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def inferred(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, str]]:
    """(submission, adapter, CLI output) per fixture; the `everything` one through the CLI
    with --check, the others through init_submission; three at a time."""
    root = tmp_path_factory.mktemp("init")
    with socket.socket() as sock:  # a port of its own: alt-fixed-port's 4747 may be busy
        sock.bind(("127.0.0.1", 0))
        fixed = sock.getsockname()[1]
    spec = {**EVERYTHING, "coordinator": [*EVERYTHING["coordinator"], "--fixed-port", str(fixed)]}

    def cli(name: str) -> tuple[Path, Path, str]:
        d = materialize(name, root / "subs", spec)
        before = tree_hash(d)
        out = root / "adapters" / f"{name}.toml"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        argv = [sys.executable, "-m", "harness.cli", "init", str(d), "-o", str(out), "--check"]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=150)
        assert tree_hash(d) == before, "pams init changed the submission's files"
        return d, out, f"exit {proc.returncode} port {fixed}\n{proc.stdout}{proc.stderr}"

    def api(name: str) -> tuple[Path, Path, str]:
        d = materialize(name, root / "subs")
        before = tree_hash(d)
        out = init_submission(d, root / "adapters" / f"{name}.toml", budget=60)
        assert tree_hash(d) == before, "pams init changed the submission's files"
        return d, out, ""

    with ThreadPoolExecutor(3) as pool:
        jobs = {"everything": pool.submit(cli, "everything")}
        jobs.update({n: pool.submit(api, n) for n in COMPARED})
        return {n: f.result() for n, f in jobs.items()}


def test_every_quirk_at_once_is_inferred_and_the_check_passes(inferred: dict) -> None:
    _, path, output = inferred["everything"]
    head, _ = output.split("\n", 1)
    assert head.startswith("exit 0 "), output
    assert "coordinator, config lines PORT, TD; its path as the only argument: asks for" in output
    assert "time budget 60 s" in output and "check: the smoke schedule PASSES" in output, output
    a = load_adapter(str(path))
    assert a.coordinator.config == "port={port}\ntd={td}\n"
    assert a.coordinator.port == int(head.split()[-1])
    assert a.coordinator.stdin_preamble == ("{config_name}",) == a.participant.stdin_preamble
    assert "{config}" not in a.coordinator.cmd and "{config}" not in a.participant.cmd
    assert a.participant.config.startswith("id={id}\nlog={log}\ncoordinator=")
    assert (a.commands.register, a.commands.msend) == ("Register {port}", "Multicast {message}")
    assert (a.commands.disconnect, a.commands.reconnect) == ("Disconnect", "Reconnect {port}")
    assert a.commands.deregister == "Deregister"
    assert 1000 <= a.ports[0] <= a.ports[1] <= 9999
    assert a.participant.exit_on_deregister and a.participant.restart_on_exit
    assert a.commands.prompt_pattern and a.commands.done_pattern == ""
    text = path.read_text()
    assert "Could not infer" not in text, text
    assert "# it exited (status 0) right after a deregister" in text


def test_nothing_is_left_running(inferred: dict) -> None:
    """No program of the probed submissions runs once init returned (they are started by
    their path under the submission's directory)."""
    mine = {str(d) for d, _, _ in inferred.values()}
    left = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(d in " ".join(proc.info["cmdline"] or ()) for d in mine):
                left.append(proc.info["cmdline"])
    assert left == []


def same_fields(hand: Adapter, mine: Adapter) -> None:
    for op in ("register", "deregister", "disconnect", "reconnect", "msend"):
        assert getattr(mine.commands, op) == getattr(hand.commands, op), op
    assert mine.coordinator.config == hand.coordinator.config
    assert mine.coordinator.port == hand.coordinator.port
    assert mine.participant.stdin_preamble == hand.participant.stdin_preamble
    assert mine.participant.exit_on_deregister == hand.participant.exit_on_deregister


@pytest.mark.parametrize("name", COMPARED)
def test_inferred_fields_agree_with_the_hand_written_adapter(inferred: dict, name: str) -> None:
    hand = load_adapter(str(hand_written(name)))
    mine = load_adapter(str(inferred[name][1]))
    same_fields(hand, mine)
    assert bool(mine.commands.done_pattern) == (name == "ok-liar")  # reference-like answers


def test_inferred_adapter_grades_like_the_hand_written_one(inferred: dict, tmp_path: Path) -> None:
    def grade(side: str) -> tuple[str, frozenset[str]]:
        path = hand_written("ok-liar") if side == "hand" else inferred["ok-liar"][1]
        o = run_one(load_adapter(str(path)), "online-multicast", tmp_path / side)
        return o.status, frozenset(r for r, s in o.rules.items() if s not in ("pass", "n/a"))

    with ThreadPoolExecutor(2) as pool:
        hand, mine = pool.map(grade, ("hand", "mine"))
    assert hand == mine
    assert mine[0] == "fail" and {"acknowledged", "no-miss"} <= mine[1]


def cli_init(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "harness.cli", "init", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def test_candidates_are_listed_with_exit_2_when_none_stands_out(tmp_path: Path) -> None:
    for name in ("ServerA", "ServerB", "Participant"):
        (tmp_path / f"{name}.java").write_text(
            f"public class {name} {{ public static void main(String[] a) {{ }} }}\n"
        )
    proc = cli_init(str(tmp_path), "-q")
    assert proc.returncode == 2
    assert "cannot tell which program is the coordinator" in proc.stderr
    assert "ServerA (ServerA.java), ServerB (ServerB.java)" in proc.stderr
    assert not (tmp_path / "pams.toml").exists()


def test_a_build_error_is_reported_plainly(tmp_path: Path) -> None:
    (tmp_path / "coordinator.c").write_text("int main(void) { return 0 }\n")
    (tmp_path / "participant.c").write_text("int main(void) { return 0; }\n")
    before = tree_hash(tmp_path)
    proc = cli_init(str(tmp_path), "-q")
    assert proc.returncode == 2, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("pams init: cannot build the submission: build failed (exit 1): gcc")
    assert "coordinator.c:1" in proc.stderr and "error" in proc.stderr  # the compiler's words
    assert tree_hash(tmp_path) == before


def test_an_existing_adapter_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "pams.toml").write_text("# mine\n")
    with pytest.raises(InitError, match="already exists"):
        init_submission(tmp_path)
    assert (tmp_path / "pams.toml").read_text() == "# mine\n"


def test_clashing_java_programs_are_compiled_apart(tmp_path: Path) -> None:
    src = FIXTURES / "init" / "java-clash"
    before = tree_hash(src)
    files = read_tree(src)
    layout = scan(files)
    c, p = choose(layout, "coordinator"), choose(layout, "participant")
    built = builds.run_build(builds.plan(layout, files, c, p), src, tmp_path)
    assert tree_hash(src) == before
    for role, main in (("coordinator", "Coordinator"), ("participant", "Participant")):
        classes = {x.name for x in (built.out / role).iterdir()}
        assert {f"{main}.class", "Message.class"} <= classes, classes
    argv = builds.render(built.plan.participant, str(built.src), str(built.out))
    run = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert run.stdout.strip() == "2"  # its own Message, not the coordinator's
