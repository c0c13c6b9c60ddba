"""Adapter files (harness/adapters/adapter.py, docs/adapter.md): loading, defaults, one-line
validation errors, placeholder rendering, the build step, and the bundled and documented
adapters."""

from __future__ import annotations

import os
import queue
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.adapters.adapter import (
    PLACEHOLDERS,
    Adapter,
    AdapterError,
    BuildError,
    ClockSpec,
    Commands,
    CoordinatorSpec,
    ParticipantSpec,
    ProxySpec,
    Timing,
    build,
    format_td,
    load_adapter,
    render,
)
from tests.procutil import REPO, Proc, ProcessGroup, free_port, port_accepts, wait_until

pytestmark = pytest.mark.timeout(30)

MINIMAL = """\
[coordinator]
cmd = ["./coord", "{config}"]
config = "{port}\\n{td}\\n"
[participant]
cmd = ["./part", "{config}"]
config = "{id}\\n{log}\\n{coordinator_host}:{coordinator_port}\\n"
"""
EXAMPLES = REPO / "docs" / "examples"


def write(tmp_path: Path, text: str, name: str = "impl.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(path: Path) -> str:
    with pytest.raises(AdapterError) as info:
        load_adapter(str(path))
    message = str(info.value)
    assert "\n" not in message
    return message


# --- the bundled adapter and the defaults ------------------------------------------------------
def test_bundled_reference_adapter_has_the_spec_defaults() -> None:
    adapter = load_adapter("reference")
    assert adapter.name == "reference"
    assert adapter.build == ()
    assert adapter.ports == (20000, 60999)
    assert adapter.coordinator == CoordinatorSpec(
        cmd=("{python}", "-m", "reference.coordinator", "{config}"),
        config="{port}\n{td}\n",
        port=0,
        stdin_preamble=(),
    )
    assert adapter.participant == ParticipantSpec(
        cmd=("{python}", "-m", "reference.participant", "{config}"),
        config="{id}\n{log}\n{coordinator_host} {coordinator_port}\n",
        stdin_preamble=(),
        restart_on_exit=True,
    )
    assert adapter.commands == Commands(done_pattern="^(ok|error) ")
    assert (adapter.clock, adapter.timing, adapter.proxy) == (ClockSpec(), Timing(), ProxySpec())
    assert adapter.commands.done_re is not None
    assert adapter.commands.done_re.search("ok register")
    assert adapter.commands.done_re.search("error msend: not registered")
    assert not adapter.commands.done_re.search("participant: delivery channel dropped")


def test_bundled_workdir_is_where_the_reference_package_is_imported_from() -> None:
    import reference

    adapter = load_adapter("reference")
    assert adapter.workdir.is_absolute()
    assert adapter.workdir == Path(reference.__file__).resolve().parent.parent
    assert adapter.env_dict()["PYTHONPATH"] == str(adapter.workdir)


def test_bundled_env_makes_reference_importable_without_the_install(tmp_path: Path) -> None:
    # -S skips site-packages (and with it the editable-install finder): only the adapter's
    # PYTHONPATH can make the reference importable from an unrelated working directory.
    env = {"PATH": os.environ.get("PATH", ""), **load_adapter("reference").env_dict()}
    code = "import reference.coordinator, reference.participant, sys; print(sys.flags.no_site)"
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert (result.returncode, result.stdout.strip()) == (0, "1"), result.stderr
    bare = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=tmp_path, env={"PATH": env["PATH"]}
    )
    assert bare.returncode != 0  # the check above is not vacuous


def test_minimal_adapter_gets_every_default(tmp_path: Path) -> None:
    adapter = load_adapter(str(write(tmp_path, MINIMAL)))
    assert adapter.name == "impl"
    assert adapter.path == (tmp_path / "impl.toml").resolve()
    assert adapter.workdir == tmp_path.resolve()
    assert (adapter.build, adapter.env, adapter.ports) == ((), (), (20000, 60999))
    assert adapter.coordinator == CoordinatorSpec(("./coord", "{config}"), "{port}\n{td}\n", 0, ())
    assert adapter.participant.stdin_preamble == ()
    assert adapter.participant.restart_on_exit is True
    assert adapter.commands == Commands(
        register="register {port}",
        deregister="deregister",
        disconnect="disconnect",
        reconnect="reconnect {port}",
        msend="msend {message}",
        done_pattern="",
        min_gap=0.0,
    )
    assert adapter.commands.done_re is None
    assert adapter.clock.fake_monotonic is False
    assert (adapter.timing.startup, adapter.timing.op_timeout) == (10.0, 5.0)
    assert adapter.proxy.rewrite_ports is True
    assert adapter.serialized is False
    assert adapter.describe() == {
        "name": "impl",
        "path": str(adapter.path),
        "workdir": str(adapter.workdir),
    }


def test_every_field_is_read(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    text = """\
name = "alice"
workdir = "src"
build = ["make", "-j2"]
env = {A = "1", B = "{workdir}/lib"}
ports = [1024, 9999]
[coordinator]
cmd = ["./coord"]
config = "port={port}"
port = 5000
stdin_preamble = ["{config_name}"]
[participant]
cmd = ["./part"]
config = "id={id}"
stdin_preamble = ["{config_name}", ""]
restart_on_exit = false
[commands]
register = "Register {port}"
deregister = "Deregister"
disconnect = "Disconnect"
reconnect = "Reconnect {port}"
msend = "Multicast\\n{message}"
done_pattern = "^> "
min_gap = 1
[clock]
fake_monotonic = true
[timing]
startup = 30
op_timeout = 2.5
[proxy]
rewrite_ports = false
"""
    adapter = load_adapter(str(write(tmp_path, text)))
    assert adapter.name == "alice"
    assert adapter.workdir == (tmp_path / "src").resolve()
    assert adapter.build == ("make", "-j2")
    assert adapter.env_dict() == {"A": "1", "B": f"{(tmp_path / 'src').resolve()}/lib"}
    assert adapter.ports == (1024, 9999)
    assert adapter.coordinator == CoordinatorSpec(
        ("./coord",), "port={port}", 5000, ("{config_name}",)
    )
    assert adapter.serialized is True
    assert adapter.participant == ParticipantSpec(
        ("./part",), "id={id}", ("{config_name}", ""), False
    )
    assert adapter.commands.msend == "Multicast\n{message}"
    assert adapter.commands.min_gap == 1.0 and isinstance(adapter.commands.min_gap, float)
    assert adapter.clock.fake_monotonic is True
    assert adapter.timing == Timing(30.0, 2.5)
    assert adapter.proxy.rewrite_ports is False


@pytest.mark.parametrize("filename", ["pams.toml", "adapter.toml"])
def test_a_directory_holding_the_adapter_is_accepted(tmp_path: Path, filename: str) -> None:
    impl = tmp_path / "alice-impl"
    impl.mkdir()
    write(impl, MINIMAL, filename)
    adapter = load_adapter(str(impl))
    assert adapter.path == (impl / filename).resolve()
    assert adapter.name == "alice-impl"


# --- validation: one line, naming the file and the key ----------------------------------------
def _replace(old: str, new: str) -> str:
    assert old in MINIMAL
    return MINIMAL.replace(old, new)


BAD = [
    ("nmae = 'x'\n" + MINIMAL, "nmae", "unknown key (did you mean 'name'?)"),
    ("colour = 1\n" + MINIMAL, "colour", "unknown key"),
    ("register = 'x'\n" + MINIMAL, "register", "unknown key (register belongs in [commands])"),
    (
        MINIMAL + "[commands]\nregistr = 'r {port}'\n",
        "commands.registr",
        "unknown key (did you mean 'register'?)",
    ),
    (
        MINIMAL + "prot = 3\n",
        "participant.prot",
        "unknown key (did you mean 'port' in [coordinator]?)",
    ),
    (
        _replace("[participant]", "prot = 3\n[participant]"),
        "coordinator.prot",
        "unknown key (did you mean 'port'?)",
    ),
    (
        MINIMAL + "done_pattern = 'x'\n",
        "participant.done_pattern",
        "unknown key (done_pattern belongs in [commands])",
    ),
    (
        MINIMAL + "name = 'x'\n",
        "participant.name",
        "unknown key (name belongs in the top level, before any [table])",
    ),
    (MINIMAL + "[commandz]\n", "commandz", "unknown key (did you mean 'commands'?)"),
    ("clock = 3\n" + MINIMAL, "clock", "must be a table ([clock])"),
    (_replace('cmd = ["./coord", "{config}"]\n', ""), "coordinator.cmd", "required key missing"),
    (_replace('config = "{port}\\n{td}\\n"\n', ""), "coordinator.config", "required key missing"),
    (_replace('cmd = ["./part", "{config}"]\n', ""), "participant.cmd", "required key missing"),
    (MINIMAL.split("[participant]")[0], "participant.cmd", "required key missing"),
    (
        _replace('config = "{id}\\n{log}\\n{coordinator_host}:{coordinator_port}\\n"\n', ""),
        "participant.config",
        "required key missing",
    ),
    (
        _replace('["./part", "{config}"]', '"./part {config}"'),
        "participant.cmd",
        'must be a non-empty list of strings, the program first (e.g. ["java", "X"])',
    ),
    (
        _replace('["./part", "{config}"]', "[]"),
        "participant.cmd",
        'must be a non-empty list of strings, the program first (e.g. ["java", "X"])',
    ),
    (
        _replace('["./part", "{config}"]', '["./part", 3]'),
        "participant.cmd",
        'must be a non-empty list of strings, the program first (e.g. ["java", "X"])',
    ),
    (
        _replace('["./part", "{config}"]', '["", "x"]'),
        "participant.cmd",
        'must be a non-empty list of strings, the program first (e.g. ["java", "X"])',
    ),
    (
        _replace('config = "{port}\\n{td}\\n"', "config = 5"),
        "coordinator.config",
        "must be a string",
    ),
    (
        "ports = [9999, 1024]\n" + MINIMAL,
        "ports",
        "must be two integers [lo, hi] with 1 <= lo <= hi <= 65535",
    ),
    (
        "ports = [0, 1024]\n" + MINIMAL,
        "ports",
        "must be two integers [lo, hi] with 1 <= lo <= hi <= 65535",
    ),
    (
        "ports = [1024, 70000]\n" + MINIMAL,
        "ports",
        "must be two integers [lo, hi] with 1 <= lo <= hi <= 65535",
    ),
    (
        "ports = [1024]\n" + MINIMAL,
        "ports",
        "must be two integers [lo, hi] with 1 <= lo <= hi <= 65535",
    ),
    (
        "ports = [1024.0, 2000]\n" + MINIMAL,
        "ports",
        "must be two integers [lo, hi] with 1 <= lo <= hi <= 65535",
    ),
    (
        _replace("[participant]", "port = 70000\n[participant]"),
        "coordinator.port",
        "must be an integer 1-65535, or 0 for none",
    ),
    (
        _replace("[participant]", "port = true\n[participant]"),
        "coordinator.port",
        "must be an integer 1-65535, or 0 for none",
    ),
    (
        MINIMAL + "[timing]\nop_timeout = 0\n",
        "timing.op_timeout",
        "must be a positive number of seconds",
    ),
    (
        MINIMAL + "[timing]\nstartup = '10'\n",
        "timing.startup",
        "must be a positive number of seconds",
    ),
    (
        MINIMAL + "[timing]\nstartup = nan\n",
        "timing.startup",
        "must be a positive number of seconds",
    ),
    (
        MINIMAL + "[commands]\nmin_gap = -0.5\n",
        "commands.min_gap",
        "must be a number of seconds >= 0",
    ),
    (MINIMAL + "restart_on_exit = 'yes'\n", "participant.restart_on_exit", "must be true or false"),
    (MINIMAL + "[clock]\nfake_monotonic = 1\n", "clock.fake_monotonic", "must be true or false"),
    (MINIMAL + "[proxy]\nrewrite_ports = 'no'\n", "proxy.rewrite_ports", "must be true or false"),
    (
        "env = {A = 1}\n" + MINIMAL,
        "env",
        'must be a table of strings (e.g. env = {JAVA_HOME = "/opt/jdk"})',
    ),
    (
        "env = ['A=1']\n" + MINIMAL,
        "env",
        'must be a table of strings (e.g. env = {JAVA_HOME = "/opt/jdk"})',
    ),
    ("env = {'A=B' = '1'}\n" + MINIMAL, "env", "'A=B' is not an environment variable name"),
    ("name = ' '\n" + MINIMAL, "name", "must be a non-empty string"),
    ("build = 'make'\n" + MINIMAL, "build", "must be a list of strings"),
    (MINIMAL + "[commands]\nmsend = ''\n", "commands.msend", "must be a non-empty string"),
    (
        MINIMAL + "[commands]\ndone_pattern = '(ok'\n",
        "commands.done_pattern",
        "invalid regular expression: missing ), unterminated subpattern at position 0",
    ),
    (
        _replace('"./part", "{config}"', '"./part", "{confg}"'),
        "participant.cmd[1]",
        "unknown placeholder {confg} (did you mean {config}?)",
    ),
    (
        _replace("{coordinator_port}", "{coordinator_prot}"),
        "participant.config",
        "unknown placeholder {coordinator_prot} (did you mean {coordinator_port}?)",
    ),
    (_replace('"./coord"', '"{bogus}"'), "coordinator.cmd[0]", "unknown placeholder {bogus}"),
    (
        MINIMAL + "[commands]\nregister = 'register {message}'\n",
        "commands.register",
        "placeholder {message} has no value in this field (available: {config}, {config_name}, "
        "{coordinator_host}, {coordinator_port}, {coordinator_port2}, {id}, {log}, {log_name}, "
        "{port}, {port2}, {python}, {td}, {workdir})",
    ),
    (
        _replace('"./part", "{config}"', '"./part", "{port}"'),
        "participant.cmd[1]",
        "placeholder {port} has no value in this field (available: {config}, {config_name}, "
        "{coordinator_host}, {coordinator_port}, {coordinator_port2}, {id}, {log}, {log_name}, "
        "{port2}, {python}, {td}, {workdir})",
    ),
    (
        _replace('"{port}\\n{td}\\n"', '"{port}\\n{td}\\n{id}"'),
        "coordinator.config",
        "placeholder {id} has no value in this field (available: {config}, {config_name}, "
        "{coordinator_host}, {coordinator_port}, {coordinator_port2}, {port}, {port2}, {python}, "
        "{td}, {workdir})",
    ),
    (
        "build = ['make', 'TD={td}']\n" + MINIMAL,
        "build[1]",
        "placeholder {td} has no value in this field (available: {python}, {workdir})",
    ),
    (
        "env = {X = '{config}'}\n" + MINIMAL,
        "env.X",
        "placeholder {config} has no value in this field (available: {python}, {workdir})",
    ),
    (
        _replace('"{port}\\n{td}\\n"', '"{port\\n"'),
        "coordinator.config",
        "unbalanced brace (expected '}' before end of string); write {{ or }} for a literal one",
    ),
    (
        _replace('"./part", "{config}"', '"./part", "}x"'),
        "participant.cmd[1]",
        "unbalanced brace (Single '}' encountered in format string); "
        "write {{ or }} for a literal one",
    ),
    (
        _replace('"./part", "{config}"', '"./part", "{}"'),
        "participant.cmd[1]",
        "placeholder {} is not a plain {name}; write {{ or }} for a literal brace",
    ),
    (
        _replace('"./part", "{config}"', '"./part", "{config:>9}"'),
        "participant.cmd[1]",
        "placeholder {config:>9} is not a plain {name}; write {{ or }} for a literal brace",
    ),
    (
        _replace('"./part", "{config}"', '"./part", "{config!r}"'),
        "participant.cmd[1]",
        "placeholder {config!r} is not a plain {name}; write {{ or }} for a literal brace",
    ),
    (
        _replace('"./part", "{config}"', '"./part", "{config.x}"'),
        "participant.cmd[1]",
        "placeholder {config.x} is not a plain {name}; write {{ or }} for a literal brace",
    ),
    ("workdir = 'nowhere'\n" + MINIMAL, "workdir", "no such directory: {tmp}/nowhere"),
]


@pytest.mark.parametrize(
    ("text", "key", "reason"), BAD, ids=[f"{i}-{key}" for i, (_, key, _) in enumerate(BAD)]
)
def test_each_mistake_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = write(tmp_path, text)
    expected = reason.replace("{tmp}", str(tmp_path.resolve()))
    first = load_error(path).split(" (and ")[0]  # the first mistake; any others follow it
    assert first == f"{path}: {key}: {expected}"


def test_the_available_placeholder_table_covers_every_templated_field() -> None:
    commands = {f"commands.{f}" for f in ("register", "deregister", "disconnect", "reconnect")}
    fields = {f"{k}.{f}" for k in ("coordinator", "participant") for f in ("cmd", "config")}
    assert set(PLACEHOLDERS) >= commands | fields | {"commands.msend", "build", "env"}
    assert "message" in PLACEHOLDERS["commands.msend"]
    assert (
        "port" in PLACEHOLDERS["commands.register"] and "port" in PLACEHOLDERS["commands.reconnect"]
    )
    assert "port" not in PLACEHOLDERS["participant.cmd"]


def test_missing_file_names_the_accepted_forms(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert load_error(missing) == (
        f"{missing}: adapter file not found (give 'reference', a TOML file, "
        "or a directory containing pams.toml or adapter.toml)"
    )


def test_directory_without_an_adapter_file(tmp_path: Path) -> None:
    assert load_error(tmp_path) == f"{tmp_path}: no pams.toml or adapter.toml in this directory"


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[commands]\nregister = register {port}\n")
    message = load_error(path)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 8" in message and "column" in message


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(MINIMAL.encode() + b"# caf\xe9\n")
    assert load_error(path) == f"{path}: not UTF-8 text (byte {len(MINIMAL) + 5})"
    if os.geteuid() != 0:  # root reads anything
        locked = write(tmp_path, MINIMAL, "locked.toml")
        locked.chmod(0)
        assert load_error(locked) == f"{locked}: cannot read adapter file: Permission denied"


# --- rendering ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("td", "text"), [(2.0, "2"), (2, "2"), (0.0, "0"), (2.5, "2.5"), (0.1, "0.1"), (120.0, "120")]
)
def test_format_td_is_an_integer_unless_fractional(td: float, text: str) -> None:
    assert format_td(td) == text


def test_render_substitutes_and_keeps_escaped_braces() -> None:
    values = {"id": "3", "td": 2.0, "port": 41001, "message": "M00000001"}
    assert render("{id}\n{td}\n", values) == "3\n2\n"
    assert render("{{id}} {id} {{{id}}}", values) == "{id} 3 {3}"
    assert render("td={td}", {"td": 2.5}) == "td=2.5"
    assert render('{{"port": {port}}}', values) == '{"port": 41001}'
    assert render("no placeholders", {}) == "no placeholders"


@given(st.text())
def test_escaped_text_renders_back_to_itself(text: str) -> None:
    assert render(text.replace("{", "{{").replace("}", "}}"), {}) == text


def test_render_reports_a_missing_or_unset_value() -> None:
    with pytest.raises(
        AdapterError, match=r"^template 'x {port}': no value for placeholder \{port\}$"
    ):
        render("x {port}", {"id": "1"})
    with pytest.raises(AdapterError, match=r"^here: no value for placeholder \{port2\}$"):
        render("{port2}", {"port2": None}, "here")
    with pytest.raises(AdapterError, match="unbalanced brace"):
        render("{", {})


def test_adapter_renders_argv_config_preamble_and_commands(tmp_path: Path) -> None:
    text = MINIMAL.replace('cmd = ["./part", "{config}"]', 'cmd = ["{workdir}/part"]') + (
        'stdin_preamble = ["{config_name}"]\n[commands]\nmsend = "Multicast\\n{message}"\n'
    )
    adapter = load_adapter(str(write(tmp_path, text)))
    run = tmp_path / "run" / "p1"
    values = {
        "td": 3.0, "coordinator_host": "127.0.0.1", "coordinator_port": 41000, "port2": 41009,
        "config": str(run / "p1.conf"), "config_name": "p1.conf", "id": "1",
        "log": str(run / "p1.log"), "log_name": "p1.log",
    }  # fmt: skip
    assert adapter.participant_argv(values) == [f"{tmp_path.resolve()}/part"]
    assert adapter.participant_config(values) == f"1\n{run}/p1.log\n127.0.0.1:41000\n"
    assert adapter.preamble("participant", values) == ["p1.conf"]
    assert adapter.preamble("coordinator", values) == []
    assert adapter.command_line("register", {**values, "port": 41005}) == "register 41005"
    assert adapter.command_line("msend", {**values, "message": "M1"}) == "Multicast\nM1"
    assert adapter.command_line("disconnect", values) == "disconnect"
    coordinator = {**values, "port": 41000, "config": str(run / "c.conf"), "config_name": "c.conf"}
    assert adapter.coordinator_argv(coordinator) == ["./coord", f"{run}/c.conf"]
    assert adapter.coordinator_config(coordinator) == "41000\n3\n"
    with pytest.raises(AdapterError) as info:
        adapter.command_line("register", values)
    assert str(info.value) == (
        f"{adapter.path}: commands.register: no value for placeholder {{port}}"
    )
    with pytest.raises(ValueError, match="unknown operation 'quit'"):
        adapter.command_line("quit", values)


def test_python_placeholder_is_the_harness_interpreter(tmp_path: Path) -> None:
    adapter = load_adapter("reference")
    argv = adapter.coordinator_argv({"config": "/x/c.conf"})
    assert argv == [sys.executable, "-m", "reference.coordinator", "/x/c.conf"]


# --- the reference adapter drives the real reference ------------------------------------------
def _spawn(group: ProcessGroup, argv: list[str], cwd: Path, env: dict[str, str], name: str) -> Proc:
    popen = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc = Proc(popen, name)
    group.procs.append(proc)
    return proc


def _lines(stream: IO[bytes]) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for raw in iter(stream.readline, b""):
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _until_done(adapter: Adapter, lines: queue.Queue, timeout: float = 12.0) -> str:
    done = adapter.commands.done_re
    assert done is not None
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        if done.search(line):
            return line


@pytest.mark.process
def test_reference_adapter_runs_the_reference_from_its_own_directory(
    tmp_path: Path, procs: ProcessGroup
) -> None:
    adapter = load_adapter("reference")
    env = adapter.env_dict()
    cdir, pdir = tmp_path / "coordinator", tmp_path / "p1"
    cdir.mkdir()
    pdir.mkdir()
    cport, bport = free_port(), free_port()
    common = {"td": 2.0, "coordinator_host": "127.0.0.1", "coordinator_port": cport}
    cvalues = {**common, "port": cport, "config": str(cdir / "c.conf"), "config_name": "c.conf"}
    (cdir / "c.conf").write_text(adapter.coordinator_config(cvalues))
    coordinator = _spawn(procs, adapter.coordinator_argv(cvalues), cdir, env, "coordinator")
    wait_until(
        lambda: port_accepts(cport) or coordinator.popen.poll() is not None, 10, "coordinator"
    )
    assert coordinator.popen.poll() is None

    log = pdir / "p1.log"
    pvalues = {**common, "id": "1", "config": str(pdir / "p1.conf"), "config_name": "p1.conf",
               "log": str(log), "log_name": "p1.log"}  # fmt: skip
    (pdir / "p1.conf").write_text(adapter.participant_config(pvalues))
    participant = _spawn(procs, adapter.participant_argv(pvalues), pdir, env, "p1")
    assert participant.popen.stdin is not None and participant.popen.stdout is not None
    lines = _lines(participant.popen.stdout)

    def command(f: str, **extra: object) -> str:
        text = adapter.command_line(f, {**pvalues, **extra})
        participant.popen.stdin.write(text.encode() + b"\n")  # type: ignore[union-attr]
        participant.popen.stdin.flush()  # type: ignore[union-attr]
        return _until_done(adapter, lines)

    assert command("register", port=bport) == "ok register"
    assert command("msend", message="M00000001").startswith("ok msend")
    wait_until(lambda: log.exists() and "M00000001" in log.read_text(), 5, "delivery")
    assert command("msend", message="not-alnum!").startswith("error msend")


# --- build ---------------------------------------------------------------------------------------
def _build_adapter(tmp_path: Path, argv: list[str]) -> Adapter:
    text = f"build = [{', '.join(_toml_str(a) for a in argv)}]\n" + MINIMAL
    return load_adapter(str(write(tmp_path, text)))


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_build_runs_in_workdir_with_env_once_even_from_many_threads(tmp_path: Path) -> None:
    script = 'echo "$PWD $MARK" >> built.txt; sleep 0.3'
    text = f"build = ['sh', '-c', '{script}']\nenv = {{MARK = '{{workdir}}!'}}\n" + MINIMAL
    adapter = load_adapter(str(write(tmp_path, text)))
    threads = [threading.Thread(target=build, args=(adapter,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    build(adapter)
    workdir = adapter.workdir
    assert (tmp_path / "built.txt").read_text() == f"{workdir} {workdir}!\n"


def test_build_failure_is_one_line_and_keeps_the_output(tmp_path: Path) -> None:
    argv = ["sh", "-c", "echo compiling; echo 'Oops.java:3: error: ; expected' >&2; exit 3"]
    adapter = _build_adapter(tmp_path, argv)
    with pytest.raises(BuildError) as info:
        build(adapter)
    assert str(info.value) == f"build failed (exit 3): {shlex.join(argv)}"
    assert info.value.output == "compiling\nOops.java:3: error: ; expected\n"
    with pytest.raises(BuildError) as again:  # the failure is remembered, not re-run
        build(adapter)
    assert (str(again.value), again.value.output) == (str(info.value), info.value.output)


def test_build_failure_is_not_run_twice(tmp_path: Path) -> None:
    adapter = _build_adapter(tmp_path, ["sh", "-c", "echo x >> count.txt; exit 1"])
    for _ in range(2):
        with pytest.raises(BuildError):
            build(adapter)
    assert (tmp_path / "count.txt").read_text() == "x\n"


def test_build_with_a_missing_program(tmp_path: Path) -> None:
    adapter = _build_adapter(tmp_path, ["no-such-compiler-pams", "-o", "x"])
    with pytest.raises(BuildError) as info:
        build(adapter)
    assert str(info.value) == (
        "build failed (program not found: no-such-compiler-pams): no-such-compiler-pams -o x"
    )


def test_build_timeout_kills_everything_it_started(tmp_path: Path) -> None:
    argv = ["sh", "-c", "sleep 60 & echo $! > child.pid; echo started; wait"]
    adapter = _build_adapter(tmp_path, argv)
    started = time.monotonic()
    with pytest.raises(BuildError) as info:
        build(adapter, timeout=0.5)
    assert time.monotonic() - started < 5
    assert str(info.value) == f"build failed (timed out after 0.5 s): {shlex.join(argv)}"
    assert info.value.output == "started\n"
    child = int((tmp_path / "child.pid").read_text())
    wait_until(lambda: not _alive(child), 5, f"build's child {child} to be gone")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_no_build_is_a_no_op(tmp_path: Path) -> None:
    build(load_adapter(str(write(tmp_path, MINIMAL))))


# --- the documented examples -------------------------------------------------------------------
def test_java_example_adapter_loads_and_renders() -> None:
    adapter = load_adapter(str(EXAMPLES / "java-adapter.toml"))
    assert adapter.build == ("javac", "-d", "build", "Coordinator.java", "Participant.java")
    assert adapter.clock.fake_monotonic is False  # the JVM gets clock steps (docs/clock.md)
    values = {"config": "/run/c/coordinator.conf", "config_name": "coordinator.conf", "port": 4000}
    argv = adapter.coordinator_argv(values)
    assert argv[0] == "java"
    assert argv[argv.index("-cp") + 1] == f"{adapter.workdir}/build"
    assert argv[-2:] == ["Coordinator", "/run/c/coordinator.conf"]


@pytest.mark.parametrize("name", ["c-adapter.toml", "python-adapter.toml"])
def test_other_example_adapters_load(name: str) -> None:
    adapter = load_adapter(str(EXAMPLES / name))
    assert adapter.path == (EXAMPLES / name).resolve()


def test_python_example_reads_its_config_name_from_stdin() -> None:
    adapter = load_adapter(str(EXAMPLES / "python-adapter.toml"))
    assert adapter.participant.stdin_preamble == ("{config_name}",)


# --- the documentation stays in step with the code --------------------------------------------
DOC = REPO / "README.md"  # the adapters section
DOC_COLUMNS = (
    ("build", "env"),
    ("coordinator.cmd", "coordinator.config", "coordinator.stdin_preamble"),
    ("participant.cmd", "participant.config", "participant.stdin_preamble"),
    ("commands.register", "commands.reconnect"),
    ("commands.msend",),
    ("commands.deregister", "commands.disconnect"),
)


def test_documented_placeholder_table_matches_the_code() -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `{")]
    documented: dict[str, set[str]] = {field: set() for group in DOC_COLUMNS for field in group}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        name = cells[0].strip("`{}")
        for group, cell in zip(DOC_COLUMNS, cells[2:]):
            for field in group if cell == "✓" else ():
                documented[field].add(name)
    assert len(rows) == len(set().union(*PLACEHOLDERS.values()))
    assert documented == {field: set(names) for field, names in PLACEHOLDERS.items()}


@pytest.mark.parametrize("name", ["java-adapter.toml", "c-adapter.toml", "python-adapter.toml"])
def test_documented_examples_are_the_example_files(name: str) -> None:
    text = DOC.read_text()
    heading = f"`docs/examples/{name}`:\n\n```toml\n"
    assert heading in text
    block = text.split(heading, 1)[1].split("```\n", 1)[0]
    assert block == (EXAMPLES / name).read_text()


JAVA_STUB = """\
import java.nio.file.*;

public class {cls} {{
    public static void main(String[] args) throws Exception {{
        String config = new String(Files.readAllBytes(Paths.get(args[0])));
        System.out.println("{cls} " + args.length + " " + config.trim().replace("\\n", "|"));
    }}
}}
"""


@pytest.mark.timeout(90)
@pytest.mark.skipif(not shutil.which("javac") or not shutil.which("java"), reason="no JDK")
@pytest.mark.process
def test_java_example_builds_and_starts_a_real_java_program(tmp_path: Path) -> None:
    src = tmp_path / "alice"
    src.mkdir()
    shutil.copy(EXAMPLES / "java-adapter.toml", src / "pams.toml")
    for cls in ("Coordinator", "Participant"):
        (src / f"{cls}.java").write_text(JAVA_STUB.format(cls=cls))
    adapter = load_adapter(str(src))
    build(adapter, timeout=80)
    assert (src / "build" / "Participant.class").is_file()
    run = tmp_path / "run" / "p1"
    run.mkdir(parents=True)
    values = {
        "id": "1", "td": 2.0, "coordinator_host": "127.0.0.1", "coordinator_port": 4100,
        "config": str(run / "p1.conf"), "config_name": "p1.conf",
        "log": str(run / "p1.log"), "log_name": "p1.log",
    }  # fmt: skip
    (run / "p1.conf").write_text(adapter.participant_config(values))
    result = subprocess.run(
        adapter.participant_argv(values),
        cwd=run,
        env={**os.environ, **adapter.env_dict()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Participant 1 1|p1.log|127.0.0.1:4100\n"


def test_every_mistake_of_a_file_is_reported_on_one_line(tmp_path: Path) -> None:
    bad = MINIMAL + "[commands]\nregistr = 'x'\nmin_gap = -1\n"
    with pytest.raises(AdapterError) as info:
        load_adapter(str(write(tmp_path, bad)))
    text = str(info.value)
    assert "\n" not in text
    assert "commands.registr: unknown key" in text and "(and 1 more: commands.min_gap:" in text
