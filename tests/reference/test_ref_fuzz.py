"""Bounded, seeded fuzz run against the live reference coordinator (raw sockets on 127.0.0.1).

A random mix of hostile control connections (garbage, over-long lines, huge numbers, truncated
requests, silent and byte-at-a-time clients, out-of-order commands) is interleaved with valid
MSENDs while two thread-B stand-ins (that ACK) are online. The coordinator must never exit,
never print a Traceback, answer every complete line with exactly one `OK` or `ERR` line, and
deliver every accepted message to both online members.

`PAMS_FUZZ_CASES` (default 400) and `PAMS_FUZZ_SEED` (default 12) set the run; `tox -e fuzz`
runs a long one. The seed and case count are printed (`-s` shows them)."""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.procutil import ProcessGroup, free_port, start_coordinator, wait_until
from tests.reference.rawnet import ThreadB, ok, request

CASES = int(os.environ.get("PAMS_FUZZ_CASES", "400"))
SEED = int(os.environ.get("PAMS_FUZZ_SEED", "12"))
MAX_LINE = 64 * 1024
VERBS = ["REGISTER", "DEREGISTER", "DISCONNECT", "RECONNECT", "MSEND", "ACK", "MSG", "OK", ""]
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def answered(reply: bytes) -> bool:
    """Exactly one reply line, `OK...` or `ERR ...`."""
    return reply.count(b"\n") == 1 and reply.endswith(b"\n") and reply.startswith((b"OK", b"ERR "))


class Fuzz:
    def __init__(self, port: int, rng: random.Random, sink: int, dead: int) -> None:
        self.port, self.rng = port, rng
        self.sink, self.dead = sink, dead  # a listener port for fuzz members, a closed port
        self.accepted: list[int] = []  # seqs of every MSEND the coordinator accepted
        self.silent: list[socket.socket] = []
        self.counts: dict[str, int] = {}

    # building blocks

    def fid(self) -> str:
        return f"f{self.rng.randrange(12)}"  # fuzz members; never the online members a, b

    def text(self) -> str:
        return "".join(self.rng.choice(ALNUM) for _ in range(self.rng.randint(1, 40)))

    def number(self) -> str:
        return self.rng.choice(
            [
                "0",
                "-1",
                "+80",
                str(10**30),
                "9" * 5000,
                "1" * 20,
                str(2**63),
                str(2**63 - 1),
                "65536",
                "٣",
                "1e3",
                str(self.rng.choice([self.sink, self.dead])),
                str(self.rng.randrange(1, 65536)),
            ]
        )

    def garbage(self) -> bytes:
        size = self.rng.choice([0, 1, 5, 40, 300, 4000])
        data = bytes(self.rng.randrange(256) for _ in range(size))
        return data.replace(b"\n", b" ")

    def mutated(self) -> bytes:
        words = [self.rng.choice(VERBS), self.fid(), self.rng.choice(["127.0.0.1", "::1", "h"])]
        words += [self.number(), self.text()]
        words = words[: self.rng.randint(0, len(words))]
        if words and self.rng.random() < 0.3:
            words.insert(self.rng.randrange(len(words)), self.rng.choice(["", "\t", "\x00", "é"]))
        sep = self.rng.choice([" ", "  ", "\t", " \r"])
        return sep.join(words).encode("utf-8", "surrogateescape")

    # cases: each returns nothing and asserts what it can

    def line(self, data: bytes) -> bytes:
        reply = request(self.port, data + self.rng.choice([b"\n", b"\r\n"]))
        assert answered(reply), f"{data[:60]!r} -> {reply[:200]!r}"
        return reply

    def case_garbage(self) -> None:
        self.line(self.garbage())

    def case_mutated(self) -> None:
        self.line(self.mutated())

    def case_number(self) -> None:
        verb = self.rng.choice(["REGISTER", "RECONNECT"])
        self.line(f"{verb} {self.fid()} 127.0.0.1 {self.number()}".encode())

    def case_huge_number(self) -> None:
        digits = "7" * self.rng.choice([20, 4301, 5000, 20000])
        reply = self.line(f"REGISTER {self.fid()} 127.0.0.1 {digits}".encode())
        assert reply.startswith(b"ERR ")

    def case_long(self) -> None:
        size = MAX_LINE + self.rng.choice([1, 100, 70_000])
        data = self.rng.choice([b"M", b"MSEND a "]) + b"x" * size
        reply = request(self.port, data + b"\n")
        assert reply.startswith(b"ERR ") and reply.count(b"\n") == 1, reply[:200]

    def case_truncated(self) -> None:
        data = self.rng.choice([b"MSEND a hel", b"REGISTER f1 127.0.0.1 80", b"RECON", b"\r"])
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            reply = sock.recv(4096)
        assert reply.startswith(b"ERR ") and reply.endswith(b"\n"), reply

    def case_silent(self) -> None:
        if len(self.silent) < 8:  # held open to the end: the coordinator must time them out
            self.silent.append(socket.create_connection(("127.0.0.1", self.port), timeout=10))

    def case_slow(self) -> None:
        text = self.text()
        data = self.rng.choice([f"MSEND a {text}\n".encode(), self.mutated()[:30] + b"\n"])
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            for i in range(len(data)):
                sock.send(data[i : i + 1])
                time.sleep(0.002)
            reply = sock.recv(4096)
            while reply and not reply.endswith(b"\n"):
                reply += sock.recv(4096)
        assert answered(reply), (data, reply)
        if data.startswith(b"MSEND a "):
            self.accepted.append(int(reply.split()[1]))

    def case_out_of_order(self) -> None:
        pid = f"o{self.rng.randrange(10**6)}"
        assert self.line(f"RECONNECT {pid} 127.0.0.1 {self.sink}".encode()).startswith(b"ERR ")
        assert self.line(f"DISCONNECT {pid}".encode()).startswith(b"ERR ")
        assert self.line(f"REGISTER a 127.0.0.1 {self.sink}".encode()).startswith(b"ERR ")
        assert self.line(f"RECONNECT b 127.0.0.1 {self.sink}".encode()).startswith(b"ERR ")
        ok(self.port, f"REGISTER {pid} 127.0.0.1 {self.sink}")
        ok(self.port, f"DISCONNECT {pid}")
        assert self.line(f"DISCONNECT {pid}".encode()).startswith(b"ERR ")
        ok(self.port, f"DEREGISTER {pid}")
        assert self.line(f"DEREGISTER {pid}".encode()).startswith(b"ERR ")

    def case_valid(self) -> None:
        sender = self.rng.choice(["a", "b"])
        reply = ok(self.port, f"MSEND {sender} {self.text()}")
        self.accepted.append(int(reply.split()[1]))

    def case_fuzz_member(self) -> None:
        verb = self.rng.choice(["REGISTER", "RECONNECT", "DISCONNECT", "DEREGISTER", "MSEND"])
        pid = self.fid()
        port = self.rng.choice([self.sink, self.dead])
        line = {
            "REGISTER": f"REGISTER {pid} 127.0.0.1 {port}",
            "RECONNECT": f"RECONNECT {pid} 127.0.0.1 {port}",
            "MSEND": f"MSEND {pid} {self.text()}",
        }.get(verb, f"{verb} {pid}")
        reply = self.line(line.encode())
        if verb == "MSEND" and reply.startswith(b"OK"):
            self.accepted.append(int(reply.split()[1]))

    def run(self, cases: int) -> None:
        weighted: list[tuple[Callable[[], None], int]] = [
            (self.case_valid, 25),
            (self.case_garbage, 12),
            (self.case_mutated, 15),
            (self.case_number, 8),
            (self.case_huge_number, 3),
            (self.case_long, 3),
            (self.case_truncated, 5),
            (self.case_silent, 2),
            (self.case_slow, 2),
            (self.case_out_of_order, 3),
            (self.case_fuzz_member, 12),
        ]
        funcs = [f for f, _ in weighted]
        weights = [w for _, w in weighted]
        for _ in range(cases):
            case = self.rng.choices(funcs, weights)[0]
            self.counts[case.__name__] = self.counts.get(case.__name__, 0) + 1
            case()


@pytest.mark.process
def test_fuzz_reference_coordinator(procs: ProcessGroup, tmp_path: Path) -> None:
    proc, port = start_coordinator(procs, tmp_path, 60.0)
    a, b, sink = ThreadB(), ThreadB(), ThreadB()
    fuzz = Fuzz(port, random.Random(SEED), sink.port, free_port())
    started = time.monotonic()
    try:
        ok(port, f"REGISTER a 127.0.0.1 {a.port}")
        ok(port, f"REGISTER b 127.0.0.1 {b.port}")
        fuzz.run(CASES)
        assert proc.popen.poll() is None, "the coordinator exited"
        for sock in fuzz.silent:  # each silent client is refused once the request timeout ends
            sock.settimeout(10)
            reply = sock.recv(4096)
            assert reply.startswith(b"ERR "), reply
            sock.close()
        accepted = sorted(fuzz.accepted)
        assert len(set(accepted)) == len(accepted)
        for member in (a, b):
            wait_until(
                lambda m=member: set(accepted) <= set(m.seqs()), 20, "every accepted message"
            )
            got = member.seqs()
            assert got == sorted(set(got)), "delivered in order, each once"
        assert proc.popen.poll() is None, "the coordinator exited"
    finally:
        a.close()
        b.close()
        sink.close()
        for sock in fuzz.silent:
            sock.close()
    log = (tmp_path / "coordinator.out").read_text(errors="replace")
    assert "Traceback" not in log, log[log.find("Traceback") :][:3000]
    elapsed = time.monotonic() - started
    print(
        f"\nfuzz: {CASES} cases tried (seed {SEED}, PAMS_FUZZ_CASES/PAMS_FUZZ_SEED), "
        f"{len(accepted)} messages delivered to both members, {elapsed:.1f} s; {fuzz.counts}"
    )
