"""``Piper``: one processing node of a pipeline.

A piper evaluates its :class:`~papy.worker.Worker` on a stream of inboxes,
either *inline* (``parallel=False``: a lazy generator chain evaluated by
whoever pulls the output) or on an :class:`imap.IMap` (each piper becomes one
task, or ``spawn`` interleaved tasks, of that IMap; several pipers may share
one IMap and their tasks interleave by stride).

Data flow of one piper::

    inputs (one iterator per upstream pipe)
      └─ zip ─▶ inboxes ─▶ [consume: group n] ─▶ [spawn: split round-robin]
           ─▶ worker (inline, or IMap task(s)) ─▶ [spawn: merge round-robin]
           ─▶ errors to PiperError values ─▶ [produce: n items each] ─▶ outbox

The outbox is one iterator. A piper feeding several downstream pipers hands
each a branch of a :class:`~papy.streams.Tee` (see there for the lag bound).
In a Dagger, a piper on an IMap whose results something else than its IMap
draws gets a :class:`~papy.streams.Relay` before the Tee (see
:meth:`papy.dagger.Dagger.connect`).

This module makes a piper and connects it: it checks its options, adds its
task(s) to its IMap (or chains them to an upstream piper's inside it), and
starts, stops and disconnects it. What it hands on -- the loop that makes
the outbox from the worker's values, and the relay, branches and guard
before the outbox's readers -- is :mod:`papy.piper_outbox`, a base class of
:class:`Piper`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from imap import IMap, retry
from imap.core import RETRIES
from imap.drop import DROP

from .calls import _Call, _Chained
from .errors import PiperError
from .piper_outbox import SAMPLE_EVERY as SAMPLE_EVERY  # papy.piper.SAMPLE_EVERY, as before
from .piper_outbox import PiperOutbox
from .streams import BRANCH_LAG, Relay, Split, Tee, gated, inboxes
from .worker import Item, Worker

_numbers = itertools.count()


class Piper(PiperOutbox):
    """A node of a pipeline: a worker evaluated inline or on an IMap.

    Args:
        worker: a :class:`~papy.worker.Worker` (a callable or a sequence of
            callables is made into one).
        parallel: an :class:`imap.IMap` to evaluate on, or ``False`` (inline,
            lazily, in the thread that pulls the output).
        consume: one evaluation receives the next ``consume`` inboxes: the
            function is called with a list of them (fewer at the very end),
            each a list with one element per upstream pipe, as in PaPy 1.x:
            ``left_box, right_box = inbox`` for ``consume=2``, the items are
            ``left_box[0]`` and ``right_box[0]``.
        produce: one evaluation's result, a sequence of ``produce`` values,
            becomes ``produce`` downstream items.
        spawn: on an IMap, the piper runs as ``spawn`` interleaved tasks fed
            round-robin; their outputs are merged back in order.
        timeout: seconds to wait for one result (needs an IMap made with
            ``skip=True``); a late result becomes a ``PiperError`` in its place.
        retries: on an IMap, how many extra attempts an item gets, whatever
            the cause: its worker was lost (a process that died, a remote
            host gone), or the function raised an exception of a
            ``retry_on`` class; passed to the piper's tasks
            (``IMap.add_task(retries=...)``). Default (None): the IMap's
            default, 2, so that a worker lost once costs no item (0 for an
            inline piper, which has no worker to lose); ``retries=0`` fails
            a lost worker's items at once. Once they are spent the item
            becomes a ``PiperError`` (wrapping :class:`imap.WorkerLostError`
            or the function's exception, whose ``attempts`` says how many
            attempts were made).
        retry_on: exception classes that make an item run again (after a
            back-off, see ``IMap.add_task``); needs ``retries >= 1``. Other
            exceptions are never retried.
        branch: orders the inputs of a merge and the inputs/outputs of a
            Dagger (by ``branch``, then insertion order).
        debug: raise a ``PiperError`` instead of passing it downstream.
        name: unique label (default ``<worker name>_<n>``).
        track: keep every result in :attr:`tracked`.
        repeat: with ``produce=n``, one result is repeated n times.

    **Dropping.** A function that returns :data:`imap.DROP` drops its item:
    nothing reaches the pipeline's outputs for it (it is counted in
    ``stats["dropped"]``) and no piper downstream runs on it. Downstream
    pipers keep its place, so a merge stays aligned: a merge of two
    branches drops an item that either branch dropped (an error in the
    other branch wins: it is passed on). With ``consume=n`` a dropped item
    is left out of the group (a group of dropped items only is dropped);
    with ``produce=n`` a dropped evaluation drops its ``n`` items.
    Iterating a piper (``for x in piper``) leaves dropped items out; its
    :attr:`outbox` holds them (as ``DROP``), for the pipers it feeds.

    Extra arguments of the function belong to its Worker:
    ``Piper(Worker(times, arguments=[(10,)]))``; a Piper given ``args``,
    ``arguments`` or ``kwargs`` says so.
    """

    branch_lag = BRANCH_LAG

    def __init__(self, worker: Any, parallel: IMap | bool = False, consume: int = 1,
                 produce: int = 1, spawn: int = 1, timeout: float | None = None,
                 branch: Any = None, debug: bool = False, name: str | None = None,
                 track: bool = False, repeat: bool = False, retries: int | None = None,
                 retry_on: Any = (), **misplaced: Any) -> None:
        if misplaced:
            names = ", ".join(sorted(misplaced))
            if set(misplaced) & {"args", "arguments", "kwargs"}:
                raise TypeError(
                    f"Piper() got {names}: the extra arguments of a function belong to "
                    f"its Worker, e.g. Piper(Worker(times, arguments=[(10,)], "
                    f"kwargs=[{{'k': 1}}]), parallel=...)")
            raise TypeError(f"Piper() got unexpected keyword arguments: {names}")
        if isinstance(worker, Piper):   # PaPy 1.x: a new piper of the same worker
            worker = worker.worker
        if not isinstance(worker, Worker):
            worker = Worker(worker)
        if consume != 1 and isinstance(worker.functions[0], Item):
            raise PiperError(
                f"consume={consume} hands the function a list of {consume} inboxes, but "
                f"{worker.functions[0]!r} is for one item; give the plain function "
                f"(it gets [[item0], [item1], ...])")
        for label, value in (("consume", consume), ("produce", produce), ("spawn", spawn)):
            if not isinstance(value, int) or value < 1:
                raise PiperError(f"{label} must be an int >= 1, got {value!r}")
        if parallel is True or not (parallel is False or parallel is None
                                    or isinstance(parallel, IMap)):
            raise PiperError(f"parallel must be an IMap or False, got {parallel!r}")
        if timeout is not None:
            if not isinstance(parallel, IMap):
                raise PiperError("timeout needs parallel=IMap(..., skip=True); an inline "
                                 "piper cannot be interrupted")
            if not parallel.skip:
                raise PiperError(f"timeout needs an IMap made with skip=True; "
                                 f"{parallel.name} has skip=False")
        if retries is None:
            retries = RETRIES if isinstance(parallel, IMap) else 0
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise PiperError(f"retries must be an int >= 0, got {retries!r}")
        if retries and not isinstance(parallel, IMap):
            raise PiperError(f"retries={retries} needs parallel=IMap(...): only an item "
                             f"evaluated by an IMap's worker can be run again when that "
                             f"worker is lost; an inline piper runs in the calling thread")
        self.worker = worker
        self.imap: IMap | None = parallel or None
        self.consume = consume
        self.produce = produce
        self.spawn = spawn
        self.timeout = timeout
        self.retries = retries
        try:
            self.retry_on = retry.checked(retry_on, retries)
        except (TypeError, ValueError) as exc:
            raise PiperError(str(exc)) from None
        self.branch = branch
        self.debug = debug
        self.track = track
        self.repeat = repeat
        self.name = name or f"{worker.name}_{next(_numbers)}"
        self.tracked: list = []
        self.stats = {"in": 0, "out": 0, "errors": 0}
        self.sampled = [0.0, 0]
        self.first_error: PiperError | None = None
        self._in = [0]
        self.connected = False
        self.outbox: Iterator[Any] | None = None
        self._tasks: list = []
        self._task_ids: list[int] = []
        self._branches: list = []
        self._relay: Relay | None = None
        self._tee: Tee | None = None
        # Chained inside the IMap (see connect): the pipers upstream whose
        # tasks feed this one's, head first, and the piper this one feeds.
        self._chain: list[Piper] = []
        self._fed: Piper | None = None
        # nothing is drawn before it is set (see connect and open)
        self._gate: threading.Event | None = None

    # -- state -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once the IMap this piper runs on has started."""
        return bool(self.connected and self.imap is not None and self.imap.running)

    @property
    def task_ids(self) -> list[int]:
        """The ids of the tasks this piper runs as on its IMap (none inline):
        those of its current connection, or of its last one once disconnected
        (what the report of the last run needs)."""
        return list(self._task_ids)

    def __repr__(self) -> str:
        where = self.imap.name if self.imap is not None else "inline"
        retries = (f", retries={self.retries}"
                   if self.retries != (RETRIES if self.imap is not None else 0) else "")
        return f"Piper({self.name!r}, {where}{retries})"

    # -- wiring ------------------------------------------------------------------

    def connect(self, inputs: Iterable[Any], gate: threading.Event | None = None,
                chained: Piper | None = None, feeds: bool = False) -> None:
        """Take ``inputs`` (one iterable or upstream Piper per pipe) and set up the outbox.

        On an IMap this adds the piper's task(s); the IMap must not be started.
        A piper on an IMap draws nothing before its *gate* is set (by
        :meth:`open`); ``gate`` shares one among the pipers of a pipeline (the
        Dagger sets it once every IMap has started). An inline piper has none.

        ``chained``: the one upstream piper, on the same IMap, whose task is
        to be this piper's input inside the IMap (``inputs`` is then
        ignored). The IMap's feeder takes that task's results in groups and
        the inbox ``(value,)`` is made in the worker, so no item of the
        upstream piper passes through Python in the parent. The
        :class:`~papy.dagger.Dagger` chains a piper so when nothing else
        reads the upstream piper (see :meth:`~papy.dagger.Dagger.connect`);
        the upstream piper's ``stats`` and first error are then kept by this
        piper, the last of the chain, which sees what it made.

        ``feeds``: the next piper will be chained to this one (its results
        are not read in the parent). With one input, its task then takes the
        input's items as they are, and the inbox ``(item,)`` is made in the
        worker too.
        """
        if self.connected:
            raise PiperError(f"piper {self.name!r} is already connected; disconnect() it "
                             f"first")
        if self.imap is not None and self.imap.running:
            raise PiperError(f"piper {self.name!r}: its IMap {self.imap.name} is already "
                             f"started; connect every piper before starting")
        self._chain = []
        self._fed = None
        if chained is not None:
            self._connect_chained(chained, gate)
            return
        sources = []
        for item in inputs:
            if isinstance(item, Piper):
                if item.outbox is None:
                    raise PiperError(f"the upstream piper {item.name!r} of {self.name!r} "
                                     f"is not connected; connect it first")
                item = item.outbox
            sources.append(iter(item))
        if not sources:
            raise PiperError(f"piper {self.name!r} needs at least one input")
        self._in = [0]
        if self.imap is None:   # pulled by whoever pulls the outbox: no gate
            self._gate = None
        else:
            self._gate = gate if gate is not None else threading.Event()
        if self._common(sources):
            self._tasks = []   # _evaluated calls the worker itself
        elif feeds and len(sources) == 1 and self.hideable():
            # its counts are kept by the last piper of the chain: no inboxes here
            call = _Chained(_Call(self.worker, self.name, self.retry_on))
            self._tasks = [self.imap.add_task(call, gated(sources[0], self._gate),
                                              retries=self.retries, retry_on=self.retry_on,
                                              name=f"{self.name}[0]")]
        else:
            stream = inboxes(sources, self.consume, self._in, self._gate)
            call = _Call(self.worker, self.name, self.retry_on)
            if self.imap is None:
                self._tasks = [map(call, stream)]
            else:
                parts = Split(stream, self.spawn).parts() if self.spawn > 1 else [stream]
                self._tasks = [self.imap.add_task(call, part, timeout=self.timeout,
                                                  retries=self.retries,
                                                  retry_on=self.retry_on,
                                                  name=f"{self.name}[{i}]")
                               for i, part in enumerate(parts)]
        self._task_ids = [t.task for t in self._tasks] if self.imap is not None else []
        self.stats = {"in": 0, "out": 0, "errors": 0}
        self.sampled = [0.0, 0]   # an inline piper: seconds of the items timed, items timed
        self.first_error = None
        self.tracked = []
        self.outbox = self._outputs(sources)
        self._relay = None
        self._tee = None
        self._branches = []
        self.connected = True

    def chainable(self) -> bool:
        """True if this piper's task may be chained to or from another piper's
        on its IMap (see :meth:`connect`, ``chained``): one item in and out
        per evaluation, one task, and an IMap without a journal of its own
        (which records the results of the tasks nothing else takes)."""
        return (self.imap is not None and self.consume == 1 and self.produce == 1
                and self.spawn == 1 and self.imap.options.get("journal") is None)

    def hideable(self) -> bool:
        """True if this piper's results may feed the next piper's task inside
        the IMap, unseen in the parent: :meth:`chainable`, and nothing needs
        its results in the parent -- no ``track`` (the results are kept
        there), no ``debug`` (an error is raised there) and no ``timeout``
        (its late results are given up by whoever waits in the parent)."""
        return (self.chainable() and not self.track and not self.debug
                and self.timeout is None)

    def _connect_chained(self, up: Piper, gate: threading.Event | None) -> None:
        """:meth:`connect` with ``chained=up``: this piper's task eats ``up``'s."""
        if not (up.connected and up.imap is self.imap and self.chainable()
                and up.hideable() and up._fed is None and len(up._tasks) == 1
                and not up._branches and up._relay is None):
            raise PiperError(
                f"piper {self.name!r} cannot be chained to {up.name!r} inside their IMap: "
                f"both must be connected on the same IMap with consume=produce=spawn=1, "
                f"and {up.name!r} without track, debug or timeout, read by nothing else")
        self._in = [0]
        self._gate = gate if gate is not None else threading.Event()
        call = _Chained(_Call(self.worker, self.name, self.retry_on))
        self._tasks = [self.imap.add_task(call, up._tasks[0], timeout=self.timeout,
                                          retries=self.retries, retry_on=self.retry_on,
                                          name=f"{self.name}[0]")]
        self._task_ids = [t.task for t in self._tasks]
        self._chain = [*up._chain, up]
        up._fed = self
        up.outbox = up._read_elsewhere()
        self.stats = {"in": 0, "out": 0, "errors": 0}
        self.sampled = [0.0, 0]
        self.first_error = None
        self.tracked = []
        self.outbox = self._chained_outputs()
        self._relay = None
        self._tee = None
        self._branches = []
        self.connected = True

    def __call__(self, inputs: Iterable[Any]) -> Piper:
        """Connect to ``inputs`` and return this piper: ``Piper(f)([data])``.

        The PaPy 1.x spelling of :meth:`connect` (which returns nothing).
        """
        self.connect(inputs)
        return self

    # -- life cycle (the outbox's relay and branches: papy.piper_outbox) ------------

    def start(self) -> None:
        """Start the IMap this piper runs on (an inline piper needs nothing)."""
        if not self.connected:
            raise PiperError(f"piper {self.name!r} must be connected before start()")
        if self.imap is not None and not self.imap.running:
            self.imap.start()
        self.open()

    def open(self) -> None:
        """Let the piper draw its inputs and start its relay, if it has one.

        Called by :meth:`start`, and by :meth:`papy.dagger.Dagger.start` once
        every IMap of the pipeline has started.
        """
        if self._gate is not None:
            self._gate.set()
        if self._relay is not None:
            self._relay.start()

    def stop(self, forced: bool = False) -> None:
        """Stop the IMap this piper runs on (with every piper sharing it).

        A graceful stop is the IMap's own (see :meth:`imap.IMap.stop`): it
        ends the inputs of tasks and drains the results of the tasks no
        other task of the IMap takes. The IMap cannot see that one piper
        draws another (a piper reads the outbox of its upstream piper, not
        its IMap task), so pipers connected by hand in a chain on one
        shared IMap are not stopped gracefully: the stop can hang. Connect
        such pipers with a :class:`~papy.dagger.Dagger` (or
        :class:`~papy.plumber.Plumber`), whose stop ends the inputs and runs
        the pipeline dry first, or stop them with ``forced=True``.
        """
        self.close_streams()
        if self.imap is not None and self.imap.running:
            self.imap.stop(forced=forced)
        self.join_relay()

    def disconnect(self) -> None:
        """Forget the inputs and outbox; the piper may be connected again."""
        if self.started:
            raise PiperError(f"piper {self.name!r} is running; stop() it before "
                             f"disconnect()")
        if self.imap is not None and self._tasks and self.imap.task_count:
            ids = [t.task for t in self._tasks]
            if ids and max(ids) == self.imap.task_count - 1:
                self.imap.pop_task(len(ids))
        self.close_streams()
        self._relay = None
        self._tee = None
        self._tasks = []
        self._branches = []
        self.outbox = None
        self._gate = None
        self._fed = None
        self.connected = False

    def __iter__(self) -> Iterator[Any]:
        """The piper's items, without those dropped (``imap.DROP``)."""
        if self.outbox is None:
            raise PiperError(f"piper {self.name!r} is not connected")
        return (value for value in self.outbox if value is not DROP)
