"""A piper's outbox: the values it hands on, and what stands before its readers.

:class:`PiperOutbox` is a base class of :class:`~papy.piper.Piper`; it holds
the output side of a piper, the part of the data flow in :mod:`papy.piper`
after the worker::

    the worker's values (its task(s) taken in turn, or evaluated here)
      ─▶ errors to PiperError values (counted, the first one logged)
      ─▶ [track] ─▶ [produce: n items each] ─▶ outbox
      ─▶ [relay] ─▶ [branches: a Tee, one per downstream piper] or [guard]

The outbox is one iterator, made by :meth:`PiperOutbox._outputs` (or, for
the last piper of a chain inside an IMap, :meth:`PiperOutbox._chained_outputs`,
which keeps the counts of the pipers upstream in the chain). Nothing here
connects a piper or starts its IMap: that is :mod:`papy.piper`, which sets the
fields these methods read (``worker``, ``name``, ``imap``, ``consume``,
``produce``, ``debug``, ``track``, ``repeat``, ``stats``, ``sampled``,
``first_error``, ``tracked``, ``outbox`` and the private ones of a connection).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from typing import Any

from imap import StallError
from imap.drop import DROP
from imap.run.taskiter import RunEndedError

from .calls import _Dropped, _failed
from .errors import PiperError, WorkerError
from .streams import Guarded, Relay, Tee
from .worker import ERROR_TYPES, LOOK_CLOSER, PLAIN_TYPES

log = logging.getLogger("papy")
SAMPLE_EVERY = 16  # an inline piper times one item in this many (Plumber.report)
_END = object()    # the end of an inline piper's input


def _stalled(name: str) -> None:
    """Called when the IMap a piper waits on reports a stall; then it asks again.

    Nothing was taken: in a pipeline another thread (a relay, an output
    puller) is to take the results that fill the buffer. The engine raises
    the stall only after its ``stall_grace``; the short pause here keeps an
    IMap made with ``stall_grace=0`` from spinning.
    """
    log.debug("piper %r: its IMap is stalled; waiting on", name)
    time.sleep(0.01)


def _describe(error: PiperError) -> str:
    """The log text of an error: what failed and, if known, the worker's traceback."""
    cause = error.error
    text = str(error)
    trace = getattr(cause, "traceback", "")
    if trace:
        text += "\n" + trace.rstrip()
    return text


class PiperOutbox:
    """The outbox of a :class:`~papy.piper.Piper` and its readers (a base class of Piper).

    Uses the fields :class:`~papy.piper.Piper` sets (see :mod:`papy.piper_outbox`);
    has none of its own.
    """

    # -- readers of the outbox ---------------------------------------------------

    def relay(self, maxlen: int | None = None) -> Relay:
        """Put a :class:`~papy.streams.Relay` after the outbox (before any branches).

        The Dagger does this for a piper on an IMap whose results something
        else than that IMap draws; the relay runs from :meth:`start`.
        """
        if not self.connected:
            raise PiperError(f"piper {self.name!r} is not connected")
        if self._branches or self._relay is not None:
            raise PiperError(f"piper {self.name!r}: relay() before branch_out(), once")
        self._relay = Relay(self.outbox, maxlen or self.branch_lag, self.name)
        self.outbox = self._relay
        return self._relay

    def branch_out(self, n: int, maxlag: int | None = None) -> list[Iterator[Any]]:
        """Split the outbox into ``n`` branches, each seeing every item.

        A branch runs at most ``maxlag`` items (default :attr:`branch_lag`)
        ahead of the others (see :class:`~papy.streams.Tee`). With ``n == 1``
        the outbox itself is returned.
        """
        if not self.connected:
            raise PiperError(f"piper {self.name!r} is not connected")
        if n == 1:
            return [self.outbox]
        self._tee = Tee(self.outbox, n, maxlag or self.branch_lag, self.name)
        self._branches = self._tee.branches()
        return list(self._branches)

    def guard(self) -> None:
        """Make the outbox safe to draw from several threads at once.

        The Dagger guards its output pipers (see :class:`~papy.streams.Guarded`).
        """
        if not self.connected:
            raise PiperError(f"piper {self.name!r} is not connected")
        if not isinstance(self.outbox, Guarded):
            self.outbox = Guarded(self.outbox)

    def join_relay(self, timeout: float = 30) -> bool:
        """Wait for the relay's thread (after :meth:`close_streams`); True if it ended.

        A relay still blocked after ``timeout`` is left as a daemon thread
        (logged).
        """
        if self._relay is not None and not self._relay.join(timeout):
            log.warning("relay %r is still blocked; left as a daemon thread", self.name)
            return False
        return True

    def close_streams(self) -> None:
        """End the relay and the branches of this piper: nothing waits on them.

        A reader of a branch or of the relay sees the end after what is
        queued for it; items not yet taken from the outbox stay there.
        """
        if self._relay is not None:
            self._relay.close()
        if self._tee is not None:
            self._tee.close()

    # -- output ------------------------------------------------------------------

    def _read_elsewhere(self) -> Iterator[Any]:
        """The outbox of a piper whose results feed the next piper's task."""
        fed = self._fed
        raise PiperError(f"piper {self.name!r}: its results feed the task of "
                         f"{fed.name if fed else '?'!r} inside their IMap; read that piper")
        yield   # a generator: the error comes at the first next()

    def _common(self, sources: list) -> bool:
        """True for the common inline piper whose items :meth:`_evaluated` evaluates."""
        return (self.imap is None and len(sources) == 1 and self.consume == 1
                and self.produce == 1 and not (self.track or self.debug))

    def _outputs(self, sources: list) -> Iterator[Any]:
        """The outbox: the one loop that hands on every value of this piper.

        Values come from :meth:`_evaluated` (the common inline piper) or from
        :meth:`_results` (the piper's tasks); here each is counted, an error
        noted (raised with ``debug``), tracked, and split by ``produce``.
        """
        values = self._evaluated(sources[0]) if self._common(sources) else self._results()
        stats, counter = self.stats, self._in
        produce, debug, track = self.produce, self.debug, self.track
        for value in values:
            stats["in"] = counter[0]
            if type(value) not in PLAIN_TYPES:
                if isinstance(value, ERROR_TYPES):
                    value = self._counted(value)
                    if debug:
                        raise value
                elif value is DROP:   # its place is kept (see Piper): DROP goes on
                    stats["dropped"] = stats.get("dropped", 0) + produce
                    for _ in range(produce):
                        yield DROP
                    continue
            if track:
                self.tracked.append(value)
            if produce == 1:
                stats["out"] += 1
                yield value
                continue
            for v in self._produced(value):
                stats["out"] += 1
                yield v

    def _results(self) -> Iterator[Any]:
        """The results of the piper's tasks, taken in turn; a failure to get
        one (timeout, lost worker, failed input) is a PiperError in its place."""
        tasks, name = self._tasks, self.name
        n = len(tasks)
        for turn in itertools.count():
            task = tasks[turn % n]
            while True:
                try:
                    value = next(task)
                    break
                except (StopIteration, RunEndedError):   # the IMap's run is over too
                    return
                except PiperError:   # raised upstream: debug=True or a branch lag error
                    raise
                except StallError:
                    _stalled(name)
                except Exception as exc:
                    value = PiperError(f"piper {name!r}: no result", exc, name)
                    break
            yield DROP if type(value) is _Dropped else value

    def _origin(self, exc: BaseException) -> str:
        """The piper of a chain (see :meth:`connect`, ``chained``) whose task
        failed to make a result, given the exception this piper's task raised
        for it: the IMap passes an upstream task's failure on to the task it
        feeds. It is named by the tag of an exception a worker raised (see
        :func:`_tag`), or by the IMap's own message (``task <id> (...)``: a
        lost worker, a result that could not be sent); else it is this piper's.
        """
        names = {p.name for p in self._chain}
        tagged = getattr(exc, "papy_piper", None)
        if tagged in names:
            return tagged
        if tagged is None:
            text = str(exc)
            for piper in self._chain:
                if any(f"task {t} (" in text for t in piper.task_ids):
                    return piper.name
        return self.name

    def _chained_outputs(self) -> Iterator[Any]:
        """The outbox of the last piper of a chain (see :meth:`connect`, ``chained``).

        As :meth:`_outputs` (``consume=produce=1``), and it keeps the counts
        of the pipers upstream in the chain, whose results are not seen in the
        parent: each item went through each of them; an error or a drop
        counts for the piper it names (the one it arose in) and those after,
        and for every one of them if it arose before the chain. A first
        error arising in one of them is logged for it.
        """
        chain = self._chain
        position = {p.name: i for i, p in enumerate(chain)}
        counts = [p.stats for p in chain]
        stats, debug, track, name = self.stats, self.debug, self.track, self.name

        def sync(n: int) -> None:
            for c in counts:
                c["in"] = n
                c["out"] = n - c.get("dropped", 0)

        def arose(origin: Any, key: str) -> None:
            """Count an error or drop made at ``origin`` (a piper's name)."""
            start = len(chain) if origin == name else position.get(origin, 0)
            for c in counts[start:]:
                c[key] = c.get(key, 0) + 1

        task = self._tasks[0]
        n = 0
        try:
            while True:
                # (the loop of _results, for its one task)
                try:
                    value = next(task)
                except (StopIteration, RunEndedError):   # the IMap's run is over too
                    return
                except PiperError:   # raised upstream: debug=True or a branch lag error
                    raise
                except StallError:
                    _stalled(name)
                    continue
                except Exception as exc:
                    origin = self._origin(exc)
                    value = PiperError(f"piper {origin!r}: no result", exc, origin)
                n += 1
                stats["in"] = n
                if type(value) not in PLAIN_TYPES:
                    if type(value) is _Dropped:
                        arose(value.origin, "dropped")
                        sync(n)
                        stats["dropped"] = stats.get("dropped", 0) + 1
                        yield DROP
                        continue
                    if isinstance(value, ERROR_TYPES):
                        origin = getattr(value, "piper", None)
                        arose(origin, "errors")
                        sync(n)
                        if origin in position:
                            first = chain[position[origin]]
                            if first.first_error is None:
                                first._note_first(value)
                        value = self._counted(value)
                        if debug:
                            raise value
                if track:
                    self.tracked.append(value)
                stats["out"] += 1
                if not n & 63:
                    sync(n)
                yield value
        finally:
            sync(n)

    def _evaluated(self, source: Iterator[Any]) -> Iterator[Any]:
        """The values of the common inline piper (one input, ``consume=1``,
        ``produce=1``, no track or debug), evaluated here item by item.

        The same values as :func:`inboxes` through :class:`_Call`: the
        function is called directly (the whole worker if it has several
        functions or extra arguments, or if the item may hold an error). An
        input that fails ends the values with the error.
        """
        worker, name, counter = self.worker, self.name, self._in
        func = worker.single or worker   # a whole worker returns its errors itself
        sampled, clock = self.sampled, time.perf_counter
        stream = iter(source)
        try:
            while True:
                # The first item of every SAMPLE_EVERY is timed (the report's
                # estimate of this piper's time in the thread that pulls it);
                # the others run untimed, with no per-item test for it.
                item = next(stream, _END)
                if item is _END:
                    return
                began = clock()
                value = self._evaluate(item)
                sampled[0] += clock() - began
                sampled[1] += 1
                counter[0] += 1
                yield value
                taken = 0
                for item in itertools.islice(stream, SAMPLE_EVERY - 1):
                    inbox = (item,)
                    if type(item) not in PLAIN_TYPES and isinstance(item, LOOK_CLOSER):
                        value = worker(inbox)   # an error, or a sequence that may hold one
                    else:
                        try:
                            value = func(inbox)
                        except Exception as exc:
                            value = worker.failure(func, exc, inbox)
                    counter[0] += 1
                    taken += 1
                    yield value
                if taken < SAMPLE_EVERY - 1:   # the run ended short: so did the input
                    return
        except PiperError:   # raised upstream: debug=True or a branch lag error
            raise
        except Exception as exc:   # the input failed: its error is the last value
            yield PiperError(f"piper {name!r}: no result", exc, name)

    def _evaluate(self, item: Any) -> Any:
        """One item's value in :meth:`_evaluated` (its error in its place)."""
        worker = self.worker
        if type(item) not in PLAIN_TYPES and isinstance(item, LOOK_CLOSER):
            return worker((item,))
        func = worker.single or worker
        try:
            return func((item,))
        except Exception as exc:
            return worker.failure(func, exc, (item,))

    def _counted(self, error: PiperError | WorkerError) -> PiperError:
        """Count an error this piper hands on; log it if it is the first arising here."""
        if isinstance(error, WorkerError):
            error = _failed(error, self.name)
        self.stats["errors"] += 1
        if self.first_error is None and error.piper == self.name:
            self._note_first(error)
        return error

    def _produced(self, value: Any) -> list:
        """The ``produce`` values one evaluation hands on (an error in each place)."""
        name, produce = self.name, self.produce
        if isinstance(value, PiperError) or self.repeat:
            return [value] * produce
        try:
            values = list(value)
        except TypeError as exc:
            values, cause = None, exc
        if values is not None and len(values) == produce:
            return values
        err = PiperError(
            f"piper {name!r} has produce={produce} but its result is {value!r}; return a "
            f"sequence of {produce} or use repeat=True", cause if values is None else None,
            name)
        self._counted(err)
        if self.debug:
            raise err
        return [err] * produce

    def _note_first(self, error: PiperError) -> None:
        """Log the first error that arises in this piper in a run (not those passed on)."""
        self.first_error = error
        log.warning("piper %r: first failed item of this run (later errors of this piper "
                    "are only counted): %s", self.name, _describe(error))
