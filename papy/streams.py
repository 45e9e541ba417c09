"""Iterators that wire pipers together: tee (branches), split (spawn), inboxes.

Each of them may be drawn by the feeder thread of an IMap, so the shared ones
(``Tee``, ``Split``) are thread-safe; none holds a lock while it waits for an
upstream item.

**Branch lag bound.** A :class:`Tee` gives each of its branches every item of
its source. Items fetched for one branch wait in the queues of the others;
no queue ever holds more than ``maxlag`` items (default
:data:`BRANCH_LAG`): a branch that would have to fetch further ahead raises a
:class:`~papy.errors.PiperError` naming the lagging branch instead of
buffering without limit. The :class:`~papy.plumber.Plumber`, which pulls its
outputs round-robin a stride at a time, keeps branches of equal item counts
within a few strides of each other.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import PiperError

BRANCH_LAG = 1024


class _Shared:
    """An iterator shared by several readers, each with its own queue."""

    def __init__(self, source: Iterable[Any], n: int) -> None:
        self.source = iter(source)
        self.queues = [collections.deque() for _ in range(n)]
        self.cond = threading.Condition()
        self.fetching = False
        self.done = False

    def _route(self, item: Any, reader: int) -> bool:
        """File ``item`` fetched by ``reader``; True if the reader keeps it."""
        raise NotImplementedError

    def _check(self, reader: int) -> None:
        """Raise if ``reader`` may not fetch now."""

    def next(self, reader: int) -> Any:
        queue = self.queues[reader]
        while True:
            with self.cond:
                while True:
                    if queue:
                        return queue.popleft()
                    if self.done:
                        raise StopIteration
                    if not self.fetching:
                        break
                    self.cond.wait()
                self._check(reader)
                self.fetching = True
            try:
                item = next(self.source)
            except StopIteration:
                with self.cond:
                    self.done = True
                    self.fetching = False
                    self.cond.notify_all()
                raise
            except BaseException:
                with self.cond:
                    self.fetching = False
                    self.cond.notify_all()
                raise
            with self.cond:
                self.fetching = False
                keep = self._route(item, reader)
                self.cond.notify_all()
            if keep:
                return item


class _Reader:
    def __init__(self, shared: _Shared, index: int) -> None:
        self.shared = shared
        self.index = index

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self.shared.next(self.index)


class Tee(_Shared):
    """Every item of ``source`` to each of ``n`` branches (bounded lag)."""

    def __init__(self, source: Iterable[Any], n: int, maxlag: int = BRANCH_LAG,
                 name: str = "") -> None:
        super().__init__(source, n)
        self.maxlag = maxlag
        self.name = name

    def branches(self) -> list[_Reader]:
        return [_Reader(self, i) for i in range(len(self.queues))]

    def _check(self, reader: int) -> None:
        for i, queue in enumerate(self.queues):
            if i != reader and len(queue) >= self.maxlag:
                raise PiperError(
                    f"branch {i} of piper {self.name!r} is {len(queue)} items behind branch "
                    f"{reader}, the most a branch may lag (maxlag={self.maxlag}); consume "
                    f"the branches in turn (the Plumber does) or balance their "
                    f"consume/produce")

    def _route(self, item: Any, reader: int) -> bool:
        for i, queue in enumerate(self.queues):
            if i != reader:
                queue.append(item)
        return True


class Split(_Shared):
    """Items of ``source`` dealt round-robin to ``n`` parts (item i to part i % n)."""

    def __init__(self, source: Iterable[Any], n: int) -> None:
        super().__init__(source, n)
        self.dealt = 0

    def parts(self) -> list[_Reader]:
        return [_Reader(self, i) for i in range(len(self.queues))]

    def _route(self, item: Any, reader: int) -> bool:
        target = self.dealt % len(self.queues)
        self.dealt += 1
        if target == reader:
            return True
        self.queues[target].append(item)
        return False


def inboxes(inputs: list[Iterable[Any]], consume: int, counter: list,
            gate: threading.Event | None = None) -> Iterator[tuple]:
    """Zip the inputs into inboxes; group ``consume`` of them into one.

    One inbox is a tuple with one element per input. With ``consume=n`` one
    inbox holds, per input, a tuple of the next n items of that input (fewer
    at the very end). ``counter[0]`` counts the items (zipped tuples) drawn.
    Nothing is drawn before ``gate`` is set (every IMap of the pipeline started).
    """
    if gate is not None:
        gate.wait()
    zipped = zip(*inputs, strict=False)
    if consume == 1:
        for inbox in zipped:
            counter[0] += 1
            yield inbox
        return
    while True:
        group = []
        for inbox in zipped:
            counter[0] += 1
            group.append(inbox)
            if len(group) == consume:
                break
        if not group:
            return
        yield tuple(tuple(g[i] for g in group) for i in range(len(inputs)))
        if len(group) < consume:
            return
