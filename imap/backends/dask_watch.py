"""What a :class:`~.dask.DaskBackend` watches and mends while it runs.

:class:`SchedulerWatch` owns the ``imap-dask-watch`` thread. Every
``REFRESH`` seconds it looks at the cluster:

* its size: the threads of its workers (the backend's worker count) and
  their addresses (where a task may be placed), so that workers that join
  or leave count;
* its scheduler: a client that has lost its scheduler for
  ``SCHEDULER_GRACE`` seconds, or a cluster left without a worker for as
  long, fails what is in flight and queued with ``ConnectionError``; when
  the scheduler comes back, the groups whose tasks failed while it was away
  (*parked* here by :meth:`SchedulerWatch.park_if_away`) run again, and if
  it is another scheduler (one restarted at the same address) so do the
  tasks in flight, which went with the old one and would never end.

It also reruns the groups whose scattered items were lost with their worker,
one at a time (:meth:`SchedulerWatch.recover`).

What it touches of its backend, under the backend's lock: the tasks in
flight (``_inflight``), the groups being launched (``_launching``), the
backend's queue and what it keeps per task (``_forget_all``); it launches
groups again through the backend (``_launch``), outside the lock.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

from ..transport import wire

log = logging.getLogger("imap")

REFRESH = 0.5           # seconds between looks at a Dask cluster (size, scheduler)
SCHEDULER_GRACE = 10.0  # seconds a Dask scheduler may be unreachable

_STARTING = object()   # a recovery being submitted (SchedulerWatch.recovery)


class SchedulerWatch:
    """The cluster's size and scheduler, watched for ``backend`` (see the
    module docstring).

    Attributes:
        threads: the cluster's threads, as last looked up (at least 1).
        addresses: the cluster's workers, as last looked up.
        recovery: the future of the group being rerun now (``_STARTING``
            while it is submitted), None if none is.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.threads = 1
        self.addresses: list = []
        self.recovery: Any = None
        self._parked: list = []   # groups whose tasks failed while the scheduler was away
        self._recovering: collections.deque = collections.deque()   # see recover
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        self._done.clear()
        self.refresh()
        self._thread = threading.Thread(target=self.backend.guarded(self._watch,
                                                                    "imap-dask-watch"),
                                        name="imap-dask-watch", daemon=True)
        self._thread.start()

    def halt(self) -> None:
        """Tell the thread to end (it ends within ``REFRESH`` seconds)."""
        self._done.set()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def forget_all(self) -> None:
        """Forget the groups parked and those waiting to be rerun (the
        backend's lock held)."""
        self._parked.clear()
        self._recovering.clear()
        self.recovery = None

    # -- the cluster ---------------------------------------------------------------------

    def refresh(self) -> None:
        """Look the cluster's size up again (kept as it was if the
        scheduler does not answer)."""
        try:
            threads = self.backend._executor.nthreads()
        except Exception:   # the scheduler is not answering: keep the last count
            return
        self.addresses = list(threads)
        self.threads = max(1, sum(threads.values()))

    def status(self) -> str:
        """The client's status: ``"running"`` while it has its scheduler."""
        return getattr(self.backend._executor, "status", "running")

    def _has_workers(self) -> bool:
        try:
            return bool(self.backend._executor.nthreads())
        except Exception:   # not answering: the status tells
            return True

    def _scheduler_id(self) -> Any:
        """The identity of the scheduler the client talks to (None if unknown)."""
        try:
            return self.backend._executor.scheduler_info(n_workers=0).get("id")
        except Exception:   # not answering, or an older client
            return None

    # -- a scheduler that goes away ------------------------------------------------------

    def park_if_away(self, group: list) -> bool:
        """If the client has lost its scheduler, keep ``group`` (its task
        failed with the scheduler, not in a worker) to run again if the
        scheduler comes back within ``SCHEDULER_GRACE``, else to fail then
        with ``ConnectionError``; at once if the client is closed."""
        status = self.status()
        if status == "running":
            return False
        if status in ("closed", "closing"):
            for batch in group:
                error = ConnectionError(f"the Dask scheduler is unreachable (client {status})")
                wire.fail_batch(self.backend.deliver, batch, error, error)
            return True
        with self.backend._lock:
            self._parked.append(group)
        return True

    def _watch(self) -> None:
        away_since = None
        idle_since = None   # since when the cluster has had no worker
        known = self._scheduler_id()
        while not self._done.wait(REFRESH):
            status = self.status()
            if status == "running":
                back = away_since is not None
                away_since = None
                self.refresh()   # workers that joined or left
                if self._has_workers():
                    idle_since = None
                else:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= SCHEDULER_GRACE:
                        self._lost("running, with no worker")
                        idle_since = None
                now_id = self._scheduler_id()
                replaced = known is not None and now_id is not None and now_id != known
                if back or replaced or self._parked:
                    self._back(replaced)
                known = now_id or known
                continue
            now = time.monotonic()
            away_since = away_since or now
            if now - away_since >= SCHEDULER_GRACE or status in ("closed", "closing"):
                self._lost(status)
                away_since = None

    def _back(self, replaced: bool) -> None:
        """The client has its scheduler again: the groups whose tasks failed
        while it was away run again; if it is another scheduler (one
        restarted at the same address), so do the tasks in flight, which
        went with the old one and would never end. Their items inside."""
        backend = self.backend
        with backend._lock:
            if backend._stopping:
                return
            moved = [(None, group) for group in self._parked]
            self._parked.clear()
            if replaced:
                moved += list(backend._inflight.items())
                moved += [(None, group) for group in self._recovering]
                backend._inflight.clear()
                backend._forget_all()
            backend._launching += len(moved)
        if moved:
            log.warning("the Dask scheduler is back%s; running %d task(s) again",
                        " (another one)" if replaced else "", len(moved))
        for future, group in moved:
            if future is not None:
                try:
                    future.cancel()
                except Exception:   # the old scheduler is gone
                    pass
            backend._launch(group, backend._items(group))

    def _lost(self, status: str) -> None:
        backend = self.backend
        with backend._lock:
            batches = [b for group in backend._inflight.values() for b in group]
            batches += backend._queue.clear()
            batches += [b for group in [*self._recovering, *self._parked] for b in group]
            backend._inflight.clear()
            backend._forget_all()
        if not batches:
            return
        log.error("the Dask cluster cannot run the tasks (client %s); failing %d batch(es)",
                  status, len(batches))
        for batch in batches:
            error = ConnectionError(f"the Dask cluster cannot run the tasks (client {status}) "
                                    f"for {SCHEDULER_GRACE:g} s")
            wire.fail_batch(backend.deliver, batch, error, error)

    # -- groups whose scattered items died with their worker ----------------------------

    def recover(self, group: list, exc: BaseException) -> bool:
        """Rerun ``group``, whose scattered items were lost with their worker
        (``exc``), with its items inside its task; False if the backend
        stops or the scheduler is gone (the caller fails the group).

        Every task that was to take items from a worker that died loses
        them, the one whose tasklet killed the worker among the others, and
        none can tell which it was. So they are rerun one at a time, each
        after the last ended: Dask reruns each after a death as usual, and
        a task whose tasklet kills every worker it runs on fails alone (as
        ``KilledWorker`` after Dask's allowed-failures, a lost batch) while
        its neighbours wait here, not on the workers it kills.
        """
        with self.backend._lock:
            if self.backend._stopping or self.status() != "running":
                return False
            self._recovering.append(group)
        log.info("%d batch(es) of task %d lost their scattered items (%r): to be rerun "
                 "with their items inside", len(group), group[0].task.id, exc)
        self.next_recovery()
        return True

    def next_recovery(self) -> None:
        """Rerun the next group waiting to be if none is being rerun."""
        backend = self.backend
        with backend._lock:
            if self.recovery is not None or backend._stopping or not self._recovering:
                return
            group = self._recovering.popleft()
            self.recovery = _STARTING
            backend._launching += 1
        backend._launch(group, backend._items(group), recovery=True)

    def ended(self, future: Any) -> bool:
        """Whether ``future``, which ended, was the group being rerun (the
        backend's lock held): the next one may go."""
        if future is not self.recovery:
            return False
        self.recovery = None
        return True
