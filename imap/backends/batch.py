"""A batch and its life: named states and the one table of allowed moves.

A :class:`Batch` is a run of contiguous tasklets of one task that travels to
one worker in one message. Its life is a small set of named states
(:class:`BatchState`) and one table of allowed transitions
(:data:`TRANSITIONS`); every change of state is a method of the batch that
checks the table and raises :class:`BatchStateError` on a move the table
does not allow. Nobody else assigns its state, its place, its ticket or the
tasklets abandoned or refused in it::

    DRAWN ──queue──▶ QUEUED ──send──▶ SENT ──start──▶ RUNNING ──answer──▶ ANSWERED
      ▲                │   ▲             │  ▲               │
      └──withdraw──────┘   │       reclaim  stay            ├──lose────▶ LOST ──queue, answer
                           │             ▼  │               ├──give_up─▶ GIVEN_UP ──resume▶ DRAWN
                           ├─queue─ TAKEN_BACK ◀─ RECLAIMING └──refuse──▶ REFUSED ──queue
                           └───────────────────────────────────────────────────┘

(SENT and RECLAIMING may also be answered, lost, given up or refused
directly; a thread takes a QUEUED batch straight to RUNNING; a DRAWN batch
may be answered, lost or refused without ever being queued.)

What each state means:

* ``DRAWN``: made and at no place: drawn by the Feeder, split off another
  batch (a retry, the halves of a lost one, unsendable tasklets), taken out
  of a queue without being sent, or resumed after its worker was given up.
* ``QUEUED``: waiting in a backend's queue (its
  :class:`~imap.flow.dispatch.Dispatcher`) for a place.
* ``SENT``: bound to a place (a worker process, a remote connection, an
  executor): it may have started there.
* ``RECLAIMING``: asked back from its worker; the answer comes later.
* ``RUNNING``: known to run: a thread took it, or a partial answer came.
* ``TAKEN_BACK``: given back by a worker that had not started it; it is
  queued again at once, first in line.
* ``REFUSED``: a place refused its tasklets (a functional dependency unmet
  there); it is queued again for the other places.
* ``GIVEN_UP``: its worker was cut off (skip=True) because it still ran an
  abandoned tasklet; once the worker is gone, the abandoned tasklets fail
  and the others run again (``resume``).
* ``LOST``: its worker died holding it: run again (``queue``; lost again
  at once by a pool that can take nothing more), or failed (``answer``).
* ``ANSWERED``: its results were filed with the engine. Final.

Abandoned tasklets (skip=True, :meth:`Batch.abandon`) are a mark on
tasklets, not a state: a batch holding one still travels (it may be taken
back, queued, answered) until its worker is given up.

Transitions are made by the thread that holds the batch at that moment
(under its backend's lock, or after taking it out of every shared
structure), so they need no lock of their own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Batch", "BatchState", "BatchStateError", "TRANSITIONS"]


class BatchState(enum.Enum):
    """Where a batch is in its life (see the module docstring)."""

    DRAWN = "drawn"
    QUEUED = "queued"
    SENT = "sent"
    RECLAIMING = "reclaiming"
    RUNNING = "running"
    TAKEN_BACK = "taken back"
    REFUSED = "refused"
    GIVEN_UP = "given up"
    LOST = "lost"
    ANSWERED = "answered"


S = BatchState

# state -> {event (the method's name): the state it leads to}. The one table.
TRANSITIONS: dict[BatchState, dict[str, BatchState]] = {
    S.DRAWN: {"queue": S.QUEUED, "refuse": S.REFUSED, "lose": S.LOST, "answer": S.ANSWERED},
    S.QUEUED: {"send": S.SENT, "start": S.RUNNING, "withdraw": S.DRAWN},
    S.SENT: {"start": S.RUNNING, "reclaim": S.RECLAIMING, "take_back": S.TAKEN_BACK,
             "refuse": S.REFUSED, "give_up": S.GIVEN_UP, "lose": S.LOST,
             "answer": S.ANSWERED},
    S.RECLAIMING: {"stay": S.SENT, "take_back": S.TAKEN_BACK, "start": S.RUNNING,
                   "refuse": S.REFUSED, "give_up": S.GIVEN_UP, "lose": S.LOST,
                   "answer": S.ANSWERED},
    S.RUNNING: {"start": S.RUNNING, "refuse": S.REFUSED, "give_up": S.GIVEN_UP,
                "lose": S.LOST, "answer": S.ANSWERED},
    S.TAKEN_BACK: {"queue": S.QUEUED},
    S.REFUSED: {"queue": S.QUEUED},
    S.GIVEN_UP: {"resume": S.DRAWN, "answer": S.ANSWERED},
    # A lost batch run again on a pool that can take nothing more is lost
    # again at once, without being queued.
    S.LOST: {"queue": S.QUEUED, "lose": S.LOST, "answer": S.ANSWERED},
    S.ANSWERED: {},
}

# The states of a batch at a place, which may answer its first tasklets
# while it runs on (split_off): a batch given up may, until its worker is gone.
_SPLITS = (S.SENT, S.RECLAIMING, S.RUNNING, S.GIVEN_UP)


class BatchStateError(RuntimeError):
    """A batch was asked to make a move its transition table does not allow:
    a bug in imap (please report it with the message)."""


@dataclass(eq=False)
class Batch:
    """Tasklets of one task sent to one worker in one message.

    Attributes:
        task: the engine's task record (``key``, ``func``, ``args``,
            ``kwargs``, ``name``, ``payload()``).
        indices: the tasklets' indices within the task, in order.
        items: the tasklets' input items, aligned with ``indices``.
        attempt: 0 for the first submission, n for the n-th retry.
        careful: run it reporting each tasklet as it ends (it is being run
            again after its worker died, and may hold the tasklet that
            killed it). Fixed when the batch is made.

    Besides its state (read-only: :attr:`state`, :attr:`stepwise`,
    :attr:`ticket`, :attr:`place`, :attr:`abandoned`, :attr:`refused_by`),
    a batch caches how it travels (``data``, ``refs``, ``segment``,
    ``frames``: set by the transport) and what was measured of it
    (``sent``, ``nbytes``).
    """

    task: Any
    indices: Any
    items: list
    attempt: int = 0
    data: bytes | None = field(default=None, repr=False)  # pickled items, cached
    sent: float | None = field(default=None, repr=False)     # perf_counter() when submitted
    nbytes: int | None = field(default=None, repr=False)     # pickled items + results
    careful: bool = False
    # Places that refused these tasklets (each raised imap.UnmetDependency
    # there) -> (the place's name, why): see flow.dispatch. Shared, never
    # changed in place: a refusal makes a new dict.
    refused_by: dict | None = field(default=None, repr=False)
    # Where the large buffers of ``data`` are (imap.transport.shm; local worker
    # processes): (segment, offset, length) each, and the segment written
    # for them (removed once the batch is answered).
    refs: tuple = field(default=(), repr=False)
    segment: str | None = field(default=None, repr=False)
    # The large buffers of ``data`` as frames beside it (kernel.dumps_frames;
    # an executor whose transport carries frames: Dask): views of the items.
    frames: list | None = field(default=None, repr=False)
    _state: BatchState = field(default=S.DRAWN, init=False)
    _place: Any = field(default=None, init=False, repr=False)
    _ticket: int = field(default=0, init=False, repr=False)
    _stepwise: bool = field(default=False, init=False, repr=False)
    _abandoned: frozenset = field(default=frozenset(), init=False, repr=False)

    def __len__(self) -> int:
        return len(self.items)

    # -- what it is now (read-only) ---------------------------------------------------

    @property
    def state(self) -> BatchState:
        """Where it is in its life."""
        return self._state

    @property
    def place(self) -> Any:
        """The place it was last sent to (None if never sent)."""
        return self._place

    @property
    def ticket(self) -> int:
        """Its number at the worker it was last sent to (late binding); 0 if
        never sent to a worker that numbers batches."""
        return self._ticket

    @property
    def stepwise(self) -> bool:
        """Its worker reports each tasklet as it ends (a careful batch sent
        to workers that can): if that worker dies, the first tasklet left
        is what killed it."""
        return self._stepwise

    @property
    def abandoned(self) -> frozenset:
        """The indices of its tasklets a consumer abandoned (skip=True)."""
        return self._abandoned

    @property
    def given_up(self) -> bool:
        """Its worker was cut off for an abandoned tasklet."""
        return self._state is S.GIVEN_UP

    # -- the moves of the table ---------------------------------------------------------

    def _move(self, event: str) -> None:
        to = TRANSITIONS[self._state].get(event)
        if to is None:
            allowed = sorted(s.value for s, moves in TRANSITIONS.items() if event in moves)
            raise BatchStateError(
                f"a batch of task {getattr(self.task, 'id', '?')} (items "
                f"{_span(self.indices)}) cannot {event.replace('_', ' ')} while it is "
                f"{self._state.value} (only while {' or '.join(allowed) or 'never'}); "
                f"this is a bug in imap, please report it")
        self._state = to

    def queue(self) -> None:
        """It waits in a backend's queue for a place."""
        self._move("queue")

    def withdraw(self) -> None:
        """It was taken out of a queue without being sent."""
        self._move("withdraw")

    def send(self, place: Any, ticket: int = 0, stepwise: bool = False) -> None:
        """It was bound to ``place`` (numbered ``ticket`` there; reported
        tasklet by tasklet if ``stepwise``)."""
        self._move("send")
        self._place, self._ticket, self._stepwise = place, ticket, stepwise

    def start(self) -> None:
        """It is known to run: a thread took it, or a partial answer came."""
        self._move("start")

    def reclaim(self) -> None:
        """It was asked back from its worker; the answer comes later."""
        self._move("reclaim")

    def stay(self) -> None:
        """Its worker would not give it back (it had started it)."""
        self._move("stay")

    def take_back(self) -> None:
        """Its worker gave it back, not started: it is to be queued again."""
        self._move("take_back")

    def refuse(self, place: Any, name: str, reason: str, tasklets: bool = True) -> None:
        """``place`` (named ``name``) refused it for ``reason``; with
        ``tasklets``, those tasklets only (the place raised
        ``UnmetDependency`` for them), else its whole task (which the
        dispatcher remembers)."""
        self._move("refuse")
        if tasklets:
            self.refused_by = {**(self.refused_by or {}), place: (name, reason)}

    def abandon(self, index: int) -> bool:
        """A consumer abandoned its tasklet ``index`` (skip=True). True if it
        is the first tasklet of this batch abandoned. An answered batch is
        past abandoning (the consumer raced its answer): False."""
        if self._state is S.ANSWERED:
            return False
        first = not self._abandoned
        self._abandoned = self._abandoned | {index}
        return first

    def give_up(self) -> None:
        """Its worker is cut off: it still runs an abandoned tasklet."""
        if not self._abandoned:
            raise BatchStateError(
                f"a batch of task {getattr(self.task, 'id', '?')} cannot be given up: none "
                f"of its tasklets was abandoned; this is a bug in imap, please report it")
        self._move("give_up")

    def resume(self) -> tuple[list[int], list[int]]:
        """Its given-up worker is gone: it keeps only its tasklets not
        abandoned, to run again. Returns the positions of the abandoned
        tasklets and of the others (as they were before)."""
        gone = [p for p, i in enumerate(self.indices) if i in self._abandoned]
        rest = [p for p, i in enumerate(self.indices) if i not in self._abandoned]
        self._move("resume")
        self._keep(rest)
        self._abandoned = frozenset()
        return gone, rest

    def lose(self) -> None:
        """Its worker died holding it."""
        self._move("lose")

    def answer(self) -> None:
        """Its results were filed."""
        self._move("answer")

    # -- its tasklets ---------------------------------------------------------------

    def unpack_unless(self, shared_memory: bool, frames: bool) -> None:
        """Forget the pickled items if they were packed for another kind of
        place: with buffers in shared memory where ``shared_memory`` is
        false, with buffers as frames where ``frames`` is false."""
        if (self.refs and not shared_memory) or (self.frames and not frames):
            self.data, self.refs, self.frames = None, (), None

    def subset(self, positions: Any, careful: bool = False) -> Batch:
        """A new batch (drawn) of the tasklets at ``positions`` of this one."""
        return Batch(
            self.task,
            [self.indices[p] for p in positions],
            [self.items[p] for p in positions],
            self.attempt,
            careful=careful,
            refused_by=self.refused_by,
        )

    def keep(self, positions: list[int]) -> None:
        """Keep only the tasklets at ``positions`` (the others were split
        off into batches of their own); its state does not change."""
        self._keep(positions)

    def _keep(self, positions: list[int]) -> None:
        self.indices = [self.indices[p] for p in positions]
        self.items = [self.items[p] for p in positions]
        self._forget_packing()

    def _forget_packing(self) -> None:
        self.data = None   # pickled again, if ever sent again
        self.refs = ()
        self.frames = None
        self.sent = None   # the next answer's latency is not one round trip

    def split_off(self, n: int) -> Batch:
        """Its first ``n`` tasklets were answered while it runs on: remove
        them and return them as a batch of their own (running), to be
        answered. This one is then known to run (unless given up)."""
        if self._state not in _SPLITS:
            raise BatchStateError(
                f"a batch of task {getattr(self.task, 'id', '?')} answered in part while it "
                f"is {self._state.value} (only a batch at a place answers in part); this "
                f"is a bug in imap, please report it")
        if self._state in (S.SENT, S.RECLAIMING):
            self.start()
        head = Batch(self.task, self.indices[:n], self.items[:n], self.attempt,
                     refused_by=self.refused_by)
        head._state, head._place = S.RUNNING, self._place
        self.indices = self.indices[n:]
        self.items = self.items[n:]
        self._forget_packing()
        return head


def _span(indices: Any) -> str:
    """``indices`` said briefly (``3..9``)."""
    indices = list(indices)
    if not indices:
        return "none"
    if len(indices) == 1:
        return str(indices[0])
    return f"{indices[0]}..{indices[-1]}"
