"""Iterators that wire pipers together: tee (branches), split (spawn),
relays (between IMaps), taps (the inputs of a pipeline) and inboxes.

Each of them may be drawn by the feeder thread of an IMap, so the shared ones
(``Tee``, ``Split``, ``Relay``) are thread-safe; none holds a lock while it
waits for an upstream item.

**Branch lag bound.** A :class:`Tee` gives each of its branches every item of
its source. Items fetched for one branch wait in the queues of the others; no
queue ever holds more than ``maxlag`` items (default :data:`BRANCH_LAG`). A
branch that runs that far ahead waits until the lagging branch catches up. If
the thread that would have to catch up is the waiting thread itself (one
thread reading both branches at different rates), waiting could never end:
the Tee raises a :class:`~papy.errors.PiperError` naming the lagging branch
instead.

**Relays.** The feeder thread of an IMap draws the inputs of its tasks in a
fixed order (a stride from each task in turn). When it draws the results of a
piper on *another* IMap, a fixed order can deadlock two IMaps (each waiting
for a result the other can only make after it has taken one). The
:class:`~papy.dagger.Dagger` therefore puts a :class:`Relay` after each such
piper: a thread that takes the piper's results as they come, into a queue of
at most ``maxlen`` items, so the upstream IMap's buffer never waits for the
downstream feeder's turn.

**Taps.** Each input iterable of a :class:`~papy.dagger.Dagger` is drawn
through a :class:`Tap`. A graceful stop closes the taps: the pipeline sees
the end of its input, and the items already drawn flow to the outputs as
they would at the natural end.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from imap.drop import DROP
from imap.run.waiting import wait

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

    def _blocked(self, reader: int) -> bool:
        """True if ``reader`` must wait before fetching (lock held); may raise."""
        return False

    def close(self) -> None:
        """End every reader's stream after what its queue holds (waiters wake)."""
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def _taken(self, queue: collections.deque) -> None:
        """Called after an item left ``queue`` (lock held)."""

    def next(self, reader: int) -> Any:
        queue = self.queues[reader]
        while True:
            with self.cond:
                while True:
                    if queue:
                        item = queue.popleft()
                        self._taken(queue)
                        return item
                    if self.done:
                        raise StopIteration
                    if not self.fetching and not self._blocked(reader):
                        break
                    wait(self.cond)
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
        self.readers: list[int | None] = [None] * n   # thread that last read each branch

    def branches(self) -> list[_Reader]:
        return [_Reader(self, i) for i in range(len(self.queues))]

    def _blocked(self, reader: int) -> bool:
        me = threading.get_ident()
        self.readers[reader] = me
        for i, queue in enumerate(self.queues):
            if i != reader and len(queue) >= self.maxlag:
                if self.readers[i] == me:
                    raise PiperError(
                        f"branch {i} of piper {self.name!r} is {len(queue)} items behind "
                        f"branch {reader}, the most a branch may lag (maxlag={self.maxlag}), "
                        f"and the thread reading branch {reader} is the one that reads "
                        f"branch {i}, so it would wait forever; balance the consume/produce "
                        f"of the pipers between the fork and where the branches meet")
                return True
        return False

    def _taken(self, queue: collections.deque) -> None:
        if len(queue) == self.maxlag - 1:
            self.cond.notify_all()

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


_END = object()


class Relay:
    """Take the items of ``source`` in a thread of its own, into a bounded queue.

    Iterating a Relay takes from the queue. The thread starts with
    :meth:`start` and holds at most ``maxlen`` items; an exception raised by
    ``source`` is raised to the reader in the item's place (it ends the
    stream). :meth:`close` makes the thread stop after its current item and
    the reader see the end; :meth:`join` waits for the thread.
    """

    def __init__(self, source: Iterable[Any], maxlen: int = BRANCH_LAG,
                 name: str = "") -> None:
        self.source = iter(source)
        self.maxlen = maxlen
        self.name = name
        self.queue: collections.deque = collections.deque()
        self.cond = threading.Condition()
        self.closed = False
        self.end: Any = None            # _END, or the exception that ended the source
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is None and not self.closed:
            self.thread = threading.Thread(target=self._run, daemon=True,
                                           name=f"papy-relay-{self.name}")
            self.thread.start()

    def _run(self) -> None:
        source, queue, cond, maxlen = self.source, self.queue, self.cond, self.maxlen
        while True:
            with cond:
                while len(queue) >= maxlen and not self.closed:
                    cond.wait()
                if self.closed:
                    return
            try:
                item = next(source)
            except BaseException as exc:   # the end, or an error for the reader
                with cond:
                    self.end = _END if isinstance(exc, StopIteration) else exc
                    cond.notify_all()
                return
            with cond:
                queue.append(item)
                cond.notify_all()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        queue, cond = self.queue, self.cond
        with cond:
            while True:
                if queue:
                    item = queue.popleft()
                    if len(queue) == self.maxlen - 1:
                        cond.notify_all()
                    return item
                if self.closed or self.end is _END:
                    raise StopIteration
                if self.end is not None:
                    exc, self.end = self.end, _END
                    raise exc
                wait(cond)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True if it has ended (or never started)."""
        if self.thread is not None:
            self.thread.join(timeout)
            return not self.thread.is_alive()
        return True


class Tap:
    """The input iterable of an input piper, with a valve: :meth:`close` ends it.

    After :meth:`close`, the tap ends at the next multiple of ``multiple``
    items drawn (so that every piper downstream gets whole ``consume``
    groups, as the Dagger computes), or at the end of ``source`` if that
    comes first. An item whose ``next()`` is under way when the tap closes
    is kept. One thread draws a tap at a time (the feeder of the input
    piper's IMap, or whoever pulls an inline input piper).

    The items flow through one generator, which costs a drawn item no more
    than a counter: whether a ``next()`` is under way is the generator's
    ``gi_running``, and :meth:`blocked_for` times it from the outside.
    """

    def __init__(self, source: Iterable[Any], multiple: int = 1) -> None:
        self.source = iter(source)
        self.multiple = multiple
        self.drawn = 0
        self.closed = False
        self._items = self._flow()
        self._seen: tuple[int, float] | None = None   # (drawn, first seen blocked at)

    def _flow(self) -> Iterator[Any]:
        if self.closed:
            return
        for item in self.source:
            self.drawn += 1
            yield item
            if self.closed and self.drawn % self.multiple == 0:
                return

    def __iter__(self) -> Iterator[Any]:
        return self._items

    def __next__(self) -> Any:
        return next(self._items)

    def close(self) -> None:
        self.closed = True

    def blocked_for(self) -> float:
        """Seconds the ``next()`` under way on the source has taken (0 if none).

        Counted from the first call that found this same ``next()`` under
        way, so a caller polling every *t* seconds sees it at most *t* late.
        """
        now = time.monotonic()
        if not self._items.gi_running:
            self._seen = None
            return 0.0
        if self._seen is None or self._seen[0] != self.drawn:
            self._seen = (self.drawn, now)
        return now - self._seen[1]


class Guarded:
    """An iterator that several threads may draw at once (one ``next()`` at a time).

    The Dagger guards the outboxes of its output pipers: a graceful
    :meth:`~papy.dagger.Dagger.stop` drains them while a caller's thread may
    still be reading them.
    """

    def __init__(self, source: Iterable[Any]) -> None:
        self.source = iter(source)
        self.lock = threading.Lock()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        with self.lock:
            return next(self.source)


def inboxes(inputs: list[Iterable[Any]], consume: int, counter: list,
            gate: threading.Event | None = None) -> Iterator[Any]:
    """Zip the inputs into inboxes; group ``consume`` of them into one.

    One inbox is a tuple with one element per input. With ``consume=n`` one
    evaluation gets a list of the next n inboxes (fewer at the very end),
    each of them a list with one element per input -- the shape PaPy 1.x
    handed such a function: ``[[a0], [a1]]`` for one input and n = 2.
    ``counter[0]`` counts the items (zipped tuples) drawn. Nothing is drawn
    before ``gate`` is set (every IMap of the pipeline started). With
    ``consume=n``, an inbox holding :data:`imap.DROP` (an upstream piper
    dropped the item) is left out of its group; a group of dropped items
    only is one ``(DROP,)`` inbox (the evaluation is dropped too).
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
        seen = 0
        for inbox in zipped:
            counter[0] += 1
            seen += 1
            if not any(element is DROP for element in inbox):
                group.append(list(inbox))
            if seen == consume:
                break
        if not seen:
            return
        yield group if group else (DROP,)
        if seen < consume:
            return


def gated(source: Iterable[Any], gate: threading.Event | None) -> Iterator[Any]:
    """The items of ``source`` as they are, none drawn before ``gate`` is set.

    The input of a piper's task whose items become inboxes in the worker
    (see :class:`papy.calls._Chained`).
    """
    if gate is not None:
        gate.wait()
    yield from source
