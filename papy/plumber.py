"""``Plumber``: a Dagger that runs itself.

``start(datas)`` connects the pipers and starts their IMaps; ``run()``
starts the *pullers*, one background thread per output piper, each pulling
its output as fast as it comes (outputs never wait for each other, so one
slow output holds back the others only through the buffers and branch lags
they share); ``pause()`` makes each puller stop after its current item
(nothing is lost: the next ``run()`` continues where it paused); ``wait()``
waits for the end of the input; ``stop()`` stops the IMaps (gracefully: at a
stride boundary) and joins the pullers.

A puller writes only its output's list in :attr:`Plumber.results` (when
``keep=True``), its output's counters and the piper counters; the caller's
thread only starts, pauses and joins them.

**Errors are reported, not hidden.** An item that failed travels to the
outputs as a :class:`~papy.errors.PiperError`. Each piper logs the first error
that arises in it in a run (logger ``papy``, WARNING, with the worker's
traceback); at the end of a run that produced errors, :meth:`Plumber.wait`
(or :meth:`Plumber.stop`) logs one ERROR line counting, per output, the items
that are errors; ``stats["outputs"]`` holds the same counts.

**Progress.** ``run(progress=True)`` shows one bar per output piper, counting
the items its puller takes (``imap/progress.py``: the bars' own thread
polls those counters; the pullers do nothing more per item). The bars are
closed with their final counts by :meth:`Plumber.wait` (once the outputs
are exhausted) or :meth:`Plumber.stop`.

This module runs the pipeline: start (with this run's journal), run, pause,
wait, stop. The Dagger's graph methods offered as the Plumber's own, and
``save``/``load``, are :mod:`papy.plumber_graph`; ``stats`` and ``report()``
are :mod:`papy.plumber_stats` (both base classes of :class:`Plumber`).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from imap.drop import DROP
from imap.run import waiting
from imap.run.progress import Progress
from imap.run.waiting import Flag

from .dagger import Dagger
from .errors import PiperError, PlumberError
from .journal import PipelineJournal
from .plumber_graph import PlumberGraph
from .plumber_stats import PlumberStats

log = logging.getLogger("papy")


def _drop(value: Any) -> None:
    """Where a puller puts the items it does not keep."""


def _expected_items(plumber: Plumber) -> dict:
    """Per piper, the items it will hand on, or None where that is unknown.

    Known where every input it depends on has a ``len()``: an evaluation
    takes ``consume`` inboxes (fewer at the very end) and makes ``produce``
    items, and a merge makes as many inboxes as its shortest upstream.
    """
    expected: dict = {}
    datas = dict(zip(plumber.get_inputs(), plumber.dagger._inputs, strict=False))
    for piper in plumber.topological():
        if piper in datas:
            try:
                inboxes = len(datas[piper])
            except Exception:   # an iterator or a generator: no len()
                inboxes = None
        else:
            upstream = [expected[up] for up in plumber.upstream(piper)]
            inboxes = None if None in upstream else min(upstream)
        expected[piper] = (None if inboxes is None
                           else -(-inboxes // piper.consume) * piper.produce)
    return expected


class Plumber(PlumberGraph, PlumberStats):
    """A pipeline with a life cycle, statistics and save/load.

    A Plumber runs a :class:`~papy.dagger.Dagger` (its :attr:`dagger`),
    whose graph methods it offers as its own (``add_piper``, ``add_pipe``,
    ``del_piper``, ``upstream``, ``draw``, ...), as PaPy 1.x's Plumber did.

    Args:
        pipers, pipes, xtras: as for :class:`~papy.dagger.Dagger`.
        keep: keep the items pulled from each output piper in
            ``results[piper name]`` (otherwise they are dropped: the output
            pipers are expected to write their results somewhere).
        journal: a file (SQLite) recording, per item, what each output
            piper was given, so that a run of the same pipeline after a
            crash replays the items recorded instead of computing them
            again (see :doc:`pipelines`, *Recovery*, and
            :mod:`papy.journal`). ``start(journal=...)`` gives one per run.
        journal_reuse: take a journal written by a pipeline of another shape.
        logger_options: PaPy 1.x's logging set-up; accepted with a
            DeprecationWarning and ignored (papy logs to the logger
            ``papy``: configure it with :mod:`logging`).
    """

    def __init__(self, pipers: Iterable[Any] = (), pipes: Iterable[Sequence[Any]] = (),
                 xtras: dict | None = None, keep: bool = False,
                 logger_options: dict | None = None,
                 journal: str | None = None, journal_reuse: bool = False) -> None:
        if logger_options is not None:
            warnings.warn(
                "Plumber(logger_options=...) is PaPy 1.x's and is ignored: papy logs "
                "through the standard logger 'papy' (configure it with logging, e.g. "
                "logging.basicConfig(level=logging.INFO)); see doc/migrating.rst",
                DeprecationWarning, stacklevel=2)
        # Each output has one reader, its puller, and a graceful stop drains
        # through the pullers too (drain=): the outboxes need no lock.
        self.dagger = Dagger(pipers, pipes, xtras, drain=self._run_dry)
        self.keep = keep
        self.results: dict[str, list] = {}
        self._threads: list[threading.Thread] = []
        self._pulling: set[int] = set()     # outputs with a live puller
        self._lock = threading.RLock()
        # notified (lock held) when a puller ends, pauses or fails: wait()
        # sees a pipeline that nothing pulls any more
        self._changed = waiting.condition(self._lock)
        self._ran = False   # run() was called since start()
        self._pause = threading.Event()
        self._finished = Flag()   # its wait survives a second Ctrl-C
        self._error: BaseException | None = None
        self._outputs: list = []            # (piper, outbox), None once exhausted
        # output name -> [items, errors, dropped] pulled (items: dropped too)
        self._counts: dict[str, list] = {}
        self._reported = False
        self._started = False
        self._start_time: float | None = None
        self._end_time: float | None = None
        self._progress: Progress | None = None
        self.journal_path = journal
        self.journal_reuse = journal_reuse
        self._journal: PipelineJournal | None = None
        self._replayed: dict[str, int] = {}   # the last run's, once its journal closed

    def __repr__(self) -> str:
        return f"Plumber({[p.name for p in self.dagger.graph]})"

    # -- life cycle ------------------------------------------------------------------

    def start(self, datas: Sequence[Iterable[Any]] | None = None,
              journal: str | None = None) -> None:
        """Connect the pipers to ``datas`` (one iterable per input piper) and start.

        Args:
            datas: one iterable per input piper.
            journal: this run's journal (default: the Plumber's ``journal``).
        """
        if self._started:
            raise PlumberError("the Plumber is started already; stop() it first")
        if datas is None:
            raise PlumberError("start(datas): give one input iterable per input piper")
        path = journal if journal is not None else self.journal_path
        self._replayed = {}
        if path is not None:
            self._journal = PipelineJournal(path, self.dagger, self.journal_reuse)
            datas = self._journal.inputs(datas)
            self.dagger.pipes_hook = self._journal.sources
        try:
            self.dagger.connect(datas)
        except BaseException:
            self._close_journal()
            raise
        finally:
            self.dagger.pipes_hook = None
        try:
            self.dagger.start()
        except BaseException:
            self.dagger.stop(forced=True)
            self.dagger.disconnect()
            self._close_journal()
            raise
        self._outputs = [(p, iter(p.outbox) if self._journal is None
                          else self._journal.taken(p, iter(p.outbox)))
                         for p in self.get_outputs()]
        self.results = {p.name: [] for p, _ in self._outputs}
        self._counts = {p.name: [0, 0, 0] for p, _ in self._outputs}
        self._reported = False
        self._pulling = set()
        self._finished.clear()
        self._error = None
        self._started = True
        self._ran = False
        self._start_time = time.time()
        self._end_time = None

    def run(self, progress: Any = False) -> None:
        """Start (or resume after :meth:`pause`) pulling the outputs in the background.

        Args:
            progress: show one progress bar per output piper, counting the
                items pulled, out of the number expected when every input
                has a ``len()``. The values of the IMap option ``progress``:
                ``True`` (``tqdm.auto`` bars, on stderr), a tqdm class, or a
                callback ``f(output name, items, total)``. Once shown, the
                bars stay until :meth:`wait` sees the end or :meth:`stop`;
                a ``run()`` that resumes after :meth:`pause` keeps them.
        """
        if not self._started:
            raise PlumberError("start(datas) the Plumber before run()")
        if progress and self._progress is None:
            self._progress = self._show_progress(progress)
        with self._lock:
            self._ran = True
            self._pause.clear()
            for index, output in enumerate(self._outputs):
                if output is not None and index not in self._pulling:
                    self._pulling.add(index)
                    thread = threading.Thread(target=self._pull, args=(index,),
                                              name=f"papy-plumber-{output[0].name}",
                                              daemon=True)
                    self._threads.append(thread)
                    thread.start()

    def _show_progress(self, progress: Any) -> Progress:
        # This run's outputs (an entry becomes None once its output is
        # exhausted) and their counters, in the same order.
        outputs, names = self._outputs, list(self._counts)
        counts = [self._counts[name] for name in names]
        expected = {piper.name: n for piper, n in _expected_items(self).items()}

        def snapshot() -> list[tuple[int, bool]]:
            return [(c[0], outputs[i] is None) for i, c in enumerate(counts)]

        return Progress(progress, snapshot, names, [expected[name] for name in names],
                        name="papy-plumber-progress")

    def _stop_progress(self) -> None:
        """Close the bars with their final counts (the pullers have ended)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _pull(self, index: int) -> None:
        piper, outbox = self._outputs[index]
        keep = self.results[piper.name].append if self.keep else _drop
        counts = self._counts[piper.name]
        paused = self._pause.is_set
        try:
            while True:
                # Checked without the lock for each item; a pause seen is
                # checked again under the lock, against a run() in between.
                if not paused():
                    for value in outbox:
                        counts[0] += 1
                        if value is DROP:   # dropped upstream (imap.DROP): no item
                            counts[2] += 1
                            continue
                        if isinstance(value, PiperError):
                            counts[1] += 1
                        keep(value)
                        if paused():
                            break
                    else:
                        self._ended(index)
                        return
                with self._lock:
                    if self._pause.is_set():
                        self._pulling.discard(index)
                        self._changed.notify_all()
                        return
        except BaseException as exc:   # debug=True pipers raise here
            with self._lock:
                self._pulling.discard(index)
                self._changed.notify_all()
                if self._error is None:
                    self._error = exc
                self._pause.set()
                self._end_time = time.time()
                self._finished.set()

    def _ended(self, index: int) -> None:
        """The output ``index`` is exhausted: its puller ends (the last one
        finishes; it closes the progress bars, before ``wait()`` returns)."""
        with self._lock:
            self._outputs[index] = None
            display = self._progress
            if display is not None and all(o is None for o in self._outputs):
                display.poke()   # final counts: the bars close here
            self._pulling.discard(index)
            self._changed.notify_all()
            if all(o is None for o in self._outputs):
                self._end_time = time.time()
                self._finished.set()

    def _run_dry(self) -> bool:
        """Run the pullers until every output has ended (inputs closed); True if so."""
        if self._error is not None:
            return False
        self.run()
        return self.dagger._wait_dry(self._finished) and self._error is None

    def _raise(self) -> None:
        if self._error is not None:
            raise PlumberError(f"the pipeline failed: {self._error!r}") from self._error

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every output is exhausted; True if it is, False on timeout.

        True means *finished*, not *succeeded*: if items failed, ``wait()``
        logs an ERROR (logger ``papy``) counting the failed items per output,
        once per run, and ``stats["outputs"]`` holds the counts.
        Raises PlumberError if an output raised (e.g. a ``debug=True`` piper),
        and, at once, when nothing pulls the outputs, so that the wait could
        never end: before :meth:`run` (``wait`` does not run the pipeline),
        or while it is paused (:meth:`pause`; it says so as soon as the
        pullers have stopped).
        """
        if not self._started and not self._finished.is_set():
            raise PlumberError("the Plumber is not started: start(datas), then run(), "
                               "then wait()")
        done = self._wait_pulled(timeout)
        if done:
            self._join_threads(None)
            self._stop_progress()
        self._raise()
        if done:
            self._report()
        return done

    def _wait_pulled(self, timeout: float | None) -> bool:
        """Wait for the end while some puller runs; raise once none does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self._finished.is_set():
                if not self._pulling and self._error is None:
                    if not self._ran:
                        raise PlumberError(
                            "wait() before run(): nothing pulls the outputs, so the "
                            "pipeline would never end; call run() first (wait() only "
                            "waits for the end of a run)")
                    raise PlumberError(
                        "wait() while the Plumber is paused: nothing pulls the outputs, "
                        "so the pipeline would never end; call run() to resume first")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                waiting.wait(self._changed, remaining)
        return True

    def _report(self) -> None:
        """Log, once per run, how many items of each output are errors."""
        if self._reported:
            return
        self._reported = True
        failed = {name: c for name, c in self._counts.items() if c[1]}
        if not failed:
            return
        parts = [f"{name!r}: {errors} of {pulled - dropped} items"
                 for name, (pulled, errors, dropped) in failed.items()]
        origins = [p.name for p in self.topological() if p.first_error is not None]
        log.error("the pipeline ran with errors: failed items per output: %s (first "
                  "errors logged for piper%s %s; each failed item is a PiperError in its "
                  "place)", ", ".join(parts), "s" if len(origins) != 1 else "",
                  ", ".join(map(repr, origins)) or "-")

    def _join_threads(self, timeout: float | None) -> bool:
        for thread in list(self._threads):
            thread.join(timeout)
            if thread.is_alive():
                return False
            self._threads.remove(thread)
        return True

    def pause(self) -> None:
        """Stop pulling; :meth:`run` resumes, losing and repeating nothing.

        Returns at once. A puller that is waiting for an item stops after
        that item arrives (the item is kept).
        """
        with self._lock:
            self._pause.set()

    def stop(self, forced: bool = False) -> None:
        """Stop the pipeline; join the pullers, relays and IMaps.

        A graceful stop (the default) draws nothing more from the inputs and
        lets the items already drawn flow to the outputs: the pullers run
        (after a :meth:`pause` too) until the outputs end, so with
        ``keep=True`` every item drawn is in :attr:`results`. See
        :meth:`papy.dagger.Dagger.stop` for when it is forced instead.
        ``forced=True`` stops at once and drops the items in flight.
        """
        if forced:
            self.pause()
        self.dagger.stop(forced=forced)
        self.pause()
        if self._started:
            self._report()
        if not self._join_threads(30):
            log.warning("a papy puller is blocked in an inline piper; left as daemon")
        self._threads = []
        self._stop_progress()
        self._close_journal()
        if self._started and self._end_time is None:
            self._end_time = time.time()
        self._started = False
        self.disconnect()

    def _close_journal(self) -> None:
        """Commit what the pullers took and close the journal (if any)."""
        if self._journal is not None:
            self._replayed = {p.name: self._journal.counts(p)[0]
                              for p in self.get_outputs()}
            self._journal.close()
            self._journal = None

    @property
    def finished(self) -> bool:
        """True once every output is exhausted."""
        return self._finished.is_set()
