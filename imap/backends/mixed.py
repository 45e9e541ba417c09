"""Local and remote workers behind one backend, and the choice between them."""

from __future__ import annotations

import collections
import threading
from typing import Any

from .base import Backend, Batch, Deliver, Lost
from .remote import PREFETCH, RemoteBackend


class MixedBackend(Backend):
    """Local workers (threads or processes) and remote workers behind one interface.

    A batch goes to the part with the most free room (``PREFETCH`` batches per
    worker); when neither has room it waits here until a result frees some.
    """

    kind = "mixed"

    def __init__(self, make_local: Any, make_remote: Any, deliver: Deliver, lost: Lost) -> None:
        super().__init__(deliver, lost)
        self._lock = threading.Lock()
        self._pending: collections.deque = collections.deque()
        self._stopping = False
        self.local = make_local(self._done_cb(0, deliver), self._done_cb(0, lost))
        self.remote = make_remote(self._done_cb(1, deliver), self._done_cb(1, lost))
        self._parts = (self.local, self.remote)
        self._held = [0, 0]

    @property
    def workers(self) -> int:
        return self.local.workers + self.remote.workers

    @property
    def workers_lost(self) -> int:
        return self.local.workers_lost + self.remote.workers_lost

    @workers_lost.setter
    def workers_lost(self, value: int) -> None:
        pass  # the parts count their own

    def start(self) -> None:
        self._stopping = False
        self._held = [0, 0]
        self.local.start()  # first: "fork" forks before any thread of the remote part
        try:
            self.remote.start()
        except BaseException:
            self.local.stop(forced=True)
            raise

    def stop(self, forced: bool = False) -> None:
        with self._lock:
            self._stopping = True
            self._pending.clear()
        self.remote.stop(forced)
        self.local.stop(forced)

    def submit(self, batch: Batch) -> None:
        with self._lock:
            self._pending.append(batch)
            moves = self._assign()
        self._send(moves)

    def _room(self, part: int) -> int:
        # The local part counts the workers it was asked for: a process being
        # replaced is back soon, and the process backend queues meanwhile.
        backend = self._parts[part]
        workers = backend.workers if part else backend.num
        return workers * PREFETCH - self._held[part]

    def _assign(self) -> list:
        """Pick a part for each queued batch that fits somewhere (lock held)."""
        moves = []
        while self._pending and not self._stopping:
            part = max((0, 1), key=self._room)
            if self._room(part) <= 0:
                break
            self._held[part] += 1
            moves.append((part, self._pending.popleft()))
        return moves

    def _send(self, moves: list) -> None:
        for part, batch in moves:
            self._parts[part].submit(batch)

    def _done_cb(self, part: int, callback: Any) -> Any:
        def done(batch: Batch, *rest: Any) -> None:
            with self._lock:
                self._held[part] -= 1
                moves = self._assign()
            self._send(moves)
            callback(batch, *rest)
        return done


def make_backend(imap: Any, deliver: Deliver, lost: Lost) -> Backend:
    """The backend of an IMap with ``worker_remote``: remote only, or mixed.

    Reads ``imap.worker_remote``, ``imap.worker_num``, ``imap.worker_type``,
    ``imap.start_method``, ``imap.initializer``, ``imap.initargs`` and the
    client options ``imap.remote_options`` (a dict; see :func:`connect`).
    """
    options = dict(getattr(imap, "remote_options", None) or {})
    initializer = getattr(imap, "initializer", None)
    initargs = getattr(imap, "initargs", ())

    def make_remote(d: Deliver, lo: Lost) -> RemoteBackend:
        return RemoteBackend(imap.worker_remote, d, lo, initializer, initargs, options)

    if imap.worker_num == 0:
        return make_remote(deliver, lost)

    def make_local(d: Deliver, lo: Lost) -> Backend:
        if imap.worker_type == "thread":
            from .thread import ThreadBackend
            return ThreadBackend(imap.worker_num, d, lo, initializer, initargs)
        from .process import ProcessBackend
        return ProcessBackend(imap.worker_num, d, lo, getattr(imap, "start_method", None),
                              initializer, initargs)

    return MixedBackend(make_local, make_remote, deliver, lost)
