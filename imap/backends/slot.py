"""One worker as a slot backend sees it (:mod:`.slots`): the batches it
holds, in the order sent, the tasks whose function it has, whether it is
alive and when it last gave a sign of life; and, for the backend's
:class:`~imap.flow.dispatch.Dispatcher`, a *place* that batches are bound
to and taken back from (the backend does the sending, its lock held).
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .batch import Batch


class Slot:
    """One worker as the backend sees it: a place of the backend's
    :class:`~imap.flow.dispatch.Dispatcher`."""

    __slots__ = ("name", "held", "known", "alive", "heard", "owner", "began", "tickets")

    def __init__(self, name: str, owner: Any = None) -> None:
        self.name = name
        self.held: collections.deque = collections.deque()  # batches, in sending order
        self.known: set = set()   # task keys whose function this worker has
        self.alive = True
        self.heard = time.monotonic()   # the last sign of life (an answer, a heartbeat)
        self.owner = owner        # the backend that sends it batches
        # When the first tasklet of ``held[0]`` began to run (None: not yet
        # known to have begun): the worker runs its batches in order and
        # answers tasklets as they end (each_result, a careful batch), so it
        # began when the last answer came, when the worker said the batch
        # began (see SlotBackend._says_begun), or when the batch was sent to
        # an idle worker.
        self.began: float | None = self.heard
        self.tickets = 0   # batches sent to it so far: each is numbered (Batch.ticket)

    def silent_for(self) -> float:
        """Seconds since the last sign of life."""
        return time.monotonic() - self.heard

    def stuck(self) -> bool:
        """It runs a batch holding a tasklet its consumer abandoned."""
        return bool(self.held) and bool(self.held[0].abandoned)

    # -- a place of the dispatcher (its owner's lock held) ---------------------------------

    def room(self) -> int:
        if not self.alive or self.owner._stopping or self.stuck():
            return 0
        return self.owner.prefetch - len(self.held)

    def idle(self) -> bool:
        return self.alive and not self.held

    def bind(self, batch: Batch) -> None:
        self.owner._bind(self, batch)

    def take_back(self, fits: Any = None) -> bool:
        return self.owner._take_back(self, 1, fits)
