"""Delivery-order report (docs/rules.md: reported, never a violation): FIFO per sender and
total order across participants, judged on each participant's first delivery of each message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

EXAMPLES = 5
PAIR_BUDGET = 20_000_000


@dataclass(frozen=True)
class OrderReport:
    """FIFO: deliveries of a message after a later-sent one from the same sender (windows
    disjoint). Total order: participant pairs that saw two common messages in opposite orders.
    `complete` is False when the pairwise scan stopped at its work budget."""

    fifo_count: int = 0
    fifo_examples: tuple[str, ...] = ()
    total_pairs: int = 0
    total_examples: tuple[str, ...] = ()
    pairs_checked: int = 0
    complete: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "fifo": {"violations": self.fifo_count, "examples": list(self.fifo_examples)},
            "total_order": {
                "disagreeing_pairs": self.total_pairs,
                "pairs_checked": self.pairs_checked,
                "complete": self.complete,
                "examples": list(self.total_examples),
            },
        }

    def summary_lines(self) -> list[str]:
        fifo = f"order (not a rule): FIFO per sender: {self.fifo_count} out-of-order deliveries"
        total = (
            f"order (not a rule): total order: {self.total_pairs} of {self.pairs_checked} "
            "participant pairs disagree" + ("" if self.complete else " (scan stopped at budget)")
        )
        lines = [fifo] + [f"  e.g. {e}" for e in self.fifo_examples[:2]]
        lines.append(total)
        lines.extend(f"  e.g. {e}" for e in self.total_examples[:2])
        return lines


def _fifo(
    sequences: Mapping[str, Sequence[str]], windows: Mapping[str, tuple[str, float, float]]
) -> tuple[int, list[str]]:
    count = 0
    examples: list[str] = []
    for p, seq in sequences.items():
        latest: dict[str, tuple[float, str]] = {}
        for m in seq:
            sender, s0, s1 = windows[m]
            seen = latest.get(sender)
            if seen is not None and seen[0] > s1:
                count += 1
                if len(examples) < EXAMPLES:
                    examples.append(
                        f"p{p} got {m} (sent by p{sender} until {s1:.3f}) after {seen[1]} "
                        f"(sent from {seen[0]:.3f})"
                    )
            if seen is None or s0 > seen[0]:
                latest[sender] = (s0, m)
    return count, examples


def _disagreement(a: Sequence[str], pos_b: Mapping[str, int]) -> tuple[str, str] | None:
    prev = ""  # returned only once a message was seen (prev_pos >= 0)
    prev_pos = -1
    for m in a:
        q = pos_b.get(m)
        if q is None:
            continue
        if q < prev_pos:
            return prev, m
        prev, prev_pos = m, q
    return None


def delivery_order(
    sequences: Mapping[str, Sequence[str]], windows: Mapping[str, tuple[str, float, float]]
) -> OrderReport:
    """Order report from each participant's first-delivery sequence and each message's
    (sender, s0, s1)."""
    fifo_count, fifo_examples = _fifo(sequences, windows)
    names = sorted(sequences)
    positions = {p: {m: i for i, m in enumerate(sequences[p])} for p in names}
    pairs = 0
    disagree = 0
    examples: list[str] = []
    work = 0
    complete = True
    for i, p in enumerate(names):
        for q in names[i + 1 :]:
            if work > PAIR_BUDGET:
                complete = False
                break
            a, b = (p, q) if len(sequences[p]) <= len(sequences[q]) else (q, p)
            work += len(sequences[a])
            pairs += 1
            found = _disagreement(sequences[a], positions[b])
            if found is not None:
                disagree += 1
                if len(examples) < EXAMPLES:
                    examples.append(f"p{a} got {found[0]} before {found[1]}, p{b} the reverse")
    return OrderReport(fifo_count, tuple(fifo_examples), disagree, tuple(examples), pairs, complete)
