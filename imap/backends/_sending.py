"""Preparing a batch for another process: shared by the process and remote
backends."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import cloudpickle

from ..errors import UnsendableError
from . import _worker
from .base import Batch

Fail = Callable[[Batch, BaseException], None]


def fail_batch(deliver: Callable, batch: Batch, exc: BaseException,
               cause: BaseException) -> None:
    """Deliver ``exc`` (a copy per tasklet) as the result of every tasklet of
    ``batch``, with the traceback of ``cause`` attached."""
    text = _worker.traceback_text(cause)
    errors = {p: _worker.with_traceback_cause(exc if p == 0 else type(exc)(*exc.args), text)
              for p in range(len(batch))}
    deliver(batch, [None] * len(batch), errors)


def prepare(deliver: Callable, batch: Batch, where: str) -> Batch | None:
    """Check the task's function pickles and pickle the items into
    ``batch.data``. Tasklets that cannot be sent fail at once (each with its
    own :class:`~imap.UnsendableError`); returns the batch of the others, or
    None if none is left. ``where`` ends the error messages ("to a worker
    process")."""
    task = batch.task
    _, error = task.payload()
    if error is not None:
        fail_batch(deliver, batch, UnsendableError(
            f"the function of task {task.id} ({task.name}) could not be pickled to send "
            f"it {where}: {error!r}"), error)
        return None
    if batch.data is not None:
        return batch
    try:
        batch.data = pickle.dumps(batch.items, _worker.PROTOCOL)
        return batch
    except Exception:
        pass
    good, bad = [], []
    for pos, item in enumerate(batch.items):
        try:
            pickle.dumps(item, _worker.PROTOCOL)
            good.append(pos)
        except Exception:
            try:
                cloudpickle.dumps(item)
                good.append(pos)
            except Exception as exc:
                bad.append((pos, exc))
    for pos, exc in bad:
        kind = type(batch.items[pos]).__name__
        fail_batch(deliver, batch.subset([pos]), UnsendableError(
            f"item {batch.indices[pos]} of task {task.id} ({kind}) could not be "
            f"pickled to send it {where}: {exc!r}"), exc)
    if not good:
        return None
    kept = batch.subset(good)
    kept.data = cloudpickle.dumps(kept.items)
    return kept
