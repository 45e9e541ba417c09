"""The common core of backends whose workers hold batches: process, remote.

A *slot* (:mod:`.slot`) is one worker as the parent sees it: the batches it holds (at most
``prefetch``: one running, the next already queued so the worker never waits
a round trip), the tasks whose function it has received, and whether it is
alive. :class:`SlotBackend` does what every such backend does alike:

* ``submit`` (the Feeder) prepares a batch to travel (``wire.prepare``),
  queues it, and *dispatches*: each queued batch goes to the least busy live
  slot with room, preceded by the task's function if that slot has not had
  it yet. The subclass's :meth:`SlotBackend._send` does the actual sending
  (a pipe, an RPyC request) and must not block.
* :meth:`SlotBackend._answered` (a subclass's receiving thread) takes the
  slot's oldest batch, dispatches more work to the freed slot, decodes the
  answer and hands it to the engine with the worker-side busy time.
* :meth:`SlotBackend._slot_died` marks a slot dead: the batches it had
  started are returned for the caller to report lost; those it never started
  go back to the queue for other slots. :meth:`SlotBackend._orphans` reports
  queued batches lost once no slot is left.
* With ``skip=True``, a worker still running an abandoned tasklet
  ``GIVE_UP_AFTER`` seconds later is cut off (:meth:`SlotBackend._cut_off`:
  a process is killed, a connection shut) and replaced, so the items
  behind it run.

Subclasses differ only in how a batch reaches a worker, how an answer comes
back and what happens when a worker dies (a process is replaced, a remote
connection is not).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from abc import abstractmethod
from typing import Any

from ..errors import UnsendableError
from ..flow.dispatch import Dispatcher
from ..transport import pickling, wire
from .base import Backend, Batch, BatchState, Deliver, Lost
from .slot import Slot

__all__ = ["Slot", "SlotBackend"]

log = logging.getLogger("imap")


class SlotBackend(Backend):
    """Workers that each hold up to ``prefetch`` batches (see the module doc).

    Args:
        where: how error messages name the destination ("to a worker process").
    """

    where = "to a worker"
    shared_memory = False   # its workers read large buffers from shared memory (imap.transport.shm)
    carries_frames = False  # large buffers travel beside the pickle (kernel.dumps_frames)

    def __init__(self, deliver: Deliver, lost: Lost, initializer: Any = None,
                 initargs: tuple = ()) -> None:
        super().__init__(deliver, lost)
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self._lock = threading.Lock()
        self._slots: list = []
        self._queue = Dispatcher(self._places, lambda: self.depth_order, steal=True,
                                 joining=self._joining)
        self._stopping = False
        self._peers: tuple = (self,)   # backends sharing this lock and dispatcher
        # Part of a larger pool (see MixedBackend): spill(batch) hands back
        # a queued batch once no worker of this backend is left to run it.
        self.spill: Any = None
        self._rejoiner: Any = None   # a rejoin.Rejoiner, for workers that can come back
        # views(refs): the buffers of answers sent out of band (process workers)
        self._views: Any = None

    @property
    def alive(self) -> int:
        return sum(1 for s in self._slots if s.alive)

    @property
    def capacity(self) -> int:
        return self.alive * self.prefetch

    def _init_payload(self) -> bytes | None:
        return wire.pickle_initializer(self.initializer, self.initargs, self.where[3:])

    def _task_payload(self, task: Any) -> bytes | None:
        """A task's function, args and kwargs as they travel to its workers."""
        return task.payload()[0]

    # -- submitting ----------------------------------------------------------------

    def submit(self, batch: Batch) -> None:
        batch = wire.prepare(self.deliver, batch, self.where)
        if batch is None:
            return
        with self._lock:
            if self._stopping or self._open():
                self._queue.put(batch)
                self._dispatch()
                failed = self._queue.impossible()
            else:
                failed = None
        if failed is None:
            self.lost(batch, self._none_left)
        else:
            self._settle(failed)

    def may_run(self, task: Any) -> tuple[list, dict]:
        with self._lock:
            return self._queue.may_run(task)

    def _settle(self, deliveries: list) -> None:
        """Deliver ``(batch, values, errors)`` triples that
        :meth:`Dispatcher.impossible` failed (lock not held); or, as part of
        a larger pool, pass them on to its other part (``pass_on``)."""
        for batch, values, errors in deliveries:
            if self.pass_on is not None:
                self.pass_on(batch, errors[0].refusals, errors[0].whole)
            else:
                self.deliver(batch, values, errors)

    def share_with(self, other: SlotBackend) -> None:
        """Run ``other``'s workers and this backend's as one pool: one lock,
        one dispatcher, whose places are the workers of both (a mixed pool
        of local processes and remote connections; batches are taken back
        across the two). Call before either starts."""
        other._lock = self._lock
        other._queue = self._queue
        self._peers = other._peers = (self, other)

    def _places(self) -> list:
        if len(self._peers) == 1:
            return self._slots
        return [s for peer in self._peers for s in peer._slots]

    def _open(self) -> bool:
        """Whether a queued batch can still be run by a peer (lock held)."""
        return any(peer._accepting() for peer in self._peers)

    def _accepting(self) -> bool:
        """Whether a queued batch can still be run (lock held): a worker is
        alive, or one is being brought back and batches may wait for it."""
        return any(s.alive for s in self._slots) or self._coming()

    def _coming(self) -> bool:
        """Whether a worker is on its way to join (lock held)."""
        return self._rejoiner is not None and self._rejoiner.waiting()

    def _joining(self) -> bool:
        return any(peer._coming() for peer in self._peers)

    def _join(self, slot: Any) -> bool:
        """Add ``slot`` (a worker brought back) to the pool, in place of the
        dead slot of its name; False if the backend is stopping."""
        with self._lock:
            if self._stopping:
                return False
            for i, old in enumerate(self._slots):
                if old.name == slot.name and not old.alive:
                    self._slots[i] = slot
                    break
            else:
                self._slots.append(slot)
            self._dispatch()
        return True

    _none_left = "no worker is left"

    def _dispatch(self) -> None:
        """Bind queued batches to workers (lock held): see
        :mod:`imap.flow.dispatch`."""
        if not self._stopping:
            self._queue.dispatch()

    def _bind(self, slot: Slot, batch: Batch) -> None:
        """Send ``batch`` to ``slot``'s worker, preceded by the task's
        function if that worker has not had it (lock held)."""
        key = batch.task.key
        payload = None
        batch.unpack_unless(self.shared_memory, self.carries_frames)
        if batch.data is None:   # tasklets split off a batch (refused ones, say)
            self._pack(batch)
            if batch.data is None:
                batch.data = pickling.dumps(batch.items)
        if key not in slot.known:
            slot.known.add(key)
            payload = self._task_payload(batch.task)
        if not slot.held:
            slot.began = None if self._says_begun(batch) else time.monotonic()
        slot.held.append(batch)
        slot.tickets += 1
        batch.send(slot, slot.tickets, stepwise=batch.careful and self.stepwise)
        self._send(slot, batch, payload)

    def _take_back(self, slot: Slot, first: int, fits: Any = None) -> bool:
        """Ask the worker of ``slot`` to give back the batches it holds from
        position ``first`` on (those ``fits`` accepts, if given), if it has
        not started them (lock held). Those given back at once are queued
        again, first in line; True if any was. A backend whose workers
        answer later calls :meth:`_given_back` for each."""
        taken = False
        for batch in reversed(list(slot.held)[first:]):
            if batch.state is not BatchState.SENT or (fits is not None and not fits(batch)):
                continue   # asked back already, or known to run
            answer = self._reclaim(slot, batch)
            if answer is None:   # asked: the answer comes later
                batch.reclaim()
            elif answer:
                slot.held.remove(batch)
                batch.take_back()
                self._queue.requeue(batch)
                taken = True
        return taken

    def _given_back(self, slot: Slot, batch: Batch, ok: bool) -> None:
        """The worker of ``slot`` answered a request to give ``batch`` back:
        ``ok``, it had not started it (lock held). An answer that comes
        after the batch moved on (answered, lost, known to run) changes
        nothing."""
        if batch.state is not BatchState.RECLAIMING:
            return
        if ok and batch in slot.held:
            slot.held.remove(batch)
            batch.take_back()
            self._queue.requeue(batch)
            self._dispatch()
        else:
            batch.stay()

    def _says_begun(self, batch: Batch) -> bool:
        """Whether the worker tells when it begins ``batch`` (an empty
        partial answer first): until then the batch has not begun (a worker
        process may still be starting)."""
        return False

    def _reclaim(self, slot: Slot, batch: Batch) -> bool | None:
        """Take ``batch`` back from ``slot``'s worker if it has not started
        it (lock held; must not block for long): True if taken back, False
        if it started (or cannot be taken back), None if asked and the
        answer comes later (see :meth:`_given_back`)."""
        return False

    def _pack(self, batch: Batch) -> None:
        """Pickle the items of ``batch`` into ``batch.data`` the way its
        workers take them best, if it can (else wire.prepare does)."""

    def _done_with(self, batch: Batch) -> None:
        """``batch`` was answered: what was kept for its worker to read goes."""

    @abstractmethod
    def _send(self, slot: Any, batch: Batch, payload: bytes | None) -> None:
        """Send ``batch`` (and first the task's ``payload`` if not None) to
        ``slot``'s worker. Called with the lock held: must not block."""

    # -- answers and deaths ------------------------------------------------------------

    def _answered(self, slot: Any, data: bytes, ticket: int | None = None) -> None:
        """File the answer ``data`` of ``slot``'s oldest batch (the batch of
        that ``ticket``, if given: the others ahead of it were taken back).

        A partial answer (the first tasklets of a batch still running) is
        delivered as a batch of its own; the batch keeps the others. An
        answer that cannot be read here fails its batch, never this thread.
        """
        slot.heard = slot.began = time.monotonic()
        with self._lock:
            batch = slot.held[0]
            if ticket is not None and batch.ticket != ticket:
                batch = next((b for b in slot.held if b.ticket == ticket), None)
                if batch is None:   # not ours any more (a slot replaced meanwhile)
                    return
        oob_bytes = 0
        try:
            answer = wire.decode_answer(batch, data, self._views)
            oob_bytes = answer.oob_bytes
        except Exception as exc:
            with self._lock:
                slot.held.remove(batch)
                self._dispatch()
            self._done_with(batch)
            wire.fail_batch(self.deliver, batch, wire.unreadable_answer(batch, exc), exc)
            return
        failed: list = []
        if answer.more and not answer.values:   # the batch began (see _says_begun)
            return
        if answer.more:
            with self._lock:
                batch = batch.split_off(len(answer.values))
                if answer.errors:
                    answer, failed = self._sort(slot, batch, answer)
        else:
            with self._lock:
                slot.held.remove(batch)
                if answer.errors:
                    answer, failed = self._sort(slot, batch, answer)
                self._dispatch()
            self._done_with(batch)
            batch.nbytes = wire.bytes_alive(batch, data, oob_bytes)
        if answer is not None:
            self.deliver(batch, answer.values, answer.errors, answer.busy, answer.peak)
        self._settle(failed)

    def _sort(self, slot: Any, batch: Batch, answer: Any) -> tuple:
        """Take the tasklets that ``slot`` refused out of ``answer`` (lock
        held; see Dispatcher.answered): returns the answer to deliver for
        what ``batch`` keeps (None if nothing) and the batches that no
        worker can run, failed."""
        out = self._queue.answered(slot, batch, answer.values, answer.errors)
        if out and out[0][0] is batch and out[0][1] is not answer.values:
            answer = answer._replace(values=out[0][1], errors=out[0][2])
        elif not out:
            answer = None
        return answer, self._queue.impossible()

    def _failed_one(self, slot: Any, exc: BaseException, message: str) -> None:
        """``slot``'s oldest batch failed as a whole (the worker lives on)."""
        with self._lock:
            batch = slot.held.popleft()
            self._dispatch()
        wire.fail_batch(self.deliver, batch, UnsendableError(message), exc)

    def _slot_died(self, slot: Any, started: int) -> tuple[list, bool]:
        """Mark ``slot`` dead. Returns ``(batches it had started, stopping)``.

        Its first ``started`` held batches were (or may have been) running;
        the others go back to the queue for other slots. (Batches that no
        other slot may run, functional dependencies, fail in
        :meth:`_orphans`, which the caller calls once it knows whether a
        worker comes in place of this one.)
        """
        spill: list = []
        with self._lock:
            slot.alive = False
            held = list(slot.held)
            slot.held.clear()
            stopping = self._stopping
            if not stopping:
                for batch in held[started:]:   # lost with it, though never started
                    batch.lose()
                self._queue.requeue_all(held[started:])
                self._dispatch()
                if self.spill is not None and not any(s.alive for s in self._places()):
                    spill = self._queue.clear()
        for batch in spill:   # other workers of a pool this backend is part of run them
            self.spill(batch)
        return held[:started], stopping

    def _orphans(self) -> None:
        """Report queued batches lost when no slot can run them any more."""
        with self._lock:
            if self._stopping:
                return
            if self._open():
                failed = self._queue.impossible()
                orphans = []
            else:
                failed = []
                orphans = self._queue.clear()
        self._settle(failed)
        for batch in orphans:
            self.lost(batch, self._none_left)

    # -- abandoned tasklets (skip=True) ------------------------------------------------

    def abandon(self, task: Any, index: int) -> None:
        """As :meth:`Backend.abandon`; besides, the batches queued behind
        the abandoned tasklet at its worker are taken back and run
        elsewhere, and that worker gets no more work until it is free."""
        super().abandon(task, index)
        with self._lock:
            for slot in self._places():   # a mixed pool's places are of both parts
                if slot.alive and any(b.abandoned for b in slot.held):
                    slot.owner._take_back(slot, 1)
            self._dispatch()

    def began(self, task: Any, index: int) -> float | None:
        with self._lock:
            for slot in self._places():
                for pos, batch in enumerate(slot.held):
                    if batch.task is task and index in batch.indices:
                        first = pos == 0 and batch.indices[0] == index
                        return slot.began if first and slot.alive else None
        return None

    def running_tasklets(self) -> list:
        with self._lock:
            return [(s.held[0].task, s.held[0].indices[0], s.began)
                    for s in self._places()
                    if s.alive and s.held and len(s.held[0]) and s.began is not None]

    def _running_batch(self, task: Any, index: int) -> Batch | None:
        with self._lock:
            for batch in itertools.chain(self._queue.pending, *(s.held for s in self._places())):
                if batch.task is task and index in batch.indices:
                    return batch
        return None

    def _give_up(self, batch: Batch) -> bool:
        """Cut off the worker still running ``batch`` (it holds an abandoned
        tasklet): it is then lost like any dead worker, and replaced."""
        with self._lock:
            if self._stopping:
                return False
            for slot in self._places():
                if slot.alive and slot.held and slot.held[0] is batch:
                    batch.give_up()
                    slot.owner._cut_off(slot)
                    return False
            return batch in self._queue.pending or any(batch in s.held for s in self._places())

    @abstractmethod
    def _cut_off(self, slot: Any) -> None:
        """End the worker of ``slot`` now (lock held; must not block): its
        receiving thread then sees it die."""

    def _begin_stop(self) -> list:
        """Stop dispatching; return the slots to shut down."""
        with self._lock:
            self._stopping = True
            self._queue.clear()
            return list(self._slots)
