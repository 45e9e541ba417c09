"""Where a batch runs, bound as late as the flow allows: the :class:`Dispatcher`.

Every backend keeps the batches it queues on this side in one
:class:`Dispatcher` (worker threads, processes and remote workers,
executors and Dask clusters, mixed pools), which binds each to a *place*
when one has room:

* a **place** is where a batch can be bound: one worker process, one remote
  connection, one part of a mixed pool, an executor (a Dask cluster) as a
  whole, the worker threads as a whole;
* its **room** is how many more batches it may hold now: for a worker, the
  prefetch depth (one running, one queued so it never waits a round trip)
  less what it holds, and none while it runs a tasklet its consumer
  abandoned (``skip=True``); for an executor, what its workers can start;
* a batch goes to the place with the most room among those that may run it,
  in the order of :func:`take_next`; a place may run every batch unless it
  refused the batch's task (functional dependencies, :mod:`imap.depends`:
  the function's dependency is unmet there) or the batch's tasklets (the
  function raised ``imap.UnmetDependency`` for them there);
* when nothing is queued and a place idles, a batch that a busy place holds
  but has not started is taken back (:meth:`Place.take_back`) and bound to
  the idle one: no batch waits behind a slow or stuck one while a worker
  idles (work stealing). Places whose batches cannot be taken back say so.

A place whose workers take their batches themselves, each as it frees up
(the worker threads: nothing travels, so nothing is bound ahead of time),
calls :meth:`Dispatcher.take` instead: it gets the next batch it may run,
in the same order, and is never bound one (it needs only ``alive`` and
``name``).

Refusals (:meth:`Dispatcher.answered`): tasklets a place refused go back to
the queue for the others, and the place is remembered as refusing (the whole
task, when the function's dependency check failed there; else those
tasklets). A queued batch that no live place may run, while no worker is on
its way to join (:meth:`Dispatcher.impossible`), fails with
``imap.ImpossibleDependency``, tasklet by tasklet: built by
:func:`refusal_errors`, the one place these errors are made.

The backend owns its lock; the dispatcher is always called with it held and
never blocks (binding a batch only queues it for sending).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..depends import describe
from ..errors import ImpossibleDependency, UnmetDependency, impossible

__all__ = ["Dispatcher", "Place", "refusal_errors", "take_next"]


def take_next(pending: Any, depth_order: int, fits: Callable[[Any], bool] | None = None) -> Any:
    """Remove and return the next queued batch to run from the deque
    ``pending``: the oldest (``depth_order`` 0); with ``depth_order`` 1, the
    oldest of the latest task (tasks consume earlier ones: items finish
    their chain sooner, first results come sooner); with -1, the oldest of
    the earliest task (the longest chain of work left goes first). Only
    batches that ``fits`` accepts are candidates; None if none is."""
    if fits is None and (not depth_order or len(pending) == 1):
        return pending.popleft()
    best = key = None   # one pass: the first of the best (a worker takes one per batch)
    for i, batch in enumerate(pending):
        if fits is not None and not fits(batch):
            continue
        if best is None or depth_order * batch.task.id > key:
            best, key = i, depth_order * batch.task.id
    if best is None:
        return None
    if best == 0:
        return pending.popleft()
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

    alive: Any
    """Whether it can run batches now (a worker alive, an executor not broken)."""

    def bind(self, batch: Any) -> None:
        """Hold ``batch`` and queue it for sending (must not block)."""

    def take_back(self, fits: Callable[[Any], bool] | None = None) -> bool:
        """Give back the batches it holds but has not started (only those
        ``fits`` accepts, if given); those that can be taken back at once go
        to :meth:`Dispatcher.requeue`. True if any was."""


class Dispatcher:
    """Queued batches and the late binding of each to a place.

    Args:
        places: returns the places in order of preference on a tie.
        order: returns the ``depth_order`` of :func:`take_next` in force.
        steal: take back batches not started for a place that idles.
        joining: whether a worker is on its way to join (a remote host
            reconnecting, a process being replaced): batches that no live
            place may run wait for it instead of failing.
    """

    def __init__(self, places: Callable[[], Iterable[Place]],
                 order: Callable[[], int] = lambda: 0, steal: bool = False,
                 joining: Callable[[], bool] = lambda: False) -> None:
        self.pending: collections.deque = collections.deque()
        self._places = places
        self._order = order
        self._steal = steal
        self._joining = joining
        # task key -> {place: why it refused the task}: places where the
        # function's dependency is unmet (a place object, or the name of a
        # worker inside one, such as a Dask worker's address).
        self.refused: dict = {}
        self._by_hand = False   # a tasklet was refused on its own (batch.refused_by)

    def __len__(self) -> int:
        return len(self.pending)

    def put(self, batch: Any) -> None:
        """Queue ``batch`` last."""
        batch.queue()
        self.pending.append(batch)

    def put_queued(self, batch: Any) -> None:
        """Queue ``batch`` last, which its backend marked queued already: it
        took it in without its lock, and hands it over now, holding it (the
        worker threads' arrivals)."""
        self.pending.append(batch)

    def requeue(self, batch: Any) -> None:
        """Queue ``batch`` first (it was taken back, or its worker died before
        it started it): it was drawn before anything queued now."""
        batch.queue()
        self.pending.appendleft(batch)

    def requeue_all(self, batches: list) -> None:
        """:meth:`requeue` each of ``batches``, keeping their order."""
        for batch in batches:
            batch.queue()
        self.pending.extendleft(reversed(batches))

    def take(self, place: Any) -> Any:
        """Remove and return the next queued batch that ``place`` may run,
        in the order of :func:`take_next` (None if there is none): for a
        place whose workers take their batches themselves (see the module
        docstring). The batch stays queued in name: the worker that takes
        it starts it."""
        if not self.pending:
            return None
        return take_next(self.pending, self._order(), self.fits(place))

    def take_followers(self, task: Any, room: int) -> list:
        """Remove and return the queued batches of ``task`` that may travel
        in one message with a batch of it being bound: first-time ones
        (not a rerun, not careful), oldest first, while their tasklets fit
        in ``room``. The first of the task's batches that does not fit ends
        it: none behind it joins (the order of the queue is kept)."""
        taken: list = []
        kept: collections.deque = collections.deque()
        for batch in self.pending:
            if batch.task is task and room > 0:
                if len(batch) > room or batch.attempt or batch.careful:
                    room = 0   # the next in line does not join: none after it does
                else:
                    taken.append(batch)
                    room -= len(batch)
                    continue
            kept.append(batch)
        self.pending = kept
        return taken

    def clear(self) -> list:
        """Remove and return every queued batch (withdrawn: at no place)."""
        batches = list(self.pending)
        self.pending.clear()
        for batch in batches:
            batch.withdraw()
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
            batch = take_next(self.pending, self._order(), self.fits(best))
            if batch is None:   # nothing queued may run there: another place, maybe
                batch, best = self._elsewhere(best)
                if batch is None:
                    return bound
            best.bind(batch)
            bound += 1
        return bound

    def _elsewhere(self, refused: Any) -> tuple:
        """The next queued batch that a place with room other than
        ``refused`` may run, and that place (the most room first)."""
        places = [p for p in self._places() if p is not refused and p.room() > 0]
        places.sort(key=lambda p: -p.room())
        for place in places:
            batch = take_next(self.pending, self._order(), self.fits(place))
            if batch is not None:
                return batch, place
        return None, None

    def fits(self, place: Any) -> Callable[[Any], bool] | None:
        """Which batches ``place`` may run (None: every one)."""
        if not self.refused and not self._by_hand:
            return None
        refused = self.refused

        def fits(batch: Any) -> bool:
            if place in refused.get(batch.task.key, ()):
                return False
            return not batch.refused_by or place not in batch.refused_by
        return fits

    def _take_back_for_idle(self) -> bool:
        places = list(self._places())
        idle = [p for p in places if p.idle() and p.room() > 0]
        if not idle:
            return False
        if not self.refused and not self._by_hand:
            return any(p.take_back() for p in places if not p.idle())
        # Only batches that an idle place may run are taken back for it.
        checks = [self.fits(p) for p in idle]

        def fits(batch: Any) -> bool:
            return any(check(batch) for check in checks)
        return any(p.take_back(fits) for p in places if not p.idle())

    # -- refusals (functional dependencies) ----------------------------------------------

    def answered(self, place: Any, batch: Any, values: list, errors: dict | None,
                 name: str | None = None) -> list:
        """Sort ``place``'s answer to ``batch`` (``values``, ``errors``: see
        the backends' ``deliver``): the tasklets it refused
        (:class:`~imap.UnmetDependency`) go back to the queue, first in line,
        and ``place`` is remembered as refusing them (the whole task, if its
        dependency check failed there); then :meth:`impossible` tells which
        no place is left to run. Returns what to deliver now: ``(batch,
        values, errors)`` triples (``batch`` keeps the tasklets not refused).
        ``name``: how messages name ``place`` (default: its ``name``)."""
        if not errors:
            return [(batch, values, errors)]
        unmet = [p for p, e in errors.items()
                 if isinstance(e, UnmetDependency) and not isinstance(e, ImpossibleDependency)]
        if not unmet:
            return [(batch, values, errors)]
        who = name or _name(place)
        whole = next((errors[p] for p in unmet if errors[p].whole), None)
        if len(unmet) == len(batch):
            back, out = batch, []
        else:
            back = batch.subset(unmet)
            kept = [p for p in range(len(batch)) if p not in set(unmet)]
            batch.keep(kept)   # the same batch is delivered: a backend may count it
            out = [(batch, [values[p] for p in kept],
                    {i: errors[p] for i, p in enumerate(kept) if p in errors} or None)]
        if whole is not None:   # the function's dependency is unmet there
            self.refuse(back, place, str(whole), who, whole=True)
        else:   # refused one by one: those tasklets only
            self.refuse(back, place, str(errors[unmet[0]]) or "UnmetDependency raised", who)
        self.requeue(back)
        return out

    def refuse(self, batch: Any, place: Any, reason: str, name: str | None = None,
               whole: bool = False) -> None:
        """Remember that ``place`` refused ``batch`` for ``reason``: its
        whole task (``whole``: the function's dependency is unmet there),
        else its tasklets only. The batch is then to be :meth:`requeue` d."""
        name = name or _name(place)
        if whole:
            self.refused.setdefault(batch.task.key, {})[place] = (name, reason)
        else:
            self._by_hand = True
        batch.refuse(place, name, reason, tasklets=not whole)

    def impossible(self) -> list:
        """Remove the queued batches that no live place may run, none being
        on its way to join; return them failed (``(batch, values, errors)``
        triples, each tasklet an :class:`~imap.ImpossibleDependency`)."""
        if not self.refused and not self._by_hand:
            return []
        live = [p for p in self._places() if p.alive]
        if not live or self._joining():
            return []   # no worker at all is the backends' own case ("no worker left")
        out = []
        for batch in list(self.pending):
            refused = self.refused.get(batch.task.key, {})
            by_hand = batch.refused_by or {}
            if any(p not in refused and p not in by_hand for p in live):
                continue
            self.pending.remove(batch)
            batch.withdraw()
            out.append((batch, [None] * len(batch), refusal_errors(batch, refused, live)))
        return out

    def may_run(self, task: Any) -> tuple[list, dict]:
        """The names of the live places that have not refused ``task``, and
        those that did -> why."""
        refused = self.refused.get(task.key, {})
        live = [_name(p) for p in self._places() if p.alive and p not in refused]
        return live, dict(refused.values())


def refusal_errors(batch: Any, refused: dict, places: Iterable | None = None) -> dict:
    """The error of each tasklet of ``batch`` that the workers of the pool
    refused: position -> :class:`~imap.ImpossibleDependency`. The one place
    these errors are built, for every backend.

    Args:
        batch: the refused batch; ``batch.refused_by`` holds the places
            that refused its tasklets one by one (each raised
            ``UnmetDependency``) -> ``(name, why)``.
        refused: the places that refused its whole task (its function's
            dependency is unmet there) -> ``(name, why)``: a dispatcher's
            ``refused[task.key]``.
        places: the places whose refusals the errors name (the live places
            of the pool); None: every place that refused, either way.

    The error names the function's dependency when one of ``places``
    refused the whole task; else the tasklets were refused one by one.
    """
    by_hand = batch.refused_by or {}
    if places is None:
        places = [*refused, *(p for p in by_hand if p not in refused)]
    places = list(places)
    reasons = dict(refused[p] if p in refused else by_hand.get(p, (_name(p), "refused"))
                   for p in places)
    task = batch.task
    text = f"task {task.id} ({task.name})"
    named = describe(task.func) if any(p in refused for p in places) else None
    return {pos: impossible(f"item {index} of {text}", named, reasons)
            for pos, index in enumerate(batch.indices)}


def _name(place: Any) -> str:
    return str(getattr(place, "name", None) or place)
