"""Workers of a Dask cluster: the executor backend, with what Dask needs more.

``IMap(executor=client)`` with a ``distributed.Client`` (used as given, never
closed here), or ``IMap(executor="tcp://host:8786")``, a scheduler address
(the IMap opens its own Client at start and closes it at stop). Everything
of :mod:`.executor` holds; besides:

* The kernel travels as its source text (see :mod:`._dask_entry`), so Dask
  workers need nothing of this package; tasks are named
  ``imap-batch-<uuid>`` and get ``depth_order * task id`` as their priority.
* A batch of more than ``SCATTER_BYTES`` of items has them scattered first
  (by the ``imap-dask-scatter`` thread: a scatter waits a round trip), and
  its task takes them as a dependency; a batch that lost its scattered
  items with a worker is rerun with its items inside
  (:meth:`.dask_watch.SchedulerWatch.recover`).
* The worker count is the cluster's threads, looked up again twice a second
  by the ``imap-dask-watch`` thread, so workers that join or leave count.
  A Dask scheduler that stays unreachable for ``SCHEDULER_GRACE`` seconds
  fails what is in flight and queued with ``ConnectionError``. That thread,
  and the reruns of batches whose scattered items were lost, are
  :mod:`.dask_watch`'s.
* A task added inside ``with dask.annotate(workers=..., resources=...)`` runs
  its batches where those annotations allow (see :func:`dask_placement`).
* The cluster is one place of the backend's dispatcher, as an executor is:
  which worker runs a task is Dask's to decide, late, with what only its
  scheduler knows (what each worker holds, scattered items, its own work
  stealing); this side only narrows it (``workers=``: the workers that have
  not refused the task, and none held by an abandoned tasklet).
* A batch whose worker died (Dask's ``KilledWorker`` after its own retries)
  goes to ``lost``, like a lost process.
* Large buffers (numpy arrays, bytes, anything with the buffer protocol, of
  ``kernel.FRAME_BYTES`` or more) travel as Dask frames beside the pickle
  stream, both ways (:func:`kernel.dumps_frames`): never copied into a
  pickle in this process or in the worker; what arrives is read-only.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib
import logging
import queue
import sys
import threading
import uuid
import zlib
from typing import Any

import cloudpickle

from ..flow.dispatch import refusal_errors
from ..transport import wire
from ..transport.records import Payload
from ..worker import dask_entry as _dask_entry
from ..worker import kernel
from . import dask_watch
from .base import Batch
from .dask_watch import SchedulerWatch
from .executor import ExecutorBackend, _worker_died

log = logging.getLogger("imap")

CONNECT_TIMEOUT = 10.0  # seconds to connect to a scheduler given by address
# The most work (seconds) an adaptive batch holds on Dask. Each Dask task
# costs the scheduler and the client several milliseconds of CPU (measured:
# ~5 ms per task on 2 CPUs, where a LocalCluster's scheduler shares the
# client's process), and a worker idles ~2.5 ms between tasks: batches of
# 0.2 s keep that to a few per cent, where 0.02 s (once the default, sized
# for a pipe to a process of our own) halved the throughput of 5 ms tasklets.
DASK_BATCH_WORK = 0.2
# A Dask task whose pickled items exceed this many bytes has them scattered
# to the cluster first (one round trip, in a thread of this backend) and
# takes them as a dependency. Dask keeps the last 1 000 messages of every
# stream that were under 1 MB (``distributed.admin.low-level-log-length``),
# so items passed inside the task would stay alive in the client (and in
# the scheduler, when it runs in this process) long after their task ended:
# measured, 3 x 10^5 items of 1 KB in batches of ~340 KB grew this process
# by ~800 MB, against ~25 MB scattered. Below this size what those logs
# hold stays within ~32 MB a stream, and small batches (tiny tasklets, whose
# work is a few ms) do not pay the round trip (it cost them ~20 %).
SCATTER_BYTES = 32 << 10
# Scattered items live on one worker: if it dies, the task that was to take
# them (running there or not) cannot be rerun by Dask. Such tasks are
# submitted again with their items inside, one at a time
# (dask_watch.SchedulerWatch.recover).
# Dask annotations that say where a task may run, passed on to Client.submit.
PLACEMENT = ("workers", "resources", "allow_other_workers")


def _kernel_source() -> tuple[str, str, bytes]:
    """``(module name, file name, compressed source)`` of the batch kernel
    as Dask workers install it (:func:`._dask_entry.run_kernel`)."""
    with open(kernel.__file__, "rb") as f:
        source = f.read()
    digest = hashlib.sha256(source).hexdigest()[:16]
    return f"_imap_kernel_{digest}", kernel.__file__, zlib.compress(source, 9)


KERNEL = _kernel_source()


def dask_placement() -> dict:
    """The placement annotations in force (``with dask.annotate(...)``):
    where a task added now may run. Empty if Dask was never imported."""
    dask = sys.modules.get("dask")
    if dask is None:
        return {}
    annotations = dask.get_annotations()
    return {key: annotations[key] for key in PLACEMENT if key in annotations}


def is_dask(executor: Any) -> bool:
    """Whether ``executor`` is a Dask ``distributed.Client``."""
    return type(executor).__module__.split(".")[0] == "distributed"


class _Impossible(Exception):
    """No worker of the cluster may run a group (see DaskBackend._allowed)."""


class _Rescue:
    """For the scatter thread: move what Dask queued behind ``future``."""

    __slots__ = ("future",)

    def __init__(self, future: Any) -> None:
        self.future = future


class DaskBackend(ExecutorBackend):
    """Batches as tasks of a Dask cluster (see the module docstring).

    Args:
        executor: a ``distributed.Client`` or a scheduler address.
        workers: the worker count to assume (None: the cluster's threads).
    """

    kind = "dask"
    carries_frames = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scattered: dict = {}  # future -> the Dask future of its scattered items
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()   # groups to scatter
        self._scatterer: threading.Thread | None = None
        self._owned = False         # a Client this backend opened (and closes)
        self._watch = SchedulerWatch(self)   # the cluster's size; its scheduler; recoveries
        self._elsewhere: dict = {}  # id(group) -> the workers it is to run on (see _rescue)
        self._hung: dict = {}       # key of a task holding an abandoned tasklet -> its worker

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        super().start()
        # Dask workers need nothing of this package: the entry travels by
        # value, the kernel as source.
        cloudpickle.register_pickle_by_value(_dask_entry)
        self._watch.start()
        self._scatterer = threading.Thread(target=self.guarded(self._scatter_loop,
                                                               "imap-dask-scatter"),
                                           name="imap-dask-scatter", daemon=True)
        self._scatterer.start()

    def _open_executor(self) -> Any:
        if not isinstance(self._given, str):
            return self._given
        self._owned = True
        return self._connect(self._given)

    @staticmethod
    def _connect(address: str) -> Any:
        try:
            distributed = importlib.import_module("distributed")
        except ImportError as exc:
            raise ImportError(
                f"executor={address!r} needs Dask distributed: install the extra with "
                f"pip install 'papy-imap[dask]'") from exc
        try:
            return distributed.Client(address, timeout=CONNECT_TIMEOUT,
                                      set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to the Dask scheduler at {address}: "
                                  f"{exc}") from exc

    def stop(self, forced: bool = False) -> None:
        executor = self._executor
        self._watch.halt()
        super().stop(forced)
        self._watch.join()
        if self._scatterer is not None:
            self._outbox.put(None)
            self._scatterer.join()
            self._scatterer = None
        if self._owned and executor is not None:
            try:
                executor.close()
            except Exception:  # the scheduler is gone already
                pass
        self._owned = False

    def _forget_all(self) -> None:
        self._watch.forget_all()
        self._hung.clear()
        self._scattered.clear()

    # -- size ----------------------------------------------------------------------

    def _size(self) -> int:
        return self._watch.threads   # refreshed by the watch thread, never under a lock

    @property
    def batch_work(self) -> float | None:
        """Dask batches may hold up to DASK_BATCH_WORK seconds of work."""
        return DASK_BATCH_WORK

    # -- submitting ------------------------------------------------------------------

    def _pack(self, batch: Batch) -> None:
        """Pickle the items of ``batch`` with their large buffers as frames."""
        super()._pack(batch)
        if batch.data is None:
            wire.pack_frames(batch)

    def _part(self, batch: Batch) -> Any:
        """The batch's items as a payload: with their large buffers as frames (Dask sends
        a frames record's memoryviews as frames of its own)."""
        return Payload(batch.data, batch.frames or None).to_wire()

    def _go(self, groups: list) -> None:
        """Submit ``groups``; those of large items go to the scatter thread
        instead (see SCATTER_BYTES)."""
        for group in groups:
            if sum(kernel.frames_size(self._part(b)) for b in group) > SCATTER_BYTES:
                self._outbox.put(group)
            else:
                self._launch(group, self._items(group))

    def _scatter_loop(self) -> None:
        """Scatter the items of large groups, then submit their tasks, one
        group at a time (a scatter waits a round trip: not in the threads
        that submit batches and take results)."""
        while (group := self._outbox.get()) is not None:
            if type(group) is _Rescue:
                if not self._stopping:
                    self._rescue(group.future)
                continue
            if self._stopping:
                self._launched()
                continue
            try:
                [items] = self._executor.scatter(
                    [self._items(group)], hash=False, timeout=dask_watch.SCHEDULER_GRACE,
                    workers=group[0].task.placement.get("workers"))
            except Exception as exc:   # a worker that died, a closed client
                self._launched()
                if not self._watch.recover(group, exc):
                    for batch in group:
                        self._refused(batch, exc)
                continue
            self._launch(group, items, scattered=items)

    def _submit_task(self, group: list, items: Any) -> Any:
        task = group[0].task
        placement = dict(task.placement)
        avoid = self._elsewhere.pop(id(group), None)
        if avoid is not None:
            placement.update(workers=avoid, allow_other_workers=False)
        allowed = self._allowed(group)
        if allowed is not None:
            if not allowed:
                raise _Impossible()
            if avoid is not None:
                allowed = [w for w in allowed if w in avoid] or allowed
            placement.update(workers=allowed, allow_other_workers=False)
        with self._lock:   # (never held here: _launch is called outside it)
            hung = set(self._hung.values())
        if hung and "workers" not in placement:   # not behind an abandoned tasklet
            free = [w for w in self._watch.addresses if w not in hung]
            if free:
                placement.update(workers=free, allow_other_workers=False)
        return self._executor.submit(
            _dask_entry.run_kernel, *KERNEL, task.payload()[0], self._init, items,
            log_level=self._level, frames=True, key=f"imap-batch-{uuid.uuid4().hex}",
            priority=self.depth_order * task.id, **placement)

    # -- functional dependencies: Dask workers that refused a task --------------------------

    def _refuser(self, errors: dict) -> Any:
        """The Dask worker that refused tasklets (its address, as the
        kernel names it: each Dask worker is checked on its own)."""
        worker = next((e.worker for e in errors.values() if getattr(e, "worker", None)), None)
        if worker and worker.startswith("dask "):
            return worker[5:]
        return self

    def may_run(self, task: Any) -> tuple[list, dict]:
        with self._lock:
            refused = dict(self._queue.refused.get(task.key, {}))
        names = [a for a in self._watch.addresses if a not in refused]
        return names, dict(refused.values())

    def _allowed(self, group: list) -> list | None:
        """The workers that may run ``group`` (those of the cluster that
        have not refused its task or tasklets); None: any worker."""
        refused = set(self._queue.refused.get(group[0].task.key, ()))
        for batch in group:
            refused.update(batch.refused_by or ())
        if not refused:
            return None
        addresses = self._watch.addresses
        if not addresses:   # no worker known now: Dask holds the task until one joins
            return None
        return [w for w in addresses if w not in refused]

    def _impossible(self, group: list) -> None:
        """Every worker of the cluster refused ``group``: its tasklets fail."""
        with self._lock:
            refused = dict(self._queue.refused.get(group[0].task.key, {}))
        for batch in group:
            self.deliver(batch, [None] * len(batch), refusal_errors(batch, refused))

    # -- skip=True: the tasks Dask queued behind a hung one -----------------------------

    def abandon(self, task: Any, index: int) -> None:
        """A consumer abandoned tasklet ``index`` of ``task`` (skip=True).
        Dask cannot stop the task running it, but the tasks it queued behind
        that one on the same worker are moved to the other workers (by the
        scatter thread, which asks the scheduler where they are). Called
        with the engine's lock held: takes this backend's lock briefly."""
        with self._lock:
            for future, group in self._inflight.items():
                if any(b.task is task and index in b.indices for b in group):
                    self._outbox.put(_Rescue(future))
                    return

    def _rescue(self, hung: Any) -> None:
        """Cancel the tasks queued behind ``hung`` on its worker and submit
        them again for the other workers (their items inside)."""
        try:
            processing = self._executor.processing()   # worker -> the keys it holds
        except Exception:   # the scheduler is not answering: nothing to do now
            return
        where = next((w for w, keys in processing.items() if hung.key in keys), None)
        others = [w for w in processing if w != where]
        if where is None or not others:
            return
        behind = set(processing[where]) - {hung.key}
        with self._lock:
            # Until the hung task ends, new batches go to the other workers
            # too (else Dask may queue one behind it again).
            self._hung[hung.key] = where
            moved = [(f, self._inflight.pop(f)) for f in list(self._inflight)
                     if f.key in behind]
            for future, group in moved:
                self._scattered.pop(future, None)
                self._elsewhere[id(group)] = others
            self._launching += len(moved)
        hung.add_done_callback(self._hung_ended)
        for future, group in moved:
            future.cancel()
            log.debug("moved a batch of task %d queued behind an abandoned tasklet on %s",
                      group[0].task.id, where)
            self._launch(group, self._items(group))

    def _hung_ended(self, future: Any) -> None:
        """A task holding an abandoned tasklet ended: its worker takes batches again."""
        with self._lock:
            self._hung.pop(future.key, None)

    def _launched(self, future: Any = None, group: list | None = None,
                  scattered: Any = None, recovery: bool = False) -> bool:
        with self._lock:
            self._launching -= 1
            if recovery:
                self._watch.recovery = future
            if future is None or self._stopping:
                return False
            self._inflight[future] = group
            if scattered is not None:
                self._scattered[future] = scattered   # alive until the task ends
            return True

    def _refused(self, batch: Batch, exc: BaseException) -> None:
        if isinstance(exc, _Impossible):
            self._impossible([batch])
        elif not self._watch.park_if_away([batch]):
            super()._refused(batch, exc)

    # -- results ---------------------------------------------------------------------

    def _forget(self, future: Any) -> Any:
        return {"scattered": self._scattered.pop(future, None),
                "recovery": self._watch.ended(future)}

    def _after(self, future: Any, noted: Any) -> None:
        if noted and noted.get("recovery"):
            self._watch.next_recovery()

    def _failed(self, group: list, exc: BaseException, noted: Any) -> bool:
        if self._watch.park_if_away(group):
            return False
        died = _worker_died(exc) or isinstance(exc, concurrent.futures.CancelledError)
        if (died and noted and noted.get("scattered") is not None
                and self._watch.recover(group, exc)):
            self._workers_lost += 1
            return True
        return super()._failed(group, exc, noted)
