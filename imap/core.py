"""The public face of the engine: :class:`IMap` and its :class:`TaskIterator` s.

Data flow (one IMap)::

  add_task --> tasks --> Feeder thread (weave: stride per task) --> backend
                           ^  takes a slot (<= buffer) per tasklet  | (threads |
                           |                                        |  processes |
                           |  chained task: takes upstream results  |  remote)
                           |                                        v
  next(task=k) <-- per-task ResultBuffers <-- deliver() <-- backend's own threads
       |
       +--> gives the slot back, wakes the Feeder

* The **Feeder** (``feeder.py``) reads the tasks' inputs in weave order,
  takes buffer slots, groups contiguous tasklets into batches and submits
  them. It is the only reader of the inputs, so chained tasks pull their
  inputs there.
* The **backend** (``backends/``) runs batches on its workers; its threads
  (thread workers, or the process Router) file results with
  ``Engine.deliver`` and report dead workers with ``Engine.lost``.
* **Consumers** call ``next()``: it returns result *i* of a task in order (or
  in arrival order), raising the function's exception in its place, and gives
  the slot back.

The engine's state and lock live in ``engine.py``; nothing here holds the
lock across a blocking call. The threads hold no reference to the IMap
object itself, so an IMap that is dropped while running is collected, and
its finalizer stops its threads and processes; the same finalizer runs at
interpreter exit.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from . import retry
from .flow import DEFAULT_BUFFER_BYTES, FlowPolicy
from .options import Options, check_int, check_seconds
from .run import adding, lifecycle, stats
from .run.engine import Engine
from .run.stats import Report
from .run.status import IMapStatus
from .run.task import Task
from .run.taskiter import DEFAULT, TaskIterator
from .settings import Settings

__all__ = ["IMap", "TaskIterator"]

log = logging.getLogger("imap")

# Extra attempts of a tasklet by default (add_task's ``retries``).
RETRIES = 2


class IMap(Settings):
    """A lazy, parallel, multi-task ``imap`` on a pool of workers.

    Tasks are added with :meth:`add_task` (or by calling the IMap), then
    :meth:`start` begins evaluation. Tasklets of all tasks are interleaved by
    ``stride`` on one shared pool and at most ``buffer`` of them exist at once.

    Args:
        func: with ``iterable``, a first task, and the IMap starts at once.
        iterable: the input of ``func``.
        args: extra positional arguments of ``func`` (``func(item, *args, **kwargs)``).
        kwargs: extra keyword arguments of ``func``.
        worker_type: ``"process"`` (local worker processes) or ``"thread"``.
        worker_num: local workers; default ``os.cpu_count()``. May be 0 only
            when remote workers are given.
        worker_remote: ``[("host", n), ("host:port", n), ...]``: n remote
            workers on each host.
        stride: tasklets of one task drawn before moving to the next task.
            Default ``None``: adaptive, chosen turn by turn from what the
            engine measures (see :doc:`engine`, *Adaptive flow*).
        buffer: the most tasklets that may exist between being drawn and
            their result being taken. Default ``None``: ``stride * number of
            tasks`` when ``stride`` is given, else adaptive within
            ``buffer_bytes``.
        ordered: results of a task in input order (True) or arrival order.
        skip: a timed-out result is abandoned (True) or returned later (False).
        name: a name for logs and ``repr``.
        start_method: for process workers: ``"forkserver"`` (default where
            available), ``"spawn"`` or ``"fork"``.
        chunksize: the most contiguous tasklets of one task sent to a worker
            in one message. Default ``None``: about ``stride / (2 * workers)``
            (at least 1) when ``stride`` is given, else adaptive per task.
            Larger batches cut messaging overhead for tiny tasklets; they
            never change results, their order, or the buffer.
        initializer: called as ``initializer(*initargs)`` once in each worker
            before it runs any tasklet.
        initargs: arguments of ``initializer``.
        remote_options: how to reach ``worker_remote`` hosts: ``secret``
            (the shared secret of an ``imap-server``), ``ssl`` (True for TLS),
            ``ssl_ca_certs`` (verify the server against this CA),
            ``ssl_certfile`` and ``ssl_keyfile`` (a client certificate),
            ``connect_timeout`` (seconds), ``liveness`` (seconds a host
            running a batch may stay silent before it is declared lost),
            ``reconnect`` (bring a lost host back in the background),
            ``worker_wait`` (seconds queued tasklets wait for a lost host
            once no worker is left), ``compress`` (zlib on the wire, for
            slow links). See :doc:`remote`.
        stall_grace: seconds a consumer may wait on an IMap that provably
            cannot advance (the buffer is full of results of other tasks that
            nobody takes) before :class:`~imap.StallError` is raised; ``None``
            waits forever. The grace leaves room for another thread that is
            about to take those results.
        buffer_bytes: with an adaptive buffer, the most bytes the tasklets
            alive may hold (their pickled items and results, an object and a
            pickle of each, as measured for process and remote workers).
            Default 24 MiB; ``None``: no byte limit. A ``buffer`` given is
            obeyed exactly instead.
        worker_logs: ``logging`` records emitted in process, remote and
            executor workers arrive in this process's loggers of the same
            names (honouring their levels and handlers), tagged with
            ``record.worker`` (``"process <pid>"``, ``"remote
            host:port#i"``, ``"dask <address>"``). ``False`` leaves logging
            in the workers alone, for code that sets it up there itself.
        progress: show a progress bar per task from :meth:`start` to
            :meth:`stop`, counting results as they arrive, out of the length
            of the task's input when it has one. ``True``: ``tqdm.auto``
            bars (on stderr; widgets in a notebook); a tqdm class (or a
            ``functools.partial`` of one, e.g. to give ``file=``): bars of
            that class; any other callable: called as ``f(label, done,
            total)`` when a count changes and once at the end. Default
            ``False``: off, at no cost. See :doc:`engine`, *Progress bars*.
        executor: run the tasks on an existing engine instead of workers of
            this IMap's own: a ``distributed.Client``, a Dask scheduler
            address (``"tcp://host:8786"``: the IMap opens its own Client at
            :meth:`start` and closes it at :meth:`stop`; needs the ``dask``
            extra), or any ``concurrent.futures.Executor``. The worker count
            comes from the executor unless ``worker_num`` is given; a Client
            or Executor given is never shut down by the IMap. See
            :doc:`scaling`.
        journal: a file (SQLite) recording every result the consumers take
            from the output tasks. Run the same program again with the same
            journal after a crash: the outputs replay what was recorded, then
            compute the rest, and an input whose result was recorded is not
            computed again. See :doc:`engine`, *Recovery*.
        journal_reuse: take the journal's results even if it was written by
            a run of other tasks (otherwise such a journal is refused with
            :class:`~imap.journal.JournalError`).
    """

    def __init__(
        self,
        func: Callable[..., Any] | None = None,
        iterable: Iterable[Any] | None = None,
        args: Sequence[Any] | None = None,
        kwargs: dict | None = None,
        worker_type: str = "process",
        worker_num: int | None = None,
        worker_remote: Sequence[tuple] | None = None,
        stride: int | None = None,
        buffer: int | None = None,
        ordered: bool = True,
        skip: bool = False,
        name: str | None = None,
        start_method: str | None = None,
        chunksize: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Sequence[Any] = (),
        stall_grace: float | None = 2.0,
        remote_options: Mapping[str, Any] | None = None,
        buffer_bytes: int | None = DEFAULT_BUFFER_BYTES,
        worker_logs: bool = True,
        progress: Any = False,
        executor: Any = None,
        journal: str | os.PathLike | None = None,
        journal_reuse: bool = False,
    ) -> None:
        self._options = Options(
            worker_type=worker_type, worker_num=worker_num, worker_remote=worker_remote,
            stride=stride, buffer=buffer, ordered=ordered, skip=skip, name=name,
            start_method=start_method, chunksize=chunksize, initializer=initializer,
            initargs=initargs, stall_grace=stall_grace, remote_options=remote_options,
            buffer_bytes=buffer_bytes, worker_logs=worker_logs, progress=progress,
            executor=executor, journal=journal, journal_reuse=journal_reuse,
        )
        options = self._options
        self._name = options.name or f"IMap-{id(self):x}"
        self._start_method = options.resolved_start_method

        self._policy = FlowPolicy(
            options.stride, options.buffer, options.chunksize,
            options.buffer_bytes if options.buffer is None else None, options.workers)
        self._engine = Engine(buffer=0, skip=options.skip, stall_grace=options.stall_grace,
                              policy=self._policy)
        self._state: dict = {"engine": self._engine, "feeder": None}
        self._finalizer = weakref.finalize(self, lifecycle.shutdown, self._state)
        self._iterators: dict[int, TaskIterator] = {}
        if func is not None:
            if iterable is None:
                raise ValueError("IMap(func, iterable): give the iterable too")
            self.add_task(func, iterable, args or (), kwargs)
            self.start()
        elif iterable is not None:
            raise ValueError("IMap(func, iterable): give the function too")

    def __repr__(self) -> str:
        engine = self._engine
        state = "running" if engine.started else ("stopped" if engine.stopped else "new")
        return (f"<IMap {self.name} {state} {self.worker_type}x{self.worker_num}"
                f"{'+remote' if self.worker_remote else ''} tasks={self.task_count}>")

    # -- tasks ------------------------------------------------------------------------

    def add_task(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        args: Sequence[Any] = (),
        kwargs: dict | None = None,
        timeout: float | None = None,
        block: bool = True,
        track: bool = False,
        retries: int = RETRIES,
        name: str | None = None,
        key: Callable[[Any], Any] | None = None,
        retry_on: type[Exception] | Sequence[type[Exception]] = (),
    ) -> TaskIterator:
        """Add a task: ``func(item, *args, **kwargs)`` for each item of ``iterable``.

        Args:
            func: the function.
            iterable: the input; may be the iterator of an earlier task of this
                IMap (a chained task) or of a task of another IMap.
            args: extra positional arguments.
            kwargs: extra keyword arguments.
            timeout: default timeout of ``next()`` on this task.
            block: default ``block`` of ``next()`` on this task.
            track: keep every taken result in ``imap.tracked[task][index]``.
            retries: extra attempts of a tasklet, whatever the cause: its
                worker died (it fails with :class:`~imap.WorkerLostError`
                once they are spent), or it raised an exception of a
                ``retry_on`` class. Default 2: a worker lost once or twice
                costs no item (a function then sees an item again only
                when its worker died running it); ``retries=0`` fails a
                lost worker's tasklets at once. The final error of a
                tasklet retried says how many attempts were made
                (``exc.attempts``, and a note).
            retry_on: exception classes (one, or a tuple) that make a tasklet
                run again, after an exponential back-off with jitter (see
                :doc:`engine`, *Recovery*); needs ``retries >= 1``.
            name: a name for status and errors (default: the function's name).
            key: with a journal (``IMap(journal=...)``), the key of an input
                item in the journal, ``key(item)``: hashable, picklable and
                unique per input. Default: the item's position in
                ``iterable``. Give one for an input whose order may change
                between runs; only a task that reads an iterable (not a
                chained task) takes one.

        Returns:
            The task's :class:`TaskIterator`.

        On a Dask executor, a task added inside ``with dask.annotate(...)``
        runs its batches only where the ``workers``, ``resources`` and
        ``allow_other_workers`` annotations allow.
        """
        retry_on = retry.checked(retry_on, retries)
        task = adding.add(
            self, self._engine, func, iterable, args, kwargs, timeout=timeout, block=block,
            track=track, retries=retries, name=name, key=key, retry_on=retry_on,
            journal=self._options.journal, executor=self._options.executor is not None)
        iterator = TaskIterator(self, self._engine, task, timeout, block)
        self._iterators[task.id] = iterator
        return iterator

    __call__ = add_task

    def get_task(self, task: int = 0, timeout: float | None = None,
                 block: bool = True) -> TaskIterator:
        """A :class:`TaskIterator` of task ``task`` with these defaults."""
        return TaskIterator(self, self._engine, self._task(task), timeout, block)

    def pop_task(self, number: int | bool = 1) -> None:
        """Remove the last ``number`` tasks (``True``: all); only before start."""
        if self._engine.started:
            raise RuntimeError("pop_task() after start(): stop() the IMap first")
        tasks = self._engine.tasks
        count = len(tasks) if number is True else number
        check_int("number", count, 0)
        if count > len(tasks):
            raise ValueError(f"cannot pop {count} tasks, the IMap has {len(tasks)}")
        for _ in range(count):
            task = tasks.pop()
            self._iterators.pop(task.id, None)
            if task.upstream is not None:
                task.upstream.consumer = None

    def _task(self, task: int) -> Task:
        tasks = self._engine.tasks
        if isinstance(task, bool) or not isinstance(task, int) or not 0 <= task < len(tasks):
            raise ValueError(f"no task {task!r}: this IMap has tasks 0..{len(tasks) - 1}")
        return tasks[task]

    # -- running ---------------------------------------------------------------------

    def start(self) -> None:
        """Start evaluation: the workers, then the Feeder. Nothing runs before."""
        if self._engine.started:
            raise RuntimeError("the IMap is already started")
        engine = self._engine
        if not engine.tasks:
            raise RuntimeError("start() with no tasks: add_task() first")
        lifecycle.start_run(self)
        log.debug("%r started: stride %s, buffer %s, chunksize %s", self,
                  self._options.stride or "adaptive", self._options.buffer or "adaptive",
                  self.chunksize or "adaptive")

    def next(self, timeout: float | None = DEFAULT, task: int = 0,
             block: bool = DEFAULT) -> Any:
        """Return the next result of ``task`` (see :meth:`TaskIterator.next`).

        Left out, ``timeout`` and ``block`` are the task's defaults from
        :meth:`add_task`.
        """
        record = self._task(task)
        if timeout is DEFAULT:
            timeout = record.timeout
        if block is DEFAULT:
            block = record.block
        if record.output_log is not None:   # a journaled output
            return record.output_log.next(self.get_task(task)._result, timeout, block)
        return self._engine.next_result(record, record.generation, timeout, block)

    def __iter__(self) -> Iterator[Any]:
        return self.get_task(0)

    def status(self) -> IMapStatus:
        """A snapshot: workers, buffer use and per-task counters and times."""
        return self._engine.status()

    def report(self) -> Report:
        """What this run did and what limits it: per task, items, errors,
        the workers' time it took, its rate and what it waited on, and a
        verdict naming the bottleneck (a task's work, the input, the
        consumer, or messaging overhead) with the usual remedy.

        While running, the report is of the run so far; once stopped, of
        the last run. ``print(m.report())`` shows a table;
        ``m.report().as_dict()`` gives the figures to programs.
        """
        status = self._state.get("last") if not self._engine.started else None
        return stats.report(status or self._engine.status(), self._policy.workers,
                            self.adaptive)

    # -- stopping -----------------------------------------------------------------------

    def stop(self, ends: Sequence[int] | None = None, forced: bool = False,
             timeout: float | None = None) -> None:
        """Stop evaluation and join every thread and process started.

        A graceful stop (the default) draws no new stride from the tasks'
        inputs, lets every tasklet already drawn flow through the chained
        tasks, takes and discards the results of the ``ends`` tasks (default:
        the tasks no other task of this IMap consumes), then stops the
        workers. ``forced=True`` ends at once and drops what is in flight.
        Afterwards the IMap has no tasks and can take new ones.

        A graceful stop is bounded: once no tasklet has ended for
        ``timeout`` seconds (default: the longest timeout of a task, where
        one is set; ``skip`` true or false), the tasklets still running are
        given up with a warning naming them, and the stop ends as a forced
        one would. With no task timeout and no ``timeout``, it waits for the
        tasklets in flight however long they take.

        Args:
            ends: the tasks whose remaining results are discarded.
            forced: stop at once.
            timeout: seconds without a tasklet ending after which a graceful
                stop gives up what still runs.
        """
        check_seconds("timeout", timeout)
        ends_tasks = (None if ends is None or not self._engine.started
                      else [self._task(i) for i in ends])
        try:
            lifecycle.stop_run(self, ends_tasks, forced, timeout)
        except KeyboardInterrupt:
            # Ctrl-C again while stopping: end at once, then let it through.
            lifecycle.shutdown(self._state)
            raise
        finally:
            lifecycle.forget(self)
        self._iterators.clear()

    def __enter__(self) -> IMap:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop(forced=exc_type is not None)
