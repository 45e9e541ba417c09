"""Per-task result buffers.

A result is filed as an *outcome*: a tuple ``(ok, value, slot)`` where ``ok``
says whether ``value`` is a return value or an exception, and ``slot`` whether
the outcome holds one of the IMap's buffer slots (it gives it back when it is
taken). Every method here is called with the engine's lock held.
"""

from __future__ import annotations

from collections import deque
from typing import Any

Outcome = tuple  # (ok: bool, value: Any, slot: bool)


class ResultBuffer:
    """Results of one task between their arrival and their consumption.

    Ordered buffers hand results out by index (0, 1, 2, ...); unordered ones in
    arrival order. A skipped index is remembered until its late result arrives,
    which is then dropped (``put`` returns False so the caller frees its slot).
    """

    __slots__ = (
        "ordered", "_ready", "next_index", "skipped", "outstanding",
        "arrived", "taken", "dropped", "nskipped",
    )

    def __init__(self, ordered: bool) -> None:
        self.ordered = ordered
        self._ready: Any = {} if ordered else deque()
        self.next_index = 0          # ordered: the index handed out next
        self.skipped: set[int] = set()
        self.outstanding: set[int] = set()  # unordered: drawn, not arrived, not skipped
        self.arrived = 0
        self.taken = 0
        self.dropped = 0
        self.nskipped = 0

    def __len__(self) -> int:
        return len(self._ready)

    def note_drawn(self, indices: range | list[int]) -> None:
        """Record newly drawn indices (needed to skip in unordered mode)."""
        if not self.ordered:
            skipped = self.skipped
            self.outstanding.update(i for i in indices if i not in skipped)

    def put(self, index: int, outcome: Outcome) -> bool:
        """File an arrived outcome; False if it was skipped and is dropped."""
        self.arrived += 1
        if self.skipped and index in self.skipped:
            self.skipped.discard(index)
            self.dropped += 1
            return False
        if self.ordered:
            self._ready[index] = outcome
        else:
            self.outstanding.discard(index)
            self._ready.append((index, outcome))
        return True

    def has_next(self) -> bool:
        if self.ordered:
            return self.next_index in self._ready
        return bool(self._ready)

    def pop(self) -> tuple[int, Outcome]:
        """Take the next result (call only when ``has_next()``)."""
        self.taken += 1
        if self.ordered:
            index = self.next_index
            self.next_index += 1
            return index, self._ready.pop(index)
        return self._ready.popleft()

    def skip(self, drawn: int) -> int:
        """Abandon the result that would be handed out next; return its index."""
        if self.ordered:
            index = self.next_index
            self.next_index += 1
        elif self.outstanding:
            index = min(self.outstanding)
            self.outstanding.discard(index)
        else:
            index = drawn
            while index in self.skipped:
                index += 1
        self.skipped.add(index)
        self.nskipped += 1
        return index

    def exhausted(self, drawn: int) -> bool:
        """True when, the input being exhausted at ``drawn`` tasklets, no
        result is left to hand out."""
        if self.ordered:
            return self.next_index >= drawn and self.next_index not in self._ready
        return not self._ready and not self.outstanding
