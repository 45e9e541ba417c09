"""The main loop of a worker process.

Kept small and free of engine imports (only :mod:`.kernel`) so a spawned
worker starts fast.

Messages to a worker process are pickled records (named tuples of this
module, which the worker imports anyway):

* :class:`SetTask` — the function of a task: ``payload`` is the cloudpickle
  of ``(func, args, kwargs)``; sent once per task per worker.
* :class:`RunBatch` — a batch: ``data`` is the pickle of the list of input
  items; ``every``: seconds between partial answers (0: after every item);
  ``ticket``: its number among the batches sent to this worker (1, 2, ...).
  Before it starts a batch the worker *claims* its ticket on the
  :class:`Claims` board it shares with the parent; a batch the parent took
  back first (to run it elsewhere) is skipped unanswered.
* :class:`Quit` — end the loop.

With ``log_conn``, ``logging`` records emitted in the worker (by the
initializer or the tasks, from any thread) travel to the parent through
that pipe, one pickled ``LogRecord.__dict__`` per message, tagged with
``worker = "process <pid>"``; the parent hands them to its own loggers.

A worker answers every batch, in order, with the kernel's replies
(:func:`kernel.answer_batch`; their records are named in :mod:`.kernel`):
partial answers (``more`` True) while a long batch runs, then the last one.

Large buffers (numpy arrays and the like) travel out of band, through shared
memory (:mod:`imap.transport.shm`): a batch's ``refs`` name where its items' buffers
are, and an answer with large buffers is a :func:`kernel.out_of_band_reply`.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
from functools import partial
from typing import Any, NamedTuple

from .. import lifeline
from . import kernel, shm


class SetTask(NamedTuple):
    """The function of task ``key`` (cloudpickle of ``(func, args, kwargs)``)."""

    key: tuple
    payload: bytes


class RunBatch(NamedTuple):
    """Run the items ``data`` (a pickled list) of task ``key``; see the module
    doc. ``refs``: its large buffers, out of band in shared memory (imap.transport.shm)."""

    key: tuple
    data: bytes
    every: float
    ticket: int
    refs: tuple = ()
    free: tuple = ()   # this worker's result segments that it may write again


class Quit(NamedTuple):
    """End the worker's loop (a graceful stop)."""


RING = 64   # tickets a Claims board remembers; more than any worker ever holds


class Claims:
    """Which batches a worker has started, and which the parent took back.

    Shared memory and a lock between the parent and one worker process:
    ``board[0]`` is the ticket of the last batch the worker started,
    ``board[1 + t % RING]`` holds ``t`` once the parent has taken ticket
    ``t`` back. Each side decides under the lock, so a batch is either
    started by its worker or taken back, never both.
    """

    def __init__(self, ctx: Any) -> None:
        self.lock = ctx.Lock()
        self.board = ctx.RawArray("q", 1 + RING)

    def claim(self, ticket: int) -> bool:
        """The worker: start batch ``ticket`` unless it was taken back."""
        with self.lock:
            if self.board[1 + ticket % RING] == ticket:
                return False
            self.board[0] = ticket
            return True

    def revoke(self, ticket: int, timeout: float = 0.05) -> bool:
        """The parent: take batch ``ticket`` back unless it has started.

        The lock is held for a few instructions; a worker killed in them
        leaves it taken, and then nothing is taken back from that worker.
        """
        if not self.lock.acquire(timeout=timeout):
            return False
        try:
            board, slot = self.board, 1 + ticket % RING
            if board[0] >= ticket:
                return False   # started (or passed)
            if board[slot] > board[0] and board[slot] != ticket:
                return False   # the slot still guards another ticket, not yet passed
            board[slot] = ticket
            return True
        finally:
            self.lock.release()


class _PipeHandler(logging.Handler):
    """Sends each record to the parent (``Handler.handle`` holds the lock)."""

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self.conn = conn
        self.worker = f"process {os.getpid()}"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = kernel.record_data(record)
            data["worker"] = self.worker
            self.conn.send_bytes(pickle.dumps(data, kernel.PROTOCOL))
        except Exception:
            self.handleError(record)


def _out_of_band(run: str) -> Any:
    """How this worker pickles an answer: its large buffers copied once into
    segments of the run ``run`` (imap.transport.shm), the answer a small message
    naming them."""
    pool = shm.Pool(f"{run}-w{os.getpid()}-")

    def oob(answer: tuple) -> bytes:
        stream, refs = shm.dumps_out_of_band(answer, pool)
        if not refs:
            return stream
        return pickle.dumps(kernel.out_of_band_reply(stream, refs), kernel.PROTOCOL)
    oob.pool = pool   # type: ignore[attr-defined]
    return oob


def process_main(task_conn: Any, result_conn: Any, init_payload: bytes | None,
                 log_conn: Any = None, log_level: int = logging.WARNING,
                 claims: Claims | None = None, run: str | None = None,
                 parent: int | None = None, direct: bool = True) -> None:
    """The main loop of a worker process (``parent``: the pid of the IMap's
    process, which it does not outlive; ``direct``: whether that process
    started this one itself, not through a forkserver)."""
    # Ctrl-C goes to the whole process group: the parent decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:   # on the parent's end, its run's shared memory goes too
        lifeline.end_with_parent(parent, direct=direct,
                                 on_end=None if run is None else partial(shm.sweep, run))
    if log_conn is not None:
        root = logging.getLogger()
        root.handlers[:] = [_PipeHandler(log_conn)]
        root.setLevel(log_level)
    init_error = None if init_payload is None else kernel.initialize(init_payload)
    funcs: dict = {}
    recv = task_conn.recv_bytes
    send = result_conn.send_bytes
    answer = kernel.answer_batch
    oob = _out_of_band(run) if run is not None else None
    reader = shm.Reader()
    while True:
        try:
            msg = pickle.loads(recv())
        except (EOFError, OSError):
            break  # the parent is gone
        kind = type(msg)
        if kind is RunBatch:
            if claims is not None and not claims.claim(msg.ticket):
                continue   # taken back by the parent: it runs elsewhere
            if msg.free and oob is not None:   # segments of ours the parent is done with
                for name in msg.free:
                    oob.pool.release(name)
            buffers = None
            if msg.refs:
                try:
                    buffers = reader.views(msg.refs)
                except OSError as exc:   # its segment is gone: the parent ended the run
                    send(pickle.dumps(kernel.failed_reply(kernel.unsendable(
                        "the shared memory of the batch's items could not be read", exc)),
                        kernel.PROTOCOL))
                    continue
            reply = answer(funcs.get(msg.key), init_error, msg.data, send=send,
                           every=msg.every, buffers=buffers, oob=oob)
            if buffers is not None:
                # Before the answer goes: once it is in, the parent may write
                # the items' segments again, unless the function kept a view
                # of one, which release() finds and unlinks first.
                del buffers
                reader.release()
            send(reply)
        elif kind is SetTask:
            funcs[msg.key] = kernel.load_task(msg.payload)
        else:  # Quit
            break
    for conn in (task_conn, result_conn):
        try:
            conn.close()
        except OSError:  # pragma: no cover
            pass
