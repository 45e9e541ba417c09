"""Where a batch runs, bound as late as the flow allows: the :class:`Dispatcher`.

Every backend that queues batches on this side (process and remote workers,
executors, mixed pools) keeps them in one :class:`Dispatcher`, which binds
each to a *place* when one has room:

* a **place** is where a batch can be bound: one worker process, one remote
  connection, one part of a mixed pool, an executor as a whole;
* its **room** is how many more batches it may hold now: for a worker, the
  prefetch depth (one running, one queued so it never waits a round trip)
  less what it holds, and none while it runs a tasklet its consumer
  abandoned (``skip=True``); for an executor, what its workers can start;
* a batch goes to the place with the most room among those that may run it
  (:meth:`Place.eligible`: every place for now; functional dependencies
  restrict it), in the order of :func:`take_next`;
* when nothing is queued and a place idles, a batch that a busy place holds
  but has not started is taken back (:meth:`Place.take_back`) and bound to
  the idle one: no batch waits behind a slow or stuck one while a worker
  idles (work stealing). Places whose batches cannot be taken back say so.

The backend owns its lock; the dispatcher is always called with it held and
never blocks (binding a batch only queues it for sending).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import Any, Protocol

__all__ = ["Dispatcher", "Place", "take_next"]


def take_next(pending: Any, depth_order: int, fits: Callable[[Any], bool] | None = None) -> Any:
    """Remove and return the next queued batch to run from the deque
    ``pending``: the oldest (``depth_order`` 0); with ``depth_order`` 1, the
    oldest of the latest task (tasks consume earlier ones: items finish
    their chain sooner, first results come sooner); with -1, the oldest of
    the earliest task (the longest chain of work left goes first). Only
    batches that ``fits`` accepts are candidates; None if none is."""
    if fits is None and (not depth_order or len(pending) == 1):
        return pending.popleft()
    candidates = [i for i in range(len(pending)) if fits is None or fits(pending[i])]
    if not candidates:
        return None
    best = max(candidates, key=lambda i: (depth_order * pending[i].task.id, -i))
    batch = pending[best]
    del pending[best]
    return batch


class Place(Protocol):
    """What the dispatcher asks of a place (a backend implements these for
    its own kind of place; see the module docstring)."""

    def room(self) -> int:
        """Batches it may take now."""

    def idle(self) -> bool:
        """It holds nothing: a batch taken back elsewhere would start here at once."""

    def eligible(self, batch: Any) -> bool:
        """``batch`` may run here."""

    def bind(self, batch: Any) -> None:
        """Hold ``batch`` and queue it for sending (must not block)."""

    def take_back(self) -> bool:
        """Give back the batches it holds but has not started (those that
        can be taken back at once go to :meth:`Dispatcher.requeue`); True if
        any was."""


class Dispatcher:
    """Queued batches and the late binding of each to a place.

    Args:
        places: returns the places in order of preference on a tie.
        order: returns the ``depth_order`` of :func:`take_next` in force.
        steal: take back batches not started for a place that idles.
    """

    def __init__(self, places: Callable[[], Iterable[Place]],
                 order: Callable[[], int] = lambda: 0, steal: bool = False) -> None:
        self.pending: collections.deque = collections.deque()
        self._places = places
        self._order = order
        self._steal = steal

    def __len__(self) -> int:
        return len(self.pending)

    def put(self, batch: Any) -> None:
        """Queue ``batch`` last."""
        self.pending.append(batch)

    def requeue(self, batch: Any) -> None:
        """Queue ``batch`` first (it was taken back, or its worker died before
        it started it): it was drawn before anything queued now."""
        self.pending.appendleft(batch)

    def requeue_all(self, batches: list) -> None:
        """:meth:`requeue` each of ``batches``, keeping their order."""
        self.pending.extendleft(reversed(batches))

    def clear(self) -> list:
        """Remove and return every queued batch."""
        batches = list(self.pending)
        self.pending.clear()
        return batches

    def dispatch(self, limit: int | None = None) -> int:
        """Bind queued batches to places with room; then, with nothing
        queued, take back batches not started for places that idle and bind
        them. At most ``limit`` batches (None: as many as fit). Returns how
        many were bound."""
        bound = 0
        while limit is None or bound < limit:
            if not self.pending and not (self._steal and self._take_back_for_idle()):
                return bound
            best = None
            most = 0
            for place in self._places():
                room = place.room()
                if room > most:
                    best, most = place, room
            if best is None:
                return bound
            batch = take_next(self.pending, self._order(), best.eligible)
            if batch is None:   # nothing queued may run there
                return bound
            best.bind(batch)
            bound += 1
        return bound

    def _take_back_for_idle(self) -> bool:
        places = list(self._places())
        if not any(p.idle() and p.room() > 0 for p in places):
            return False
        return any(p.take_back() for p in places if not p.idle())
