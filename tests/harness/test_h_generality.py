"""Black-box generality: the alternative implementation (tests/fixtures/altimpl) passes the
`basic` profile through its own adapter, and each quirk variant passes a basic subset through an
adapter alone. Every run must also be clean (every op ok, every msend delivered to its sender)
and show the quirk at work, so a vacuous pass (nothing ran) or an unexercised quirk fails.

All runs start at once from one module fixture, a few at a time, to keep wall time low."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest

from checkers import check_path
from harness.adapters.adapter import load_adapter
from harness.running.runner import run_scenario
from harness.scenarios.registry import PROFILES, get_scenario
from tests.procutil import REPO

pytestmark = pytest.mark.process

ALT = REPO / "tests" / "fixtures" / "altimpl"
PAIR = ("online-multicast", "offline-within-td")
DEREGISTERING = ("online-multicast", "deregister-reregister")
PLAN: dict[str, tuple[str, ...]] = {
    "alt": PROFILES["basic"],
    "alt-config-stdin": PAIR,
    "alt-kv-config": PAIR,
    "alt-caps": PAIR,
    "alt-no-separator": PAIR,
    "alt-rewrite-log": PAIR,
    "alt-delete-log": DEREGISTERING,
    "alt-exit-on-deregister": DEREGISTERING,
    "alt-four-digit": PAIR,
    "alt-fixed-port": PAIR,
}
# Negative controls: a variant behind an adapter with the line that absorbs its quirk removed.
UNABSORBED: dict[str, tuple[str, str]] = {
    "caps-unabsorbed": ("alt-caps", r"^(register|deregister|disconnect|reconnect|msend) = .*\n"),
    "four-digit-unabsorbed": ("alt-four-digit", r"^ports = \[4000, 9999\]\n"),
}
WORKERS = 5


@dataclass(frozen=True)
class Outcome:
    """One run: the runner's error (if it could not run), the verdict and the trace events."""

    scenario: str
    run_dir: Path
    error: Optional[str]
    verdict: str = ""
    violations: tuple[str, ...] = ()
    events: tuple[dict, ...] = ()

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("type") == kind]


def _unabsorbed_adapter(where: Path, name: str) -> Path:
    """`UNABSORBED[name]`: its base adapter without the lines that absorb the quirk."""
    base, absorbing = UNABSORBED[name]
    text = (ALT / "adapters" / f"{base}.toml").read_text()
    text = text.replace('workdir = ".."', f"workdir = {json.dumps(str(ALT))}")
    text, count = re.subn(absorbing, "", text, flags=re.M)
    assert count, f"{base}.toml no longer has {absorbing!r}"
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{name}.toml"
    path.write_text(text + "\n[timing]\nop_timeout = 1.0\n")
    return path


def _run(adapter_path: Path, scenario: str, out: Path) -> Outcome:
    result = run_scenario(load_adapter(str(adapter_path)), get_scenario(scenario), out)
    if result.error or result.trace_path is None:
        return Outcome(scenario, out, result.error or "no trace")
    verdict = check_path(str(result.trace_path))
    lines = result.trace_path.read_text().splitlines()
    return Outcome(
        scenario,
        out,
        None,
        verdict.verdict,
        tuple(f"{v.rule} p{v.participant} {v.message}: {v.why}" for v in verdict.violations),
        tuple(json.loads(line) for line in lines),
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Outcome]:
    root = tmp_path_factory.mktemp("generality")
    jobs = [(ALT / "adapters" / f"{name}.toml", s) for name, plan in PLAN.items() for s in plan]
    jobs += [(_unabsorbed_adapter(root / "adapters", n), "online-multicast") for n in UNABSORBED]
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        futures = {
            (path.stem, s): pool.submit(_run, path, s, root / f"{path.stem}--{s}")
            for path, s in jobs
        }
        return {key: future.result() for key, future in futures.items()}


def clean_run_problems(outcome: Outcome) -> list[str]:
    """Why the run was not clean: an op without `ok`, or an ok msend its sender never logged."""
    problems = []
    settled = {
        e["op"]: e["type"] for e in outcome.events if e.get("type") in ("ok", "fail", "info")
    }
    for invoke in outcome.of("invoke"):
        if settled.get(invoke["op"]) != "ok":
            what = settled.get(invoke["op"], "nothing")
            problems.append(f"op {invoke['op']} {invoke['f']} of p{invoke['participant']}: {what}")
    got = {(e["participant"], e["message"]) for e in outcome.of("deliver")}
    for invoke in outcome.of("invoke"):
        if invoke["f"] != "msend" or (invoke["participant"], invoke["message"]) in got:
            continue
        if not _left_soon_after(outcome, invoke):
            problems.append(f"p{invoke['participant']} never logged its own {invoke['message']}")
    return problems


def _left_soon_after(outcome: Outcome, msend: dict, latency_bound: float = 1.0) -> bool:
    """The sender invoked disconnect/deregister within L of its msend: its own copy may have
    been in flight and is not owed to it (docs/rules.md), so its absence is not unclean."""
    return any(
        e["participant"] == msend["participant"]
        and e["f"] in ("disconnect", "deregister")
        and msend["t"] < e["t"] <= msend["t"] + latency_bound + 0.5
        for e in outcome.of("invoke")
    )


def _logs(outcome: Outcome) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in outcome.run_dir.glob("*/messages.log")}


def _plain(runs: list[Outcome]) -> None:
    for run in runs:
        lines = [e["line"] for e in run.of("deliver")]
        assert lines and all(re.fullmatch(r"\[[0-9:.]{12}\] from \d+: M\d{8}", x) for x in lines)
        sent = [base64.b64decode(e["data"]) for e in run.of("wire")]
        assert any(data.startswith(b'{"op": "register"') for data in sent)


def _config_stdin(runs: list[Outcome]) -> None:
    for run in runs:
        first = next(e["line"] for e in run.of("output") if e["target"] == "coordinator")
        assert first.startswith("Enter config file name: "), first


def _kv(runs: list[Outcome]) -> None:
    for run in runs:
        configs = [p.read_text() for p in run.run_dir.glob("*/*.conf")]
        assert configs and all("=" in text for text in configs), configs


def _no_separator(runs: list[Outcome]) -> None:
    for run in runs:
        logs = _logs(run)
        assert logs and all(b"\n" not in data for data in logs.values())
        assert all(re.fullmatch(rb"(M\d{8})+", data) for data in logs.values() if data)


def _rewrite(runs: list[Outcome]) -> None:
    for run in runs:
        assert not run.of("log_reset"), "a log rewritten whole must read as grown, not reset"


def _delete_log(runs: list[Outcome]) -> None:
    run = next(r for r in runs if r.scenario == "deregister-reregister")
    dereg = next(e for e in run.of("invoke") if e["f"] == "deregister")
    had_log = any(
        e["participant"] == dereg["participant"] and e["t"] < dereg["t"] for e in run.of("deliver")
    )
    resets = [e for e in run.of("log_reset") if e["participant"] == dereg["participant"]]
    assert resets or not had_log, "the deleted log was not seen as a new generation"


def _exit(runs: list[Outcome]) -> None:
    run = next(r for r in runs if r.scenario == "deregister-reregister")
    assert any(e.get("event") == "restart" for e in run.of("process")), "never restarted"


def _four_digit(runs: list[Outcome]) -> None:
    for run in runs:
        ports = [e["port"] for e in run.of("invoke") if "port" in e]
        assert ports and all(1000 <= p <= 9999 for p in ports), ports


def _fixed_port(runs: list[Outcome]) -> None:
    for run in runs:
        lines = [e["line"] for e in run.of("output") if e["target"] == "coordinator"]
        assert any("up on port 4747," in line for line in lines), lines[:3]


def _nothing(runs: list[Outcome]) -> None:
    pass


QUIRK_SEEN: dict[str, Callable[[list[Outcome]], None]] = {
    "alt": _plain,
    "alt-config-stdin": _config_stdin,
    "alt-kv-config": _kv,
    "alt-caps": _nothing,  # the negative control shows lower-case commands would fail
    "alt-no-separator": _no_separator,
    "alt-rewrite-log": _rewrite,
    "alt-delete-log": _delete_log,
    "alt-exit-on-deregister": _exit,
    "alt-four-digit": _four_digit,
    "alt-fixed-port": _fixed_port,
}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", list(PLAN))
def test_variant_passes_through_its_adapter(outcomes, name):
    runs = [outcomes[(name, scenario)] for scenario in PLAN[name]]
    for scenario, run in zip(PLAN[name], runs):
        assert run.error is None, f"{scenario}: could not run: {run.error} ({run.run_dir})"
        assert run.verdict == "pass", f"{scenario} ({run.run_dir}): " + "; ".join(run.violations)
        problems = clean_run_problems(run)
        assert not problems, f"{scenario} ({run.run_dir}): " + "; ".join(problems)
    QUIRK_SEEN[name](runs)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", list(UNABSORBED))
def test_a_quirk_the_adapter_does_not_absorb_is_caught(outcomes, name):
    run = outcomes[(name, "online-multicast")]
    assert run.error is None, run.error
    problems = clean_run_problems(run)
    assert any("register of p1: fail" in problem for problem in problems), problems
    refused = [
        e
        for e in run.of("fail")
        if "> Error: " in e.get("refusal", "") and e.get("by") == "participant"
    ]
    assert refused, "the participant's own refusal should complete the op (done_pattern)"
