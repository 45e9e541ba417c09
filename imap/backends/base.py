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

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PREFETCH = 2  # batches a worker may hold: one running, one queued behind it

Deliver = Callable[["Batch", list, "dict | None", "float | None"], None]
Lost = Callable[["Batch", str], None]


@dataclass(eq=False)
class Batch:
    """Tasklets of one task sent to one worker in one message.

    Attributes:
        task: the engine's task record (``key``, ``func``, ``args``,
            ``kwargs``, ``name``, ``payload()``).
        indices: the tasklets' indices within the task, in order.
        items: the tasklets' input items, aligned with ``indices``.
        attempt: 0 for the first submission, n for the n-th retry.
    """

    task: Any
    indices: Any
    items: list
    attempt: int = 0
    data: bytes | None = field(default=None, repr=False)  # pickled items, cached

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, positions: list[int]) -> Batch:
        """A batch of the tasklets at ``positions`` of this one."""
        return Batch(
            self.task,
            [self.indices[p] for p in positions],
            [self.items[p] for p in positions],
            self.attempt,
        )


class Backend(ABC):
    """A pool of workers of one kind.

    Args:
        deliver: ``deliver(batch, values, errors, busy)``: the results of a
            batch; ``values`` aligned with ``batch.indices``, ``errors`` None
            or a dict position -> exception (whose ``__cause__`` is a
            :class:`~imap.errors.WorkerTraceback`), ``busy`` the seconds the
            worker spent on the batch (None if not measured).
        lost: ``lost(batch, reason)``: the worker holding the batch died.
    """

    kind = "abstract"

    def __init__(self, deliver: Deliver, lost: Lost) -> None:
        self.deliver = deliver
        self.lost = lost
        self._workers_lost = 0

    @property
    def workers_lost(self) -> int:
        """Workers that died since start."""
        return self._workers_lost

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
