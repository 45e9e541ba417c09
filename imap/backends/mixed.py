"""Local and remote workers behind one backend."""

from __future__ import annotations

import collections
import threading
from typing import Any

from .base import Backend, Batch, Deliver, Lost


class MixedBackend(Backend):
    """Local workers (threads or processes) and remote workers behind one interface.

    A batch goes to the part with the most free room (its ``capacity`` less
    the batches it holds); when neither has room it waits here until a result
    frees some. A batch is held by its part from its submission until its
    last answer (or its loss); partial answers do not free room.
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
        self._held: list[set] = [set(), set()]  # the batches each part holds

    @property
    def stepwise(self) -> bool:  # type: ignore[override]
        return self.local.stepwise or self.remote.stepwise

    @property
    def depth_order(self) -> int:  # type: ignore[override]
        return self.local.depth_order

    @depth_order.setter
    def depth_order(self, value: int) -> None:
        self.local.depth_order = self.remote.depth_order = value

    @property
    def alive(self) -> int:
        return self.local.alive + self.remote.alive

    @property
    def capacity(self) -> int:
        return self.local.capacity + self.remote.capacity

    @property
    def workers_lost(self) -> int:
        return self.local.workers_lost + self.remote.workers_lost

    def start(self) -> None:
        self._stopping = False
        self._held = [set(), set()]
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

    def abandon(self, task: Any, index: int) -> None:
        for part in self._parts:   # the part holding the tasklet cuts its worker off
            part.abandon(task, index)

    def submit(self, batch: Batch) -> None:
        with self._lock:
            self._pending.append(batch)
            moves = self._assign()
        self._send(moves)

    def _room(self, part: int) -> int:
        return self._parts[part].capacity - len(self._held[part])

    def _assign(self) -> list:
        """Pick a part for each queued batch that fits somewhere (lock held)."""
        moves = []
        while self._pending and not self._stopping:
            part = max((0, 1), key=self._room)
            if self._room(part) <= 0:
                break
            self._held[part].add(batch := self._pending.popleft())
            moves.append((part, batch))
        return moves

    def _send(self, moves: list) -> None:
        for part, batch in moves:
            self._parts[part].submit(batch)

    def _done_cb(self, part: int, callback: Any) -> Any:
        def done(batch: Batch, *rest: Any) -> None:
            with self._lock:
                held = self._held[part]
                moves = []
                if batch in held:  # else a partial answer: the batch runs on
                    held.discard(batch)
                    moves = self._assign()
            self._send(moves)
            callback(batch, *rest)
        return done
