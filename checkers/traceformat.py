"""Trace format v1 (docs/trace-format.md): the one definition of its names and of the events
the harness writes. The judge's side owns it; the recorder, the runner, the proxy, the op
machine and the trace reader all use it, so a name is spelled in one place."""

from __future__ import annotations

from typing import Any, Callable

FORMAT = "pams-trace"
VERSION = 1
COORDINATOR = "coordinator"  # the target of coordinator faults and process events
FUNCTIONS = ("register", "deregister", "disconnect", "reconnect", "msend")  # op names (`f`)
COMPLETIONS = ("ok", "fail", "info")
PROBES = ("port_released", "listening")
Event = dict[str, Any]
Emit = Callable[[Event], float]
"""An event sink: records one event (without `t`) and returns the time it stamped on it."""


def header(td: float, participants: list[str], **fields: Any) -> Event:
    """The first line of a trace (the recorder adds `type`)."""
    return {"format": FORMAT, "version": VERSION, "td": td, "participants": participants, **fields}


def invoke(op: int, participant: str, f: str, **fields: Any) -> Event:
    """An op was invoked: its command was written to the participant."""
    return {"type": "invoke", "op": op, "participant": participant, "f": f, **fields}


def fault(name: str, target: str, **fields: Any) -> Event:
    """The harness injected a fault into `target` (a participant id or COORDINATOR)."""
    return {"type": "fault", "fault": name, "target": target, **fields}


def probe(kind: str, participant: str, port: int, ok: bool, **fields: Any) -> Event:
    """A check the harness made itself (`kind` one of PROBES)."""
    return {
        "type": "probe",
        "participant": participant,
        "probe": kind,
        "port": port,
        "ok": ok,
        **fields,
    }


def process(target: str, event: str, **fields: Any) -> Event:
    """A process of the implementation started, exited, was killed, paused, restarted."""
    return {"type": "process", "target": target, "event": event, **fields}


def limit(kind: str, target: str, detail: str, **fields: Any) -> Event:
    """A resource limit of the run was reached (memory, processes, cpu, file_size); checkers
    ignore it, reports show `detail`."""
    return {"type": "limit", "limit": kind, "target": target, "detail": detail, **fields}
