"""The coordinator's message store: an append-only run of messages in sequence order.

Pure data structure (no I/O, no clock): stamps are given by the caller, old messages are dropped
from the front, and lookups by sequence number or by stamp are O(1) and O(log n).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    """One multicast message: global sequence number, coordinator receive stamp, sender, text."""

    seq: int
    stamp: float
    sender: str
    text: str


_GONE = Message(0, 0.0, "", "")  # stands in for a dropped message until the list is compacted


class MessageStore:
    """Messages `first_seq .. next_seq - 1` (contiguous seqs, non-decreasing stamps) in order.

    A dropped message is released at once (its slot points to a shared placeholder); only the
    list of slots is compacted in batches, so what is held is bounded by what is retained."""

    _COMPACT_MIN = 4096

    def __init__(self) -> None:
        self._msgs: list[Message] = []
        self._before: list[int] = []  # _before[i]: text bytes of every message appended before i
        self._head = 0  # index of the oldest retained message in _msgs
        self._next_seq = 1
        self._total = 0  # text bytes of every message ever appended

    def __len__(self) -> int:
        return len(self._msgs) - self._head

    @property
    def next_seq(self) -> int:
        """The sequence number the next appended message gets."""
        return self._next_seq

    @property
    def first_seq(self) -> int:
        """Sequence number of the oldest retained message (`next_seq` when the store is empty)."""
        return self._next_seq - len(self)

    def append(self, stamp: float, sender: str, text: str) -> Message:
        """Store a new message; a stamp below the previous one is raised to it (no decrease)."""
        if len(self):
            stamp = max(stamp, self._msgs[-1].stamp)
        msg = Message(self._next_seq, stamp, sender, text)
        self._msgs.append(msg)
        self._before.append(self._total)
        self._total += len(text)
        self._next_seq += 1
        return msg

    def bytes_since(self, seq: int) -> int:
        """Total text bytes of the retained messages with sequence number >= `seq`."""
        start = self._head + max(seq - self.first_seq, 0)
        return self._total - self._before[start] if start < len(self._msgs) else 0

    def since(self, seq: int, limit: int) -> list[Message]:
        """Up to `limit` retained messages with sequence number >= `seq`, in order."""
        start = self._head + max(seq - self.first_seq, 0)
        return self._msgs[start : start + limit]

    def first_seq_stamped_from(self, stamp: float) -> int:
        """Sequence number of the oldest retained message stamped at or after `stamp`."""
        lo, hi = self._head, len(self._msgs)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._msgs[mid].stamp < stamp:
                lo = mid + 1
            else:
                hi = mid
        return self.first_seq + (lo - self._head)

    def drop_before(self, seq: int) -> int:
        """Forget every message with sequence number < `seq`; return how many were dropped."""
        count = min(max(seq - self.first_seq, 0), len(self))
        for index in range(self._head, self._head + count):
            self._msgs[index] = _GONE  # free the text now, not at the next compaction
        self._head += count
        if self._head >= self._COMPACT_MIN and self._head * 2 >= len(self._msgs):
            del self._msgs[: self._head]
            del self._before[: self._head]
            self._head = 0
        return count
