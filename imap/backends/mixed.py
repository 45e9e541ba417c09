"""Local and remote workers behind one backend."""

from __future__ import annotations

import threading
from typing import Any

from ..flow.dispatch import Dispatcher
from .base import Backend, Batch, Deliver, Lost
from .slots import SlotBackend


class _Part:
    """One part of the pool (local or remote) as a place of the dispatcher:
    it holds a batch from its submission to its last answer or its loss.
    Each part binds its batches to its own workers, late, and takes back
    what they have not started; batches are not taken back across parts."""

    def __init__(self, backend: Backend, moves: list, name: str) -> None:
        self.backend = backend
        self.name = name
        self.held: set = set()
        self._moves = moves   # (part, batch) to submit once the lock is released

    @property
    def alive(self) -> bool:
        return self.backend.alive > 0

    def room(self) -> int:
        return self.backend.capacity - len(self.held)

    def idle(self) -> bool:
        return False

    def bind(self, batch: Batch) -> None:
        batch.withdraw()   # this part queues it again for its own workers
        self.held.add(batch)
        self._moves.append((self.backend, batch))

    def take_back(self, fits: Any = None) -> bool:
        return False


class MixedBackend(Backend):
    """Local workers (threads or processes) and remote workers behind one interface.

    Local processes and remote connections form one pool: the two backends
    share one lock and one dispatcher whose places are the workers of both,
    so a batch is bound late to any worker and taken back across them.
    Local threads (which take batches from a dispatcher of their own as
    they free up, under a lock of their own) and remote connections stay
    two parts: a batch goes to the part with the most free
    room (its ``capacity`` less the batches it holds), or waits here until a
    result frees some; it is held by its part from its submission until its
    last answer (or its loss), and is not taken back across parts.
    """

    kind = "mixed"

    def __init__(self, make_local: Any, make_remote: Any, deliver: Deliver, lost: Lost) -> None:
        super().__init__(deliver, lost)
        self._lock = threading.Lock()
        self._stopping = False
        self.local = make_local(self._done_cb(0, deliver), self._done_cb(0, lost))
        self.remote = make_remote(self._done_cb(1, deliver), self._done_cb(1, lost))
        self._moves: list = []
        self._places = (_Part(self.local, self._moves, "the local workers"),
                        _Part(self.remote, self._moves, "the remote workers"))
        self._queue = Dispatcher(lambda: self._places)
        # Local processes and remote connections share one dispatcher: a
        # batch is bound to any worker of either, and taken back across them.
        self.joined = isinstance(self.local, SlotBackend) and isinstance(self.remote, SlotBackend)
        if self.joined:
            self.local.deliver = self.remote.deliver = deliver
            self.local.lost = self.remote.lost = lost
            self.local.share_with(self.remote)
        else:
            if isinstance(self.remote, SlotBackend):
                self.remote.spill = self._spilled_by(1)
            self.local.pass_on = self._passed_on(0)
            self.remote.pass_on = self._passed_on(1)

    @property
    def partial(self) -> bool:  # type: ignore[override]
        return self.local.partial and self.remote.partial

    @property
    def stepwise(self) -> bool:  # type: ignore[override]
        return self.local.stepwise or self.remote.stepwise

    @property
    def depth_order(self) -> int:  # type: ignore[override]
        return self.local.depth_order

    def configure(self, depth_order: int | None = None, group_limit: Any = None,
                  prefetch: int | None = None, on_crash: Any = None) -> None:
        self.local.configure(depth_order, group_limit, prefetch, on_crash)
        self.remote.configure(depth_order, group_limit, prefetch, on_crash)

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
        for place in self._places:
            place.held.clear()
        self.local.start()  # first: "fork" forks before any thread of the remote part
        try:
            self.remote.start()
        except BaseException:
            self.local.stop(forced=True)
            raise

    def stop(self, forced: bool = False) -> None:
        with self._lock:
            self._stopping = True
            self._queue.clear()
        self.remote.stop(forced)
        self.local.stop(forced)

    def abandon(self, task: Any, index: int) -> None:
        for part in (self.local, self.remote):   # the part holding the tasklet cuts its worker off
            part.abandon(task, index)

    def began(self, task: Any, index: int) -> float | None:
        for part in (self.local, self.remote):
            when = part.began(task, index)
            if when is not None:
                return when
        return None

    def running_tasklets(self) -> list:
        if self.joined:   # one dispatcher: its places are the workers of both parts
            return self.local.running_tasklets()
        return self.local.running_tasklets() + self.remote.running_tasklets()

    def submit(self, batch: Batch) -> None:
        if self.joined:   # items prepared to travel to a remote host (or a process)
            self.remote.submit(batch)
            return
        with self._lock:
            self._queue.put(batch)
            moves = self._assign()
        self._send(moves)

    def _assign(self) -> list:
        """Bind what fits to a part (lock held); the moves to submit."""
        if not self._stopping:
            self._queue.dispatch()
        moves = list(self._moves)
        self._moves.clear()
        return moves

    @staticmethod
    def _send(moves: list) -> None:
        for part, batch in moves:
            part.submit(batch)

    def _spilled_by(self, part: int) -> Any:
        def spilled(batch: Batch) -> None:
            """A part with no worker left hands back a batch it held: the
            other part runs it."""
            with self._lock:
                self._places[part].held.discard(batch)
                if self._stopping:
                    return
                self._queue.requeue(batch)
                moves = self._assign()
            self._send(moves)
        return spilled

    def _passed_on(self, part: int) -> Any:
        def passed_on(batch: Batch, refusals: dict, whole: bool) -> None:
            """No worker of a part will run the tasklets of ``batch`` (each
            refused them; ``refusals``: worker -> why): the other part may."""
            place = self._places[part]
            why = "; ".join(f"{name}: {reason}" for name, reason in refusals.items())
            with self._lock:
                place.held.discard(batch)
                if self._stopping:
                    return
                self._queue.refuse(batch, place, why, place.name, whole=whole)
                self._queue.requeue(batch)
                failed = self._queue.impossible()
                moves = self._assign()
            self._send(moves)
            for done, values, errors in failed:
                self.deliver(done, values, errors)
        return passed_on

    def may_run(self, task: Any) -> tuple[list, dict]:
        if self.joined:
            return self.remote.may_run(task)
        names: list = []
        refused: dict = {}
        for part in (self.local, self.remote):
            n, r = part.may_run(task)
            names += n
            refused.update(r)
        return names, refused

    def _done_cb(self, part: int, callback: Any) -> Any:
        def done(batch: Batch, *rest: Any) -> None:
            with self._lock:
                held = self._places[part].held
                moves = []
                if batch in held:  # else a partial answer: the batch runs on
                    held.discard(batch)
                    moves = self._assign()
            self._send(moves)
            callback(batch, *rest)
        return done
