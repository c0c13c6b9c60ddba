"""Scenarios without processes: TOML/JSON files load and every mistake in them is one line
naming the file and the field; the trace-header form round-trips; the seeded generator is
deterministic and its schedules are legal per participant and clear of the td ± tol zone;
the registry covers docs/cli.md's profiles and every rule family; `pams scenarios` lists it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli.main import main
from harness.scenarios import randomgen
from harness.scenarios.model import (
    COMMANDS,
    COORDINATOR,
    Scenario,
    ScenarioError,
    Script,
    from_json,
)
from harness.scenarios.model import load_file as load_scenario
from harness.scenarios.registry import PROFILES, REGISTRY, get_scenario
from harness.scenarios.tokens import TOKEN_TEXT_RE

pytestmark = pytest.mark.timeout(30)

SPEC_PROFILES = ("basic", "skew", "faults", "stress", "all")
DESIGN_NAMES = {  # design.md: the names fixtures and other tests rely on
    "basic": (
        "online-multicast",
        "offline-within-td",
        "offline-beyond-td",
        "long-offline-fresh-stale",
        "deregister-reregister",
        "offline-then-deregister",
        "concurrent-senders",
        "concurrent-membership",
        "boundary-td",
        "random-basic",
    ),
    "stress": ("many-participants", "burst-senders", "random-stress"),
    "skew": ("participant-skew", "coordinator-skew"),
    "faults": (
        "coordinator-step-back",
        "coordinator-step-forward",
        "participant-crash-restart",
        "coordinator-pause",
        "participant-pause",
        "partition",
    ),
}
RANDOM_NAMES = tuple(n for n, e in REGISTRY.items() if e.random)
TOL = 1.0  # the checkers' default tolerance, which the generator keeps clear of
MARGIN = 0.25  # at least this far outside td ± tol (scheduling noise of a real run)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path}: "), message
    return message


# ---------------------------------------------------------------------------- loading

TOML_FILE = """\
name = "from-toml"
description = "a file scenario"
td = 3.5
tolerance = 0.5
drain = 0.5
participants = ["1", "2", 7]
clock_offsets = { coordinator = 3600, "2" = -60.5 }
[[steps]]
at = 0.0
do = "register"
target = "1"
[[steps]]
after = 0.05
do = "register"
participant = "2"
[[steps]]
after = 0.05
do = "register"
target = 7
port = "same"
[[steps]]
at = 1.0
do = "msend"
target = "1"
[[steps]]
after = 0.25
do = "msend"
target = "2"
[[steps]]
at = 1.1
do = "msend"
target = "7"
message = "M00000042"
[[steps]]
at = 2.0
do = "pause"
target = "coordinator"
[[steps]]
after = 0.5
do = "resume"
target = "coordinator"
[[steps]]
at = 3.0
do = "clock_step"
target = "coordinator"
offset = -10
"""


def test_toml_file_loads_with_at_after_tokens_offsets_and_coordinator_faults(
    tmp_path: Path,
) -> None:
    sc = load_scenario(write(tmp_path, "s.toml", TOML_FILE))
    assert (sc.name, sc.description, sc.td, sc.tolerance, sc.drain) == (
        "from-toml",
        "a file scenario",
        3.5,
        0.5,
        0.5,
    )
    assert sc.participants == ("1", "2", "7")
    assert dict(sc.clock_offsets) == {COORDINATOR: 3600.0, "2": -60.5}
    got = [(s.at, s.target, s.action, s.message) for s in sc.steps]
    assert got == [
        (0.0, "1", "register", None),
        (pytest.approx(0.05), "2", "register", None),
        (pytest.approx(0.1), "7", "register", None),
        (1.0, "1", "msend", "M00000001"),
        (1.1, "7", "msend", "M00000042"),
        (1.25, "2", "msend", "M00000002"),
        (2.0, COORDINATOR, "pause", None),
        (2.5, COORDINATOR, "resume", None),
        (3.0, COORDINATOR, "clock_step", None),
    ]
    assert sc.steps[2].port == "same"
    assert sc.steps[-1].offset == -10.0
    assert sc.faults == {"pause", "resume", "clock_step", "clock_offset"}
    assert sc.needs_clock


def test_json_file_loads_with_participant_count_and_default_name(tmp_path: Path) -> None:
    data = {
        "participants": 3,
        "steps": [
            {"at": 0, "do": "register", "target": "3"},
            {"after": 0.5, "do": "msend", "target": 3},
            {"after": 0.5, "do": "disconnect", "target": "3"},
            {"after": 0.5, "do": "reconnect", "target": "3"},
        ],
    }
    sc = load_scenario(write(tmp_path, "my-sched.json", json.dumps(data)))
    assert sc.name == "my-sched"  # the file's stem when no name is given
    assert sc.participants == ("1", "2", "3")
    assert sc.td == 2.0 and sc.tolerance is None and sc.clock_offsets == ()
    assert [(s.at, s.action, s.message) for s in sc.steps] == [
        (0.0, "register", None),
        (0.5, "msend", "M00000001"),
        (1.0, "disconnect", None),
        (1.5, "reconnect", None),
    ]


STEP = '[[steps]]\nat = 0.0\ndo = "register"\ntarget = "1"\n'


@pytest.mark.parametrize(
    "text, field, reason",
    [
        ("participants = 2\nbogus = 1\n", "bogus", "unknown field"),
        (
            'participants = 2\n[[steps]]\nat = 0\ndo = "register"\ntarget = "1"\nwhen = 1\n',
            "steps[0].when",
            "unknown field",
        ),
        (
            'participants = 2\n[[steps]]\nat = 0\ndo = "fly"\ntarget = "1"\n',
            "steps[0].do",
            "unknown action 'fly'",
        ),
        (
            'participants = 2\n[[steps]]\nat = 0\ndo = "register"\ntarget = "9"\n',
            "steps[0].target",
            "unknown participant '9'",
        ),
        (
            'participants = 2\n[[steps]]\nat = 0\ndo = "msend"\ntarget = "1"\nmessage = "hi!"\n',
            "steps[0].message",
            "token",
        ),
        (
            'participants = 2\n[[steps]]\nat = -1\ndo = "register"\ntarget = "1"\n',
            "steps[0].at",
            ">= 0",
        ),
        (
            'participants = 2\n[[steps]]\nat = 1\nafter = 1\ndo = "register"\ntarget = "1"\n',
            "steps[0]",
            "not both",
        ),
        (
            'participants = 2\n[[steps]]\nat = 0\ndo = "msend"\ntarget = "coordinator"\n',
            "steps[0].do",
            "cannot target the coordinator",
        ),
        (
            'participants = 2\n[[steps]]\nat = 0\ndo = "kill"\ntarget = "coordinator"\n',
            "steps[0].do",
            "cannot target the coordinator",
        ),
        (
            'participants = 2\n[[steps]]\nat = 0\ndo = "clock_step"\ntarget = "1"\n',
            "steps[0].offset",
            "offset",
        ),
        ('participants = 2\n[[steps]]\nat = 0\ndo = "register"\n', "steps[0].target", "missing"),
        (
            'participants = 2\n[[steps]]\nat = "soon"\ndo = "register"\ntarget = "1"\n',
            "steps[0].at",
            "number",
        ),
        (
            'participants = 2\n[[steps]]\nat = 0\ndo = "register"\ntarget = "1"\nport = "x"\n',
            "steps[0].port",
            "fresh",
        ),
        ("participants = 0\n", "participants", "count"),
        ('participants = ["1", "1"]\n', "participants", "duplicate"),
        ("td = 0\n", "td", "positive"),
        ("tolerance = -1\n", "tolerance", "non-negative"),
        ('clock_offsets = { "5" = 10 }\n', "clock_offsets.5", "unknown target"),
        ('clock_offsets = { "1" = "late" }\n', "clock_offsets.1", "number"),
        ("steps = 3\n", "steps", "list"),
    ],
)
def test_every_validation_error_is_one_line_naming_file_and_field(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    message = load_error(write(tmp_path, "bad.toml", text))
    assert message.startswith(f"{tmp_path / 'bad.toml'}: {field}: "), message
    assert reason in message, message


def test_a_bad_step_is_named_by_its_position_in_the_file(tmp_path: Path) -> None:
    """Steps are sorted by time after loading; the error must still point at the step the
    user wrote (the first one in the file here), not at its sorted position."""
    text = (
        '[[steps]]\nat = 5\ndo = "register"\ntarget = "9"\n'
        '[[steps]]\nat = 0\ndo = "register"\ntarget = "1"\n'
    )
    message = load_error(write(tmp_path, "order.toml", text))
    assert "steps[0].target" in message, message


@pytest.mark.parametrize(
    "name, text, needle",
    [
        ("broken.toml", "participants = [1, 2\n", "invalid TOML"),
        ("broken.json", '{"participants": 2,', "invalid JSON"),
        ("list.json", "[1, 2]", "scenario: must be a table"),
        ("latin1.toml", None, "invalid TOML"),
    ],
)
def test_unparsable_files_are_one_line_naming_the_file(
    tmp_path: Path, name: str, text: Any, needle: str
) -> None:
    path = tmp_path / name
    if text is None:
        path.write_bytes(b'name = "caf\xe9"\n')
    else:
        path.write_text(text)
    assert needle in load_error(path)


def test_missing_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    assert "cannot read" in load_error(path)


def test_script_builder_assigns_tokens_in_order_and_validates() -> None:
    s = Script("built", 2, td=3.0).all(0.0, "register", gap=0.1)
    s.at(1.0, "2", "msend").at(0.5, "1", "msend").at(1.5, "1", "msend", message="M00000099")
    sc = s.build()
    assert [s.at for s in sc.steps] == sorted(s.at for s in sc.steps)
    sends = {s.at: s.message for s in sc.steps if s.action == "msend"}
    assert sends == {1.0: "M00000001", 0.5: "M00000002", 1.5: "M00000099"}
    with pytest.raises(ScenarioError, match=r"scenario 'x': steps\[0\]\.target"):
        Script("x", 1).at(0.0, "2", "register").build()


# ---------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", list(REGISTRY))
def test_header_form_of_every_builtin_round_trips(name: str) -> None:
    """What a trace header stores is enough to rebuild the scenario: the JSON form is a fixed
    point, and the rebuilt scenario is the original with times rounded to the microsecond."""
    sc = get_scenario(name)
    stored = json.loads(json.dumps(sc.to_json()))
    back = from_json(stored, "header.scenario")
    assert back.to_json() == stored
    assert json.loads(json.dumps(back.to_json())) == stored
    same_but_times = [(s.action, s.target, s.message, s.port, s.offset) for s in sc.steps]
    assert [(s.action, s.target, s.message, s.port, s.offset) for s in back.steps] == (
        same_but_times
    )
    assert all(abs(a.at - b.at) <= 1e-6 for a, b in zip(sc.steps, back.steps))
    fields = ("name", "participants", "td", "description", "profiles", "tolerance")
    fields += ("latency_bound", "clock_offsets", "boundary", "seed", "drain")
    assert {f: getattr(back, f) for f in fields} == {f: getattr(sc, f) for f in fields}


def test_exact_dataclass_round_trip_of_every_builtin() -> None:
    """The stricter form of the above: from_json(to_json(sc)) == sc (the builder rounds times
    to 1 us as to_json does, so 0.15000000000000002 cannot sneak in)."""
    inexact = [n for n in REGISTRY if from_json(get_scenario(n).to_json(), "h") != get_scenario(n)]
    assert inexact == []


# ---------------------------------------------------------------------------- generator


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_same_seed_same_schedule_other_seed_other_schedule(name: str) -> None:
    a, b = get_scenario(name, seed=7), get_scenario(name, seed=7)
    assert a == b and a.to_json() == b.to_json()
    assert a.seed == 7
    others = {get_scenario(name, seed=s).steps for s in range(8, 14)}
    assert a.steps not in others
    assert len(others) == 6


def _offline_periods(sc: Scenario, p: str) -> list[tuple[float, float]]:
    """(start, reconnect time) of each offline period of p: disconnect or kill → reconnect."""
    periods, since = [], None
    for s in sc.steps:
        if s.target != p:
            continue
        if s.action in ("disconnect", "kill"):
            since = s.at
        elif s.action == "reconnect" and since is not None:
            periods.append((since, s.at))
            since = None
        elif s.action == "deregister":
            since = None
    return periods


NEXT_STATE = {  # (state, action) -> state; anything else is an illegal schedule
    ("out", "register"): "online",
    ("online", "msend"): "online",
    ("online", "disconnect"): "offline",
    ("online", "deregister"): "out",
    ("offline", "reconnect"): "online",
    ("offline", "deregister"): "out",
    ("online", "kill"): "dead",
    ("dead", "restart"): "restarted",
    ("restarted", "reconnect"): "online",
    ("online", "pause"): "paused",
    ("paused", "resume"): "online",
    ("online", "partition"): "partitioned",
    ("partitioned", "heal"): "online",
}


def _check_generated(sc: Scenario) -> None:
    for p in sc.participants:
        mine = [s for s in sc.steps if s.target == p]
        state = "out"
        for s in mine:
            nxt = NEXT_STATE.get((state, s.action))
            assert nxt is not None, (
                f"{sc.name} seed {sc.seed}: p{p} {s.action} at {s.at} in {state}"
            )
            state = nxt
        assert state == "online", f"{sc.name} seed {sc.seed}: p{p} ends {state}"
        assert mine[-1].action == "msend", "everyone sends last, so the end is checked too"
        ops = [s.at for s in mine if s.action in COMMANDS]
        gaps = [b - a for a, b in zip(ops, ops[1:])]
        assert all(g >= 0.3 - 1e-9 for g in gaps), f"{sc.name} seed {sc.seed}: p{p} {gaps}"
        sends = [s.at for s in sc.steps if s.action == "msend"]
        for start, back in _offline_periods(sc, p):
            for age in (back - t for t in sends if start < t < back):
                clear = age <= sc.td - TOL - MARGIN or age >= sc.td + TOL + MARGIN
                assert clear, f"{sc.name} seed {sc.seed}: p{p} reconnects at {back} age {age}"
    assert all(TOKEN_TEXT_RE.fullmatch(s.message or "") for s in sc.steps if s.action == "msend")
    tokens = [s.message for s in sc.steps if s.action == "msend"]
    assert len(tokens) == len(set(tokens)), "tokens are unique"


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_generated_schedules_are_legal_spaced_and_clear_of_the_td_zone(name: str) -> None:
    for seed in range(40):
        _check_generated(get_scenario(name, seed=seed))


def test_generator_with_faults_mixes_every_fault_kind_over_seeds() -> None:
    kinds = set()
    for seed in range(40):
        sc = randomgen.generate("g", seed, n=4, duration=5.0, faults=True)
        _check_generated(sc)
        kinds |= sc.faults
    assert {"kill", "restart", "pause", "resume", "partition", "heal"} <= kinds


def test_generated_schedules_actually_test_the_persistence_rules() -> None:
    """Over a few seeds the generator produces reconnects with messages owed (age < td - tol)
    and reconnects with messages expired (age > td + tol): both sides of the rule."""
    young = old = 0
    for seed in range(20):
        sc = get_scenario("random-stress", seed=seed)
        sends = [s.at for s in sc.steps if s.action == "msend"]
        for p in sc.participants:
            for start, back in _offline_periods(sc, p):
                ages = [back - t for t in sends if start < t < back]
                young += any(a <= sc.td - TOL for a in ages)
                old += any(a >= sc.td + TOL for a in ages)
    assert young > 0 and old > 0, (young, old)


# ---------------------------------------------------------------------------- registry


def test_spec_profiles_exist_and_all_is_the_union() -> None:
    assert set(SPEC_PROFILES) <= set(PROFILES)
    union = [n for p in SPEC_PROFILES if p != "all" for n in PROFILES[p]]
    assert len(union) == len(set(union)), "each scenario is in one profile"
    assert set(PROFILES["all"]) == set(union) == set(REGISTRY)
    assert all(PROFILES[p] for p in SPEC_PROFILES)


@pytest.mark.parametrize("profile", list(DESIGN_NAMES))
def test_design_scenario_names_are_registered_in_their_profile(profile: str) -> None:
    assert set(DESIGN_NAMES[profile]) <= set(PROFILES[profile])


def test_names_are_unique_and_scenarios_carry_their_name_and_profile() -> None:
    for name, entry in REGISTRY.items():
        sc = get_scenario(name)
        assert sc.name == name
        assert entry.profile in sc.profiles
        assert sc.description


def _sends_while_offline(sc: Scenario) -> list[float]:
    """Ages at reconnect of messages sent while some participant was offline."""
    sends = [s.at for s in sc.steps if s.action == "msend"]
    return [
        back - t
        for p in sc.participants
        for start, back in _offline_periods(sc, p)
        for t in sends
        if start < t < back
    ]


def _online_only(sc: Scenario) -> bool:
    acts = {s.action for s in sc.steps}
    return acts == {"register", "msend"} and len(sc.participants) >= 2


def _reregisters(sc: Scenario) -> bool:
    for p in sc.participants:
        acts = [s.action for s in sc.steps if s.target == p]
        if "deregister" in acts and "register" in acts[acts.index("deregister") :]:
            return True
    return False


def _concurrent(sc: Scenario) -> bool:
    at: dict[float, set[str]] = {}
    for s in sc.steps:
        if s.action == "msend":
            at.setdefault(s.at, set()).add(s.target)
    return any(len(senders) >= 2 for senders in at.values())


FAMILIES = {
    "online delivery": _online_only,
    "offline within td": lambda sc: any(a <= sc.td - TOL for a in _sends_while_offline(sc)),
    "offline beyond td": lambda sc: any(a >= sc.td + TOL for a in _sends_while_offline(sc)),
    "deregister / re-register": _reregisters,
    "concurrent senders": _concurrent,
    "20 participants": lambda sc: len(sc.participants) >= 20,
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_rule_family_has_a_fixed_scenario(family: str) -> None:
    found = [n for n, e in REGISTRY.items() if not e.random and FAMILIES[family](get_scenario(n))]
    assert found, family


def test_boundary_scenario_offers_messages_just_inside_and_just_past_td() -> None:
    boundary = [get_scenario(n) for n in PROFILES["basic"] if get_scenario(n).boundary]
    assert boundary
    for sc in boundary:
        assert sc.tolerance == 0.25
        ages = _sends_while_offline(sc)
        assert any(sc.td - 0.75 <= a < sc.td - sc.tolerance for a in ages), ages
        assert any(sc.td + sc.tolerance < a <= sc.td + 0.75 for a in ages), ages


def test_fault_and_skew_profiles_contain_their_faults() -> None:
    faults = set().union(*(get_scenario(n).faults for n in PROFILES["faults"]))
    assert {"kill", "restart", "pause", "resume", "partition", "heal", "clock_step"} <= faults
    for name in PROFILES["skew"]:
        assert "clock_offset" in get_scenario(name).faults
    for name in PROFILES["basic"]:  # async-send stops a member: what the rule is about
        allowed = {"pause", "resume"} if name == "async-send" else set()
        assert get_scenario(name).faults <= allowed, name


def test_unknown_scenario_name_is_one_line() -> None:
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'") as info:
        get_scenario("nope")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------- pams scenarios


def test_pams_scenarios_lists_every_scenario_and_profile(capsys: pytest.CaptureFixture) -> None:
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name in REGISTRY:
        assert any(line.split()[:1] == [name] for line in lines), name
    for profile, members in PROFILES.items():
        assert f"profile {profile}: {', '.join(members)}" in lines
    assert any("[boundary]" in line for line in lines)


def test_pams_scenarios_json(capsys: pytest.CaptureFixture) -> None:
    assert main(["scenarios", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in data["scenarios"]] == list(REGISTRY)
    assert data["profiles"] == {k: list(v) for k, v in PROFILES.items()}
    rows = {row["name"]: row for row in data["scenarios"]}
    assert rows["many-participants"]["participants"] == 20
    assert rows["boundary-td"]["boundary"] is True
    assert rows["random-basic"]["random"] is True
    assert "kill" in rows["participant-crash-restart"]["faults"]


def test_pams_scenarios_show_prints_the_schedule(capsys: pytest.CaptureFixture) -> None:
    assert main(["scenarios", "--show", "offline-within-td"]) == 0
    out = capsys.readouterr().out
    sc = get_scenario("offline-within-td")
    assert out.startswith(f"{sc.name}: {sc.description}")
    lines = out.splitlines()[2:]
    expect = [line for line in lines if line.startswith(" must exercise")]
    assert len(expect) == len(sc.expect) and "owed-at-reconnect" in expect[0]
    body = lines[len(expect) :]
    assert len(body) == len(sc.steps)
    for line, step in zip(body, sc.steps):
        assert line.split()[:3] == [f"{step.at:.3f}", step.target, step.action]
        if step.message:
            assert line.split()[3] == step.message


def test_pams_scenarios_show_json_and_seed(capsys: pytest.CaptureFixture) -> None:
    assert main(["scenarios", "--show", "random-basic", "--seed", "5", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == get_scenario("random-basic", seed=5).to_json()
    assert shown["seed"] == 5


def test_pams_scenarios_show_unknown_is_exit_2_one_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["scenarios", "--show", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nope" in err


def test_a_step_without_a_time_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[[steps]]\ntarget = "1"\ndo = "register"\n')
    with pytest.raises(ScenarioError, match=r"steps\[0\]: give its time: at .* or after"):
        load_scenario(path)
