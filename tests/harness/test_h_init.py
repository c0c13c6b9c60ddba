"""`pams init`, its pure parts: what a submission's files say (language, build system,
entry points), the build plan and the adapter's build/cmd, the variant lists and inferences
(prompt, done_pattern, port complaints), and the written file (it loads, comments included).
No process is started."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.adapters.adapter import load_adapter
from harness.adapters.init import build as builds
from harness.adapters.init import variants as vs
from harness.adapters.init.infer import Findings, summary
from harness.adapters.init.layout import (
    LayoutError,
    choose,
    detect_build,
    java_clashes,
    java_source_root,
    read_tree,
    role_score,
    scan,
)
from harness.adapters.init.writer import Sheet, render

pytestmark = pytest.mark.timeout(30)

JAVA_MAIN = "public class {c} {{\n  public static void main(String[] args) {{ }}\n}}\n"
PY_MAIN = 'def main():\n    pass\n\nif __name__ == "__main__":\n    main()\n'
C_MAIN = "#include <stdio.h>\nint main(int argc, char **argv) { return 0; }\n"


def java(c: str, extra: str = "", package: str = "") -> str:
    head = f"package {package};\n" if package else ""
    return head + JAVA_MAIN.format(c=c) + extra


# ------------------------------------------------------------------ layout


def test_python_pair_is_found_by_file_names() -> None:
    files = {"coordinator.py": PY_MAIN, "participant.py": PY_MAIN, "util.py": "X = 1\n"}
    layout = scan(files)
    assert layout.lang == "python" and layout.build_system == ""
    assert choose(layout, "coordinator").path == "coordinator.py"
    assert choose(layout, "participant").path == "participant.py"


def test_server_and_client_names_count_as_the_roles() -> None:
    layout = scan({"MulticastServer.java": java("MulticastServer"), "Client.java": java("Client")})
    assert layout.lang == "java"
    assert choose(layout, "coordinator").name == "MulticastServer"
    assert choose(layout, "participant").name == "Client"


def test_java_package_gives_qualified_names_and_the_source_root() -> None:
    files = {
        "src/main/java/edu/uga/Coordinator.java": java("Coordinator", package="edu.uga"),
        "src/main/java/edu/uga/Participant.java": java("Participant", package="edu.uga"),
        "pom.xml": "<project/>",
    }
    layout = scan(files)
    assert layout.build_system == "maven"
    assert layout.source_root == "src/main/java"
    assert choose(layout, "coordinator").name == "edu.uga.Coordinator"
    assert java_source_root("a/b/X.java", "package b;\nclass X {}") == "a"


def test_ambiguous_programs_are_listed_not_guessed() -> None:
    files = {"Server1.java": java("Server1"), "Server2.java": java("Server2"), "P.java": java("P")}
    with pytest.raises(LayoutError) as e:
        choose(scan(files), "coordinator")
    text = str(e.value)
    assert "Server1" in text and "Server2" in text and "--coordinator" in text


def test_no_role_name_at_all_is_refused_with_the_candidates() -> None:
    with pytest.raises(LayoutError, match=r"candidates: .*A.*B"):
        choose(scan({"A.java": java("A"), "B.java": java("B")}), "participant")


def test_a_named_choice_overrides_the_names() -> None:
    layout = scan({"A.java": java("A"), "B.java": java("B")})
    assert choose(layout, "participant", "B").name == "B"
    with pytest.raises(LayoutError, match="not among"):
        choose(layout, "participant", "C")


def test_readme_breaks_a_tie() -> None:
    files = {
        "ServerA.java": java("ServerA"),
        "ServerB.java": java("ServerB"),
        "Participant.java": java("Participant"),
        "README.md": "Run the coordinator with `java ServerB coord.conf`.\n",
    }
    assert choose(scan(files), "coordinator").name == "ServerB"


def test_the_other_roles_word_disqualifies_a_partial_match() -> None:
    layout = scan({"ClientServer.java": java("ClientServer")})
    assert role_score("coordinator", layout.mains[0], "") == 0


def test_test_files_are_not_programs() -> None:
    files = {
        "coordinator.py": PY_MAIN,
        "participant.py": PY_MAIN,
        "tests/test_coordinator.py": PY_MAIN,
        "participant_test.py": PY_MAIN,
    }
    assert {c.path for c in scan(files).mains} == {"coordinator.py", "participant.py"}


def test_language_is_the_one_with_most_programs_unless_told() -> None:
    files = {"coordinator.c": C_MAIN, "participant.c": C_MAIN, "plot.py": PY_MAIN}
    assert scan(files).lang == "c"
    assert scan(files, "python").lang == "python"
    assert scan({"coordinator.cpp": C_MAIN, "participant.cpp": C_MAIN}).lang == "cpp"


def test_no_program_is_an_error() -> None:
    with pytest.raises(LayoutError, match="no program"):
        scan({"notes.txt": "hello"})


@pytest.mark.parametrize(
    ("name", "system"),
    [
        ("pom.xml", "maven"),
        ("build.gradle", "gradle"),
        ("build.gradle.kts", "gradle"),
        ("CMakeLists.txt", "cmake"),
        ("Makefile", "make"),
    ],
)
def test_build_files_are_recognised(name: str, system: str) -> None:
    assert detect_build({name: "", "x.c": C_MAIN}) == system


def test_the_shallowest_build_file_wins() -> None:
    assert detect_build({"Makefile": "", "lib/CMakeLists.txt": ""}) == "make"
    assert detect_build({"CMakeLists.txt": "", "Makefile": ""}) == "cmake"


def test_java_clash_is_a_top_level_class_in_two_files() -> None:
    files = {
        "Coordinator.java": java("Coordinator", "class Message { }\n"),
        "Participant.java": java("Participant", "class Message { }\nclass Only { }\n"),
    }
    assert java_clashes(files, tuple(files)) == {"Message"}


def test_read_tree_skips_build_output_hidden_and_binary_files(tmp_path: Path) -> None:
    (tmp_path / "coordinator.py").write_text(PY_MAIN)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.py").write_text(PY_MAIN)
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "Y.java").write_text(java("Y"))
    (tmp_path / "blob").write_bytes(b"\0\1\2")
    assert list(read_tree(tmp_path)) == ["coordinator.py"]


# ------------------------------------------------------------------ build plan


def plan_of(files: dict[str, str]) -> builds.Plan:
    layout = scan(files)
    return builds.plan(layout, files, choose(layout, "coordinator"), choose(layout, "participant"))


def test_python_needs_no_build() -> None:
    p = plan_of({"coordinator.py": PY_MAIN, "participant.py": PY_MAIN})
    assert builds.adapter_build(p) == []
    assert builds.adapter_cmd(p.coordinator) == ["{python}", "{workdir}/coordinator.py"]


def test_plain_java_compiles_together_into_pams_build() -> None:
    p = plan_of({"Coordinator.java": java("Coordinator"), "Participant.java": java("Participant")})
    assert builds.adapter_build(p)[:2] == ["sh", "-c"]
    script = builds.adapter_build(p)[2]
    assert "mkdir -p pams-build" in script and "javac -d pams-build/classes" in script
    cmd = builds.adapter_cmd(p.participant)
    assert cmd[-3:] == ["-cp", "{workdir}/pams-build/classes", "Participant"]


def test_clashing_java_classes_get_one_output_directory_each() -> None:
    files = {
        "Coordinator.java": java("Coordinator", "class Message { }\n"),
        "Participant.java": java("Participant", "class Message { }\n"),
    }
    p = plan_of(files)
    assert len(p.steps) == 2 and "Message" in p.how
    assert builds.adapter_cmd(p.coordinator)[-2] == "{workdir}/pams-build/coordinator"
    assert builds.adapter_cmd(p.participant)[-2] == "{workdir}/pams-build/participant"
    assert all("-sourcepath" in s for s in p.steps)


def test_c_without_build_file_compiles_each_program_with_shared_sources() -> None:
    files = {"coordinator.c": C_MAIN, "participant.c": C_MAIN, "net.c": "int f(void){return 1;}\n"}
    p = plan_of(files)
    assert [s[0] for s in p.steps] == ["gcc", "gcc"]
    assert "$SRC/net.c" in p.steps[0] and "$SRC/participant.c" not in p.steps[0]
    assert builds.adapter_cmd(p.coordinator)[-1] == "{workdir}/pams-build/coordinator"


def test_cpp_uses_gxx() -> None:
    p = plan_of({"coordinator.cpp": C_MAIN, "participant.cpp": C_MAIN})
    assert p.steps[0][:2] == ("g++", "-std=c++17")


def test_maven_and_make_build_in_place_in_the_adapter_and_in_a_copy_when_probed() -> None:
    files = {"pom.xml": "", "Coordinator.java": java("Coordinator"), "Participant.java": java("P")}
    p = plan_of({**files, "Participant.java": java("Participant")})
    assert p.in_copy and builds.adapter_build(p) == ["mvn", "-q", "-DskipTests", "package"]
    assert builds.adapter_cmd(p.coordinator)[-3:] == [
        "-cp",
        "{workdir}/target/classes",
        "Coordinator",
    ]
    m = plan_of({"Makefile": "all:\n", "coordinator.c": C_MAIN, "participant.c": C_MAIN})
    assert m.in_copy and m.discover == "$SRC" and builds.adapter_build(m) == ["make"]


def test_cmake_builds_out_of_tree() -> None:
    p = plan_of({"CMakeLists.txt": "", "coordinator.c": C_MAIN, "participant.c": C_MAIN})
    assert not p.in_copy and p.discover == "$OUT"
    assert "cmake -S . -B pams-build" in builds.adapter_build(p)[2]


# ------------------------------------------------------------------ variants and inferences


def test_the_assignments_forms_come_first() -> None:
    c = vs.variants(vs.COORDINATOR_CONFIGS)[0]
    assert (c.tail, c.config, c.preamble) == (("{config}",), "{port}\n{td}\n", ())
    p = vs.variants(vs.PARTICIPANT_CONFIGS)[0]
    assert p.config.endswith("{coordinator_host} {coordinator_port}\n")
    labels = [v.label for v in vs.variants(vs.PARTICIPANT_CONFIGS)]
    assert len(labels) == len(set(labels)) == 2 * len(vs.PARTICIPANT_CONFIGS)
    assert vs.variants(vs.PARTICIPANT_CONFIGS, stdin_first=True)[0].preamble == ("{config_name}",)


def test_words_keep_the_case_that_worked_first() -> None:
    assert vs.words("register") == ["register", "Register", "REGISTER"]
    assert vs.words("deregister", "capital")[0] == "Deregister"
    assert "Multicast" in vs.words("msend", "capital")
    assert vs.command("msend", "Multicast") == "Multicast {message}"
    assert vs.command("disconnect", "DISCONNECT") == "DISCONNECT"


@pytest.mark.parametrize(
    ("answers", "pattern"),
    [
        (["ok register 1", "ok msend 1", "ok disconnect"], r"^(ok|error)\b"),
        (["ok register", "error disconnect: not online", "ok reconnect"], r"^(ok|error)\b"),
        (["OK", "OK 3", "ERROR: no"], r"^(OK|ERROR)\b"),
        (["Registered.", "Sent.", "Disconnected."], ""),
        (["ok register", "ok msend"], ""),  # too few to tell
        (["[12:00] ok", "[12:01] ok", "[12:02] ok"], ""),
    ],
)
def test_done_pattern_only_from_a_shared_first_word(answers: list[str], pattern: str) -> None:
    assert vs.done_pattern(answers) == pattern


def test_prompt_is_a_repeated_prompt_only_line() -> None:
    assert vs.prompt_of(["> ", "Registered.", "> ", "Sent.", "> "]) == "> "
    assert vs.prompt_of(["Enter command: ", "ok", "Enter command: "]) == "Enter command: "
    assert vs.prompt_of(["> ", "ok"]) == ""
    assert vs.prompt_pattern("> ") == r">\s*$"
    assert vs.strip_prompt("> > ok", "> ") == "ok"


def test_port_complaints_and_file_questions() -> None:
    assert vs.complains_about_port(["Error: port must have exactly 4 digits"])
    assert vs.complains_about_port(["port out of range (1024-9999)"])
    assert not vs.complains_about_port(["Error: coordinator refused the connection"])
    assert vs.asks_for_file("Enter config file name: ")
    assert not vs.asks_for_file("Registered.")


def test_tries_are_summarised_by_outcome() -> None:
    text = summary(["a: exited (x)", "b: exited (x)", "c: no register reached the coordinator"])
    assert text == "3 variants tried: 2 x exited (x); 1 x no register reached the coordinator"


# ------------------------------------------------------------------ the written file


def sheet(**kw: object) -> Sheet:
    base: dict = dict(
        name="alice",
        workdir="../alice",
        build=["sh", "-c", "set -e; mkdir -p pams-build; javac -d pams-build/classes A.java"],
        build_how="plain Java sources",
        env={},
        env_how="",
        coordinator_cmd=["java", "-cp", "{workdir}/pams-build/classes", "Coordinator"],
        coordinator_how="Coordinator.java: named for the coordinator",
        participant_cmd=["java", "-cp", "{workdir}/pams-build/classes", "Participant"],
        participant_how="Participant.java: named for the participant",
        startup=20.0,
        startup_how="JVM start-up",
    )
    base.update(kw)
    return Sheet(**base)


def test_written_adapter_loads_and_says_how_each_field_was_found(tmp_path: Path) -> None:
    (tmp_path / "alice").mkdir()
    f = Findings()
    f.coordinator = vs.variants(vs.COORDINATOR_CONFIGS)[1]
    f.participant = vs.variants(vs.PARTICIPANT_CONFIGS, stdin_first=True)[1]
    f.commands = {"register": "Register {port}", "msend": "Multicast {message}"}
    f.four_digit, f.fixed_port, f.exit_on_deregister = True, 4747, True
    f.done_pattern, f.prompt = r"^(ok|error)\b", "> "
    f.why.update(exit_on_deregister="it exited", ports="it refused 5 digits")
    f.unknown = ["the log: it wrote log.txt\nsomewhere"]
    f.smoke = ["register: reached the coordinator"]
    text = render(sheet(), f, "2026-01-01")
    path = tmp_path / "out" / "pams.toml"
    path.parent.mkdir()
    path.write_text(text)
    a = load_adapter(str(path))
    assert a.commands.register == "Register {port}" and a.commands.deregister == "deregister"
    assert a.ports == (4000, 9999) and a.coordinator.port == 4747
    assert a.coordinator.config == "port={port}\ntd={td}\n"
    assert a.participant.stdin_preamble == ("{config_name}",) and a.participant.exit_on_deregister
    assert a.commands.done_pattern == r"^(ok|error)\b" and a.commands.prompt_pattern == r">\s*$"
    assert a.timing.startup == 20.0
    lines = text.splitlines()
    assert "#   - the log: it wrote log.txt somewhere" in lines  # one line per item
    fields = [x for x in lines if x and not x.startswith(("#", "["))]
    assert all("  # " in x for x in fields), [x for x in fields if "  # " not in x]


def test_reply_word_only_for_a_kept_connection_with_other_lines() -> None:
    kept = [
        ("request", 1, 1, b"REGISTER 1"),
        ("reply", 1, 1, b"NOTICE 1 joined\nACK REGISTER OK\n"),
        ("request", 1, 2, b"MSEND x"),
        ("reply", 1, 2, b"ACK MS"),
        ("reply", 1, 2, b"END OK\n"),
        ("request", 1, 3, b"DISCONNECT"),
        ("reply", 1, 3, b"ACK DISCONNECT OK\n"),
    ]
    assert vs.reply_word(kept) == "ACK"
    plain = [(k, c, n, d.replace(b"NOTICE 1 joined\n", b"")) for k, c, n, d in kept]
    assert vs.reply_word(plain) == ""  # nothing but answers: no pattern needed
    noisy = [*kept, ("reply", 1, 2, b"NOTICE 2 joined\n"), ("reply", 1, 3, b"NOTICE 3 x\n")]
    assert vs.reply_word(noisy) == ""  # NOTICE after every command too: which one answers?
    one_each = [(k, c * 10 + n, n, d) for k, c, n, d in kept]  # a connection per command
    assert vs.reply_word(one_each) == ""


def test_greeting_bytes_before_the_request_make_the_answer_line_the_reply() -> None:
    wire: list[vs.Wire] = []
    for n, (conn, answer) in enumerate(((5, b"OK 1\n"), (6, b"OK\n"), (7, b"ERR no\n")), 1):
        wire += [("reply", conn, n, b"\xac\xed\x00\x05"), ("request", conn, n, b"REGISTER")]
        wire.append(("reply", conn, n, answer))
    assert vs.greeting_reply(wire) == r"(OK|ERR)[^\n]*\n"
    later = [wire[i] for i in (1, 0, 2, 4, 3, 5, 7, 6, 8)]  # reported after the request
    assert vs.greeting_reply(later) == r"(OK|ERR)[^\n]*\n"
    assert vs.greeting_reply(wire[:6]) == ""  # two commands are not enough
    plain = [w for w in wire if w[3] != b"\xac\xed\x00\x05"]
    assert vs.greeting_reply(plain) == ""  # answers only after the request: nothing to wait for
