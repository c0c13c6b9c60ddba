"""The pure parts of the sandbox: what a program's filesystem view hides and keeps readable,
the order of bubblewrap's mounts (an outer tmpfs must not cover an inner bind), the choice
of sandbox from PAMS_SANDBOX, and the adapter's `[limits]` sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.adapters.adapter import AdapterError, load_adapter, parse_size
from harness.running import sandbox as sb

BWRAP = sb.Sandbox("bwrap", "test", "/usr/bin/bwrap")


def test_view_hides_home_run_dir_and_the_submissions_siblings() -> None:
    view = sb.view_for(
        Path("/runs/r1/p1"), Path("/class/alice"), Path("/runs/r1"), [Path("/opt/python")]
    )
    assert view.own == Path("/runs/r1/p1")
    assert set(view.hidden) == {Path("/runs/r1"), Path.home().resolve(), Path("/class")}
    assert Path("/class/alice") in view.readable and Path("/opt/python") in view.readable


def test_the_parent_stays_visible_when_it_holds_what_the_program_needs() -> None:
    view = sb.view_for(Path("/runs/p1"), Path("/repo/sub"), Path("/runs"), [Path("/repo/sub/x")])
    assert Path("/repo") not in view.hidden  # pams, or the Python, lives there


def test_the_parent_stays_visible_inside_what_the_program_may_read_anyway() -> None:
    view = sb.view_for(
        Path("/runs/p1"), Path("/pams/tests/fixtures/a"), Path("/runs"), [Path("/pams")]
    )
    assert Path("/pams/tests/fixtures") not in view.hidden  # pams's own fixtures


def test_mounts_go_outer_first_so_inner_binds_survive_outer_tmpfs(tmp_path: Path) -> None:
    sub = tmp_path / "class" / "alice"
    sub.mkdir(parents=True)
    own = tmp_path / "runs" / "r" / "p1"
    own.mkdir(parents=True)
    view = sb.View(own, (sub,), (tmp_path / "runs" / "r", tmp_path / "class"))
    argv = sb.inner_argv(BWRAP, view)
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a in ("--tmpfs", "--ro-bind", "--bind")]
    order = {p: mounts.index(p) for p in mounts}
    assert order[str(tmp_path / "class")] < order[str(sub)]  # hidden, then re-shown
    assert order[str(tmp_path / "runs" / "r")] < order[str(own)]
    assert argv[-2:] == ["--chdir", str(own)]
    assert "--die-with-parent" not in argv  # its PDEATHSIG would follow a worker thread


def test_no_bwrap_no_view() -> None:
    view = sb.View(Path("/r/p1"), (), ())
    assert sb.inner_argv(sb.Sandbox("unshare", "x"), view) == []
    assert sb.outer_argv(sb.Sandbox("none", "x")) == []


def test_the_choice_comes_from_pams_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    sb._detect.cache_clear()
    try:
        monkeypatch.setenv(sb.ENV_CHOICE, "sometimes")
        chosen = sb.detect()
        assert chosen.kind == "none" and "sometimes" in chosen.reason
        monkeypatch.setenv(sb.ENV_CHOICE, "none")
        assert sb.detect().reason == "turned off (PAMS_SANDBOX=none)"
        monkeypatch.delenv(sb.ENV_CHOICE)
        assert sb.detect() == sb.detect("auto")  # on by default, where a tool works
    finally:
        sb._detect.cache_clear()


@pytest.mark.parametrize(
    ("text", "size"),
    [("256M", 256 * 2**20), ("2 GiB", 2 * 2**30), ("512k", 512 * 2**10), (0, 0), ("10", 10)],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["lots", "-1M", 1.5, True])
def test_bad_sizes(bad: object) -> None:
    assert parse_size(bad) is None


def test_a_bad_limit_is_one_line_naming_the_field(tmp_path: Path) -> None:
    adapter = tmp_path / "pams.toml"
    adapter.write_text(
        '[coordinator]\ncmd = ["c"]\nconfig = ""\n[participant]\ncmd = ["p"]\nconfig = ""\n'
        '[limits]\nmemory = "lots"\nprocesses = -3\n'
    )
    with pytest.raises(AdapterError) as caught:
        load_adapter(str(adapter))
    message = str(caught.value)
    assert "\n" not in message and "limits.memory: must be a size" in message
    assert "limits.processes" in message


def test_no_cpu_cgroup_without_a_cpu_limit() -> None:
    """A cgroup in the cpu controller is scheduled as one task against every other process:
    under load it starved a run's twenty participants (first commands seconds late, false
    alarms). It is made only when the adapter asks for a CPU limit."""
    import os

    from harness.running import limits as lim

    plain = lim.RunCgroup.create(f"t-{os.urandom(4).hex()}", lim.Limits())
    if plain is None:
        pytest.skip("no cgroup can be made here")
    try:
        assert "cpu" not in plain.dirs and all("cpu" not in str(d) for d in plain.dirs.values())
    finally:
        plain.close()
    capped = lim.RunCgroup.create(f"t-{os.urandom(4).hex()}", lim.Limits(cpu=1.0))
    assert capped is not None
    try:
        assert capped.version == 2 or "cpu" in capped.dirs
    finally:
        capped.close()
