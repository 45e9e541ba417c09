"""The parent's side of the batch kernel's wire format.

Shared by every backend whose workers live in another process (process,
remote, executor): preparing a batch to travel (:func:`prepare`), reading a
worker's reply (:func:`decode_answer`), rebuilding errors
(:func:`unpack_error`), and handing on workers' log records
(:func:`relay_log`). The worker's side is :mod:`imap.worker.kernel`; the
records that cross, named, are in :mod:`.records`.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from typing import Any, NamedTuple

from ..backends.base import Batch
from ..errors import UnmetDependency, UnsendableError, WorkerTraceback, init_failed
from ..flow.policy import COPIES
from ..worker import kernel
from . import pickling
from .records import Answered, Failed, OutOfBand, PackedError, Payload, reply_from_wire

PROTOCOL = kernel.PROTOCOL
traceback_text = kernel.traceback_text


def with_traceback_cause(exc: BaseException, text: str) -> BaseException:
    """Attach the worker-side traceback text as ``__cause__``."""
    exc.__cause__ = WorkerTraceback(text)
    return exc


def unpack_error(packed: tuple) -> BaseException:
    """Rebuild the exception of a packed error (:class:`.records.PackedError`,
    as the kernel packs it), its worker-side traceback as ``__cause__``."""
    error = PackedError.from_wire(packed)
    exc: BaseException
    if error.kind == kernel.INIT_FAILED:
        return init_failed(error.text, unpack_error(error.detail))
    if error.kind == kernel.UNMET:
        return refusal(error.text, error.detail)
    if error.kind == kernel.UNSENDABLE:
        exc = UnsendableError(error.text)
    elif error.detail is None:
        exc = UnsendableError(f"{error.text} (the exception could not be pickled)")
    else:
        try:
            exc = pickle.loads(error.detail)
        except Exception as err:  # checked on the worker side; a missing module here
            exc = UnsendableError(f"{error.text} (the exception could not be unpickled: {err!r})")
    return with_traceback_cause(exc, error.traceback)


def refusal(reason: str, worker: str | None = None) -> UnmetDependency:
    """The :class:`~imap.UnmetDependency` of a worker that refuses a whole
    task (its function's dependency is unmet there, for ``reason``)."""
    exc = UnmetDependency(reason)
    exc.whole = True
    exc.worker = worker
    return exc


class Answer(NamedTuple):
    """A worker's answer to a batch, as the engine takes it.

    On the wire it is a reply of the kernel's (:func:`.records.reply_from_wire`:
    plain tuples, so a remote host or a Dask worker needs nothing of this
    package to write one); here its errors are exceptions.
    """

    values: list            # aligned with the batch's indices (None where an error is)
    errors: dict | None     # position -> exception (its worker traceback as __cause__)
    busy: float             # the worker's seconds on the batch
    peak: float             # ... on its longest tasklet
    more: bool              # a partial answer: the batch's first tasklets, it runs on
    oob_bytes: int = 0      # bytes of its buffers that came out of band (shared memory, frames)


def decode_answer(batch: Batch, data: Any, views: Callable | None = None) -> Answer:
    """The :class:`Answer` in a worker's reply to ``batch``: ``data`` is its
    payload (:class:`.records.Payload`: its large buffers may come as
    frames, see :func:`kernel.dumps_frames`), ``views(refs)`` gives the
    buffers of an answer sent out of band (:mod:`imap.transport.shm`)."""
    stream, frames = kernel.payload_parts(data)   # a Payload's fields (no record: per batch)
    if frames is None:
        oob_bytes = 0
        reply = reply_from_wire(pickle.loads(stream))
    else:   # large buffers came as frames: read-only views of them
        oob_bytes = sum(memoryview(f).nbytes for f in frames)
        reply = reply_from_wire(pickle.loads(
            stream, buffers=[memoryview(f).toreadonly() for f in frames]))
    if type(reply) is OutOfBand:   # large buffers in shared memory
        if views is None:
            raise ValueError("an answer with out-of-band buffers came where none is expected")
        oob_bytes = sum(ref[2] for ref in reply.refs)
        reply = Answered.from_wire(pickle.loads(reply.stream, buffers=views(reply.refs)))
    if type(reply) is Failed:   # its items did not unpickle there, or it was refused
        values, packed = kernel.failed(len(batch), reply.error)
        busy = peak = 0.0
        more = False
    else:
        values, packed, busy, peak, more = reply
    errors = None
    if packed:
        errors = {p: unpack_error(e) for p, e in packed.items()}
    return Answer(values, errors, busy, peak, more, oob_bytes)


def unreadable_answer(batch: Batch, exc: BaseException) -> UnsendableError:
    """The error of each tasklet of ``batch`` whose answer could not be
    unpickled here (``exc``)."""
    return UnsendableError(
        f"the answer of a batch of task {batch.task.id} ({batch.task.name}) could not be "
        f"unpickled here: {exc!r}; return values (and raise exceptions) that unpickle in "
        f"this process")


def fail_batch(deliver: Callable, batch: Batch, exc: BaseException,
               cause: BaseException) -> None:
    """Deliver ``exc`` (a copy per tasklet) as the result of every tasklet of
    ``batch``, with the traceback of ``cause`` attached."""
    text = traceback_text(cause)
    errors = {p: with_traceback_cause(exc if p == 0 else type(exc)(*exc.args), text)
              for p in range(len(batch))}
    deliver(batch, [None] * len(batch), errors)


def bytes_alive(batch: Batch, data: Any, oob_bytes: int) -> int:
    """The bytes the answered ``batch`` kept alive, as the flow policy's byte
    budget counts them (COPIES per byte: an object and its pickle): its
    pickled items and answer (``data``), and its buffers that travelled out
    of band -- the items' and the answer's (``oob_bytes``) -- which are alive
    once (a segment, a mapping, the buffer a result is), so 1/COPIES each."""
    stream = Payload.from_wire(data).stream
    out_of_band = (oob_bytes + sum(ref[2] for ref in batch.refs)
                   + sum(memoryview(f).nbytes for f in batch.frames or ()))
    return len(stream) + len(batch.data or b"") + out_of_band // COPIES


def pack_frames(batch: Batch, by_value: bool = False) -> None:
    """Pickle the items of ``batch`` with their large buffers apart, as
    frames (:func:`kernel.dumps_frames`); left to :func:`prepare` if they do
    not pickle so (it says which items cannot travel)."""
    try:
        payload = Payload.from_wire(kernel.dumps_frames(batch.items, by_value=by_value))
    except Exception:
        return
    batch.data = payload.stream
    if payload.frames is not None:
        batch.frames = payload.frames


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
        batch.data = pickle.dumps(batch.items, PROTOCOL)
        return batch
    except Exception:
        pass
    good, bad = [], []
    for pos, item in enumerate(batch.items):
        try:
            pickle.dumps(item, PROTOCOL)
            good.append(pos)
        except Exception:
            try:
                pickling.dumps(item)
                good.append(pos)
            except Exception as exc:
                bad.append((pos, exc))
    errors = {}
    for n, (pos, exc) in enumerate(bad):
        kind = type(batch.items[pos]).__name__
        errors[n] = with_traceback_cause(UnsendableError(
            f"item {batch.indices[pos]} of task {task.id} ({kind}) could not be "
            f"pickled to send it {where}: {exc!r}"), traceback_text(exc))
    if not good:
        deliver(batch, [None] * len(batch), errors)
        return None
    deliver(batch.subset([pos for pos, _ in bad]), [None] * len(bad), errors)
    batch.keep(good)  # the same batch goes on: a backend may count it
    batch.data = pickling.dumps(batch.items)
    return batch


def pickle_initializer(initializer: Any, initargs: tuple, where: str,
                       local: bool = False) -> bytes | None:
    """The cloudpickle of ``(initializer, initargs)`` (for a ``local``
    worker process, by reference where it can: :func:`pickling.dumps_local`),
    or None without one."""
    if initializer is None:
        return None
    try:
        if local:
            return pickling.dumps_local((initializer, initargs))
        return pickling.dumps((initializer, initargs))
    except Exception as exc:
        raise ValueError(
            f"the worker initializer could not be pickled for {where}: {exc!r}") from exc


# -- log records from workers ---------------------------------------------------------


def log_level() -> int:
    """The lowest level any logger of this process lets through: workers
    send records of that level and above, the parent's loggers decide."""
    levels = [logging.getLogger().getEffectiveLevel()]
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.level:
            levels.append(logger.level)
    return min(levels)


def relay_log(data: dict, worker: str | None = None) -> None:
    """Hand a worker's log record (:func:`kernel.record_data`) to this
    process's logger of its name, tagged ``record.worker`` (if given)."""
    record = logging.makeLogRecord(data)
    if worker is not None:
        record.worker = worker
    logger = logging.getLogger(record.name)
    try:
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
    except Exception as exc:   # a filter or handler of this process that fails
        _relay_failed(record, exc)


_relay_failures = [0]


def _relay_failed(record: logging.LogRecord, exc: BaseException) -> None:
    """A worker's log record could not be handled here: said (the first few
    times), never raised, so that the thread relaying it goes on."""
    _relay_failures[0] += 1
    if _relay_failures[0] > 3:
        return
    try:
        logging.getLogger("imap").error(
            "a log record from %s (logger %r) could not be handled here: %r; the "
            "filters and handlers of that logger raise", getattr(record, "worker", "a worker"),
            record.name, exc)
    except Exception:   # the imap logger's own handlers fail too
        pass


def relay_logs(data: bytes | None, worker: str) -> None:
    """Hand a worker's pickled list of log records (None: none) to this
    process's loggers. A pickle that cannot be read here is reported, not
    raised: the answer it came with must not be lost over its log records."""
    if data is None:
        return
    try:
        records = pickle.loads(data)
    except Exception as exc:
        logging.getLogger("imap").warning(
            "log records from %s could not be read here: %r", worker, exc)
        return
    for record in records:
        relay_log(record, worker)
