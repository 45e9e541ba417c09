"""Per-task result buffers.

A result is filed as the value itself, or, for an error, as a
:class:`Failure` holding the exception. Every value holds one of the IMap's
buffer slots until it is taken; a Failure says whether it holds one (an
error standing in for a skipped upstream result does not). Every method here
is called with the engine's lock held.

A value that is :data:`imap.DROP` (the function dropped its item) is not
filed: its index becomes a *gap* that ordered hand-out steps over, and
``put_many`` counts it among the results whose slots the caller frees at
once.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..drop import DROP, has_drop


class Failure:
    """An error in place of a result."""

    __slots__ = ("exc", "slot")

    def __init__(self, exc: BaseException, slot: bool = True) -> None:
        self.exc = exc
        self.slot = slot

    def __repr__(self) -> str:
        return f"Failure({self.exc!r}, slot={self.slot})"


Outcome = Any  # a value, or a Failure


class ResultBuffer:
    """Results of one task between their arrival and their consumption.

    Results are kept as *runs*: the values of consecutive indices, as a batch
    brought them. Ordered buffers hand runs out by index (0, 1, 2, ...),
    unordered ones in arrival order. A skipped index is remembered until its
    late result arrives, which is then dropped (``put_many`` returns how many
    it dropped so the caller frees their slots). A value that is
    :data:`~imap.DROP` is not filed either (ordered: its index is a gap the
    hand-out steps over) and counts among those ``put_many`` returns.
    """

    __slots__ = (
        "ordered", "_runs", "_cur", "_pos", "_cur_start", "next_index", "count",
        "skipped", "released", "outstanding", "arrived", "taken", "dropped", "nskipped", "trail",
        "_gaps", "_gap_ends", "ndropped",
    )

    def __init__(self, ordered: bool) -> None:
        self.ordered = ordered
        # ordered: {first index: values}; unordered: deque of (first index, values)
        self._runs: Any = {} if ordered else deque()
        self._cur: list = []          # the run being handed out
        self._pos = 0                 # position in it
        self._cur_start = 0           # index of its first value
        self.next_index = 0           # ordered: the index handed out next
        self.count = 0                # results waiting to be taken
        self.skipped: set[int] = set()
        # Skipped indices whose slot was given back when they were skipped
        # (a tasklet on its way, abandoned): its late result frees nothing.
        self.released: set[int] = set()
        self.outstanding: set[int] = set()  # unordered: drawn, not arrived, not skipped
        self.arrived = 0
        self.taken = 0
        self.dropped = 0              # late results of skipped indices, discarded
        self.nskipped = 0
        # With a journal (imap.journal): the index of every result handed
        # out (taken or skipped), in the order handed out; None otherwise.
        self.trail: Any = None
        self._gaps: dict[int, int] = {}   # ordered: first dropped index -> index after
        self._gap_ends: dict[int, int] = {}   # the same gaps: index after -> first
        self.ndropped = 0             # results the function dropped (imap.DROP)

    def __len__(self) -> int:
        return self.count

    def note_drawn(self, indices: Any) -> None:
        """Record newly drawn indices (needed to skip in unordered mode)."""
        if not self.ordered:
            skipped = self.skipped
            self.outstanding.update(i for i in indices if i not in skipped)

    def _add_run(self, first: int, values: list) -> None:
        self.count += len(values)
        if self.ordered:
            self._runs[first] = values
        else:
            self._runs.append((first, values))

    def put_many(self, indices: Any, values: list) -> int:
        """File a batch's results (values or Failures); return how many were
        dropped because their index had been skipped."""
        n = len(values)
        self.arrived += n
        if not self.ordered:
            self.outstanding.difference_update(indices)
        contiguous = isinstance(indices, range) and indices.step == 1
        drops = has_drop(values)
        if contiguous and not self.skipped and not drops:
            if n:
                self._add_run(indices.start, values)
            return 0
        # Slow path: drop skipped indices and DROP values, split into
        # contiguous runs.
        dropped = gone = 0
        first = None
        run: list = []
        prev = None
        for index, value in zip(indices, values, strict=True):
            if index in self.skipped:
                self.skipped.discard(index)
                self.dropped += 1
                if index in self.released:
                    self.released.discard(index)   # its slot went back at the skip
                else:
                    dropped += 1
                continue
            if value is DROP:
                gone += 1
                if self.ordered:
                    self._gap(index)
                continue
            if run and index != prev + 1:
                self._add_run(first, run)
                run = []
            if not run:
                first = index
            run.append(value)
            prev = index
        if run:
            self._add_run(first, run)
        self.ndropped += gone
        return dropped + gone

    def _gap(self, index: int) -> None:
        """Note that ``index`` has no result (ordered): hand-out steps over it."""
        gaps, ends = self._gaps, self._gap_ends
        end = index + 1
        if end in gaps:              # join the gap that follows
            end = gaps.pop(end)
            del ends[end]
        start = ends.pop(index, index)   # ... and the one that precedes
        gaps[start] = end
        ends[end] = start

    def _step_gaps(self) -> None:
        """Ordered: move ``next_index`` past the gaps at it."""
        gaps = self._gaps
        while gaps:
            end = gaps.pop(self.next_index, None)
            if end is None:
                return
            del self._gap_ends[end]
            self.next_index = end

    def put(self, index: int, outcome: Outcome) -> bool:
        """File one result; False if it was skipped and is dropped."""
        return not self.put_many((index,), [outcome])

    def _current(self) -> bool:
        """Make sure the current run has a value left; False if none is ready."""
        if self._pos < len(self._cur):
            return True
        if self.ordered:
            if self._gaps:
                self._step_gaps()
            run = self._runs.pop(self.next_index, None)
            if run is None:
                return False
            self._cur_start = self.next_index
        else:
            if not self._runs:
                return False
            self._cur_start, run = self._runs.popleft()
        self._cur = run
        self._pos = 0
        return True

    def has_next(self) -> bool:
        return self._current()

    def pop(self) -> tuple[int, Outcome]:
        """Take the next result (call only when ``has_next()``)."""
        self._current()
        pos = self._pos
        value = self._cur[pos]
        self._pos = pos + 1
        index = self._cur_start + pos
        if self.ordered:
            self.next_index = index + 1
        self.count -= 1
        self.taken += 1
        if self.trail is not None:
            self.trail.append(index)
        return index, value

    def grab(self, limit: int) -> list:
        """Take up to ``limit`` next results that are values (no Failure)."""
        if not self._current():
            return []
        pos = self._pos
        out = self._cur[pos:pos + limit]
        for i, value in enumerate(out):
            if type(value) is Failure:
                del out[i:]
                break
        n = len(out)
        if self.trail is not None:
            first = self._cur_start + pos
            self.trail.extend(range(first, first + n))
        self._pos = pos + n
        if self.ordered:
            self.next_index += n
        self.count -= n
        self.taken += n
        return out

    def awaited_index(self, drawn: int) -> int:
        """The index :meth:`skip` would abandon now (nothing changes but
        stepping over the gaps of dropped results)."""
        if self.ordered:
            if self._gaps:
                self._step_gaps()
            return self.next_index
        if self.outstanding:
            return min(self.outstanding)
        index = drawn
        while index in self.skipped:
            index += 1
        return index

    def skip(self, drawn: int) -> int:
        """Abandon the result that would be handed out next; return its index."""
        if self.ordered:
            if self._gaps:
                self._step_gaps()
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
        if self.trail is not None:
            self.trail.append(index)
        return index

    def awaited(self, drawn: int) -> bool:
        """Whether the result to hand out next is of a tasklet drawn already
        (of ``drawn``): one that is on its way, not one still to be drawn."""
        if self.ordered:
            if self._gaps:
                self._step_gaps()
            return self.next_index < drawn
        return bool(self.outstanding)

    def exhausted(self, drawn: int) -> bool:
        """True when, the input being exhausted at ``drawn`` tasklets, no
        result is left to hand out."""
        if self.count:
            return False
        if self.ordered:
            if self._gaps:
                self._step_gaps()
            return self.next_index >= drawn
        return not self.outstanding
