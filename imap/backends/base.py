"""The interface every kind of worker pool implements.

The engine hands a backend :class:`Batch` es (contiguous tasklets of one
task); the backend runs them and calls back ``deliver(batch, values, errors,
busy)`` or ``lost(batch, reason)`` from one of its own threads. Thread,
process and remote backends differ only in how a batch reaches a worker and
how a result comes back; the process and remote backends share their core
(:mod:`.slots`), and every worker runs a batch with the same kernel
(:mod:`.kernel`).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from ..flow.policy import GIVE_UP_AFTER, PREFETCH
from .batch import Batch, BatchState

__all__ = ["GIVE_UP_AFTER", "PREFETCH", "Backend", "Batch", "BatchState", "Deliver", "Lost"]

log = logging.getLogger("imap")


Deliver = Callable[..., None]  # (batch, values, errors, busy=None, peak=None)
Lost = Callable[["Batch", str], None]


class Backend(ABC):
    """A pool of workers of one kind.

    Args:
        deliver: ``deliver(batch, values, errors, busy=None, peak=None)``:
            the results of a batch; ``values`` aligned with
            ``batch.indices``, ``errors`` None or a dict position ->
            exception (whose ``__cause__`` is a
            :class:`~imap.errors.WorkerTraceback`), ``busy`` the seconds the
            worker spent on the batch and ``peak`` on its longest tasklet
            (None if not measured).
        lost: ``lost(batch, reason)``: the worker holding the batch died.
    """

    kind = "abstract"
    # Its workers can report a careful batch tasklet by tasklet (partial
    # answers): a batch whose worker died is then run again careful, and
    # only the tasklet that kills a worker fails (else: halving).
    stepwise = False
    # Which queued batch runs first (see flow.dispatch.take_next): 0, the oldest (a fixed
    # stride); 1, the batches of later tasks (adaptive flow); -1, those of
    # earlier tasks (adaptive flow once every input has ended).
    depth_order = 0
    # The most work (seconds) an adaptive batch may hold; None: the flow
    # policy's default, sized for a cheap message to a worker of our own.
    batch_work: float | None = None
    # group_limit(task) -> the most tasklets of ``task`` that may go out in
    # one message now: queued batches of one task may go out together up
    # to it (set for adaptive batches only, None otherwise; a backend that
    # queues batches on this side may use it).
    group_limit: Callable[[Any], int] | None = None
    # Batches a worker may hold (the flow policy's ``prefetch``).
    prefetch = PREFETCH
    # It can give up on a worker that runs an abandoned tasklet (skip=True)
    # and run the rest of that batch elsewhere (see abandon).
    gives_up = True
    # Its workers deliver a batch's first results while it runs on (for a
    # task with each_result, one by one): else, under skip=True, a task with
    # a timeout goes one tasklet a batch (FlowPolicy.isolate_tasklets).
    partial = True
    # Told when a thread of the backend dies of an exception (see guarded).
    on_crash: Callable[[str, BaseException], None] | None = None
    # Part of a larger pool (a MixedBackend of threads and remote hosts):
    # pass_on(batch, refusals, whole) hands back tasklets that no worker of
    # this backend will run (each refused them: functional dependencies)
    # for the pool's other part, instead of failing them.
    pass_on: Callable[..., None] | None = None

    def __init__(self, deliver: Deliver, lost: Lost) -> None:
        self.deliver = deliver
        self.lost = lost
        self._workers_lost = 0
        self._timers: list[threading.Timer] = []

    @classmethod
    def from_options(cls, options: Any, workers: int, deliver: Deliver, lost: Lost) -> Backend:
        """A pool of this kind as an IMap with ``options`` (an
        :class:`~imap.options.Options`) has it, of ``workers`` local workers:
        what a kind of local worker named in ``imap.backends.kinds.LOCAL``
        implements."""
        raise NotImplementedError(f"the {cls.kind} workers are not made from options")

    @property
    def workers_lost(self) -> int:
        """Workers that died since start."""
        return self._workers_lost

    def guarded(self, target: Callable[..., None], name: str) -> Callable[..., None]:
        """``target`` as the body of a thread of this backend: an exception
        that escapes it is logged and reported (``on_crash(name, exc)``,
        the engine's ``thread_died``), so that nobody waits for ever on
        a thread that is gone."""
        def run(*args: Any) -> None:
            try:
                target(*args)
            except BaseException as exc:  # noqa: BLE001 - reported, never silent
                log.exception("the thread %s of the %s workers failed", name, self.kind)
                if self.on_crash is not None:
                    self.on_crash(name, exc)
        return run

    def configure(self, depth_order: int | None = None,
                  group_limit: Callable[[Any], int] | None = None,
                  prefetch: int | None = None,
                  on_crash: Callable[[str, BaseException], None] | None = None) -> None:
        """What the flow decided for this run: the order queued batches run
        in (``depth_order``, see :func:`imap.flow.dispatch.take_next`), the
        limit on batches going out together (``group_limit``) and how many
        batches a worker may hold (``prefetch``); and whom to tell when a
        thread of the backend dies (``on_crash``, see :meth:`guarded`)."""
        if on_crash is not None:
            self.on_crash = on_crash
        if depth_order is not None:
            self.depth_order = depth_order
        if group_limit is not None:
            self.group_limit = group_limit
        if prefetch is not None:
            self.prefetch = prefetch

    def may_run(self, task: Any) -> tuple[list, dict]:
        """The workers that may run ``task`` now (names), and those that
        refused it (its function's dependency unmet there) -> why."""
        return [], {}

    @property
    @abstractmethod
    def alive(self) -> int:
        """Workers alive now."""

    @property
    @abstractmethod
    def capacity(self) -> int:
        """Batches the workers can hold now without queueing them here."""

    @abstractmethod
    def start(self) -> None:
        """Start the workers; return once they can take batches."""

    @abstractmethod
    def submit(self, batch: Batch) -> None:
        """Queue a batch; never blocks for long (no waiting on workers)."""

    @abstractmethod
    def stop(self, forced: bool = False) -> None:
        """Stop every worker and join every thread and process started.

        ``forced=False`` is called once all results were delivered;
        ``forced=True`` ends at once, dropping queued batches.
        """

    # -- abandoned tasklets (skip=True) ------------------------------------------------

    def abandon(self, task: Any, index: int) -> None:
        """A consumer abandoned tasklet ``index`` of ``task`` (a timeout with
        ``skip=True``). If a worker is running it and still is
        ``GIVE_UP_AFTER`` seconds later, that worker is replaced (see
        :meth:`_give_up`). Called with the engine's lock held: takes only
        this backend's own locks, briefly."""
        batch = self._running_batch(task, index)
        if batch is None:
            return
        if batch.abandon(index):   # the first of the batch: its timer starts
            self._arm(batch)

    def _arm(self, batch: Batch) -> None:
        timer = threading.Timer(GIVE_UP_AFTER, self._on_timer, args=(batch,))
        timer.name = "imap-give-up"
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()]
        self._timers.append(timer)
        timer.start()

    def _on_timer(self, batch: Batch) -> None:
        if self._give_up(batch):
            self._arm(batch)  # not running yet: look again later

    def began(self, task: Any, index: int) -> float | None:
        """When (``time.monotonic()``) tasklet ``index`` of ``task`` began to
        run on a worker; None if it has not begun (it waits here, or at a
        worker behind other tasklets). A backend that cannot tell answers
        0.0: as if it had begun long ago."""
        return 0.0

    def running_tasklets(self) -> list:
        """``(task, index, began)`` of the tasklet each worker runs now, for
        the workers whose backend can tell (see :meth:`began`)."""
        return []

    def _running_batch(self, task: Any, index: int) -> Batch | None:
        """The batch holding tasklet ``index`` of ``task`` that a worker runs
        or will run (None if there is none, or the backend cannot replace a
        worker)."""
        return None

    def _give_up(self, batch: Batch) -> bool:
        """Replace the worker still running ``batch``, if one is (timer
        thread). True if ``batch`` has not started yet: look again later."""
        return False

    def _settle_given_up(self, batch: Batch) -> None:
        """The worker running ``batch`` was replaced: its abandoned tasklets
        end (their results were skipped), the others run again elsewhere."""
        from ..errors import TimeoutError

        error = TimeoutError("abandoned by its consumer; its worker was replaced")
        if all(i in batch.abandoned for i in batch.indices):
            n = len(batch)
            self.deliver(batch, [None] * n, dict.fromkeys(range(n), error), None)
            return
        gone_part = batch.subset([p for p, i in enumerate(batch.indices)
                                  if i in batch.abandoned])
        batch.resume()   # the same batch runs again, without them: a backend may count it
        if len(gone_part):
            errors = dict.fromkeys(range(len(gone_part)), error)
            self.deliver(gone_part, [None] * len(gone_part), errors, None)
        self.submit(batch)

    def _stop_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for timer in self._timers:
            if timer is not threading.current_thread():
                timer.join()
        self._timers = []
