"""What runs again after a worker died holding a batch.

Its worker may have died of one of the batch's tasklets. The tasklets it
finished were delivered already if it sent partial answers; the rest runs
again *careful* (each tasklet reported as it ends), so that a second death
points at the tasklet that caused it, which alone is retried (``retries``)
or fails. Backends that cannot run a batch careful get the halves run again
instead, down to single tasklets. The engine asks :func:`after_loss` and
does what it says; nothing else decides this.
"""

from __future__ import annotations

from typing import Any

from ..errors import WorkerLostError


def after_loss(batch: Any, backend: Any) -> tuple[list, Any]:
    """For ``batch``, lost with its worker: ``(again, failed)``, the batches
    to submit again and the one (or None) whose tasklets fail now, each with
    a :class:`~imap.WorkerLostError` (see :func:`lost_errors`)."""
    task = batch.task
    again = []
    if batch.stepwise:
        # Its worker reported every tasklet it ended: the first one left is
        # the one it died running.
        if len(batch) > 1:
            again.append(batch.subset(range(1, len(batch)), careful=True))
            batch = batch.subset([0], careful=True)
    elif len(batch) > 1 and backend.capacity > 0:
        if backend.stepwise and not batch.careful:
            return [batch.subset(range(len(batch)), careful=True)], None
        half = len(batch) // 2
        return [batch.subset(part) for part in (range(half), range(half, len(batch)))], None
    if batch.attempt < task.retries:
        batch.attempt += 1
        again.append(batch)
        return again, None
    return again, batch


def lost_errors(batch: Any, reason: str) -> dict:
    """position -> the :class:`~imap.WorkerLostError` of each tasklet of
    ``batch``, failed after its last attempt (its worker died of ``reason``)."""
    task = batch.task
    attempts = batch.attempt + 1
    tries = (f" (after {attempts} attempts, each on a worker that died; "
             f"retries={task.retries})" if task.retries else " (retries=0)")
    errors = {
        pos: WorkerLostError(
            f"{reason} while running task {task.id} ({task.name}) on item {index}{tries}")
        for pos, index in enumerate(batch.indices)
    }
    for exc in errors.values():
        exc.attempts = attempts
    return errors
