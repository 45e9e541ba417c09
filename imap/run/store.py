"""The journal's store: one SQLite file in WAL mode and the thread that
writes it (see :mod:`imap.journal` for what a journal is and the whole path
of a journaled result; the run's side is :mod:`imap.run.replay`).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import pickle
import sqlite3
import threading
from typing import Any

log = logging.getLogger("imap")

__all__ = ["COMMIT_EVERY", "COMMIT_ROWS", "Journal", "JournalError", "restore", "signature"]


COMMIT_EVERY = 1.0    # seconds a taken result may wait for its commit
COMMIT_ROWS = 2000    # ... or results waiting that make the writer commit at once
FORMAT = 1            # the layout of the file (meta "format")


class JournalError(ValueError):
    """A journal that does not fit this run (its tasks changed), or a key
    that cannot be used (not unique, not hashable, not picklable)."""


def _name_of(func: Any) -> str:
    """A function's qualified name, as a run of the same program gives it again."""
    func = getattr(func, "journal_name", func)
    if isinstance(func, str):
        return func
    module = getattr(func, "__module__", None) or type(func).__module__
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{name}"


def signature(tasks: list) -> str:
    """The shape of a run's tasks, as the journal stores it: each task's name,
    function, upstream task and key function (JSON text)."""
    shape = [{"name": t.name, "func": _name_of(t.func),
              "upstream": None if t.upstream is None else t.upstream.id,
              "key": None if t.journal_key is None else _name_of(t.journal_key)}
             for t in tasks]
    return json.dumps({"format": FORMAT, "tasks": shape}, sort_keys=True)


def _dumps(obj: Any) -> bytes:
    try:
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    except Exception:
        import cloudpickle
        return cloudpickle.dumps(obj, pickle.HIGHEST_PROTOCOL)


class Pickled(bytes):
    """A value pickled when it was taken (it may change later), in a batch."""

    __slots__ = ()


def restore(value: Any) -> Any:
    """A recorded value as it was taken (see :class:`Pickled`)."""
    return pickle.loads(value) if type(value) is Pickled else value


ATOMIC = frozenset((int, float, str, bytes, bool, complex, type(None)))


def frozen_value(value: Any) -> Any:
    """``value`` as it must be queued: itself if it cannot change (a number, a
    string, a tuple of those), else pickled now."""
    kind = type(value)
    if kind in ATOMIC or (kind is tuple and all(type(v) in ATOMIC for v in value)):
        return value
    return Pickled(_dumps(value))


class Journal:
    """The store: one SQLite file in WAL mode, written by one thread.

    ``record`` queues a result (a value that may change later, anything but
    a number, a string or a tuple of those, is pickled at once, so it is
    recorded as it was taken); the writer thread commits the queue every
    ``every`` seconds, or at once when ``rows`` wait, as one row per output
    holding the batch's keys and values (two pickles).

    Args:
        path: the file (created if missing).
        shape: the run's :func:`signature`; a journal holding another one
            is refused unless ``reuse``.
        reuse: take the journal's results even if its run had other tasks
            (the stored shape is replaced).
        every: seconds between commits, at most.
        rows: results waiting that make a commit at once.

    Raises:
        JournalError: the journal was written by a run of other tasks.
    """

    def __init__(self, path: str | os.PathLike, shape: str, reuse: bool = False,
                 every: float = COMMIT_EVERY, rows: int = COMMIT_ROWS) -> None:
        self.path = os.fspath(path)
        self._every = every
        self._rows = rows
        self._conn = sqlite3.connect(self.path, check_same_thread=False,
                                     isolation_level=None)
        try:
            self._open(shape, reuse)
        except BaseException:
            self._conn.close()
            raise
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # (output, key, value), appended by consumers, popped by the writer
        self._queue: collections.deque = collections.deque()
        self._logs: list = []   # the OutputLogs whose handed-out results the writer reads
        self._closing = False
        self.committed = 0   # results committed by this run
        self._unpicklable = False
        self._writer = threading.Thread(target=self._write_loop, name="imap-journal",
                                        daemon=True)
        self._writer.start()

    def _open(self, shape: str, reuse: bool) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")
        # In WAL mode a commit is durable once written to the OS (a process
        # crash loses nothing committed; a power cut may lose the last ones).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        conn.execute("CREATE TABLE IF NOT EXISTS results (seq INTEGER PRIMARY KEY, "
                     "output TEXT NOT NULL, n INTEGER NOT NULL, keys BLOB NOT NULL, "
                     "vals BLOB NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE name='shape'").fetchone()
        if row is not None and row[0] != shape and not reuse:
            raise JournalError(
                f"the journal {self.path!r} was written by a run of other tasks "
                f"(its tasks: {_describe(row[0])}; this run's: {_describe(shape)}). "
                f"To start afresh, delete {self.path!r} (with its -wal and -shm files) "
                f"or give another path; to replay its results anyway, pass "
                f"journal_reuse=True")
        if row is None or row[0] != shape:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('shape', ?)", (shape,))

    def load(self, output: str) -> dict:
        """The results recorded for ``output``: key -> value (pass it to
        :func:`restore`), in the order recorded (the first record of a key wins)."""
        recorded: dict = {}
        rows = self._conn.execute(
            "SELECT keys, vals FROM results WHERE output=? ORDER BY seq", (output,))
        setdefault = recorded.setdefault
        for keys, values in rows:
            for key, value in zip(pickle.loads(keys), pickle.loads(values), strict=True):
                setdefault(key, value)
        return recorded

    def record(self, output: str, key: Any, value: Any) -> None:
        """Queue a result taken by a consumer; committed within ``every`` seconds."""
        queue = self._queue
        queue.append((output, [key], [frozen_value(value)]))   # a chunk of one (see _commit)
        if len(queue) == self._rows:
            with self._lock:
                self._wake.notify()

    def watch(self, log: Any) -> None:
        """Commit what ``log`` (an :class:`~imap.run.replay.OutputLog`) hands out
        without calling :meth:`record`."""
        self._logs.append(log)

    def _write_loop(self) -> None:
        queue = self._queue
        while True:
            with self._lock:
                if len(queue) < self._rows and not self._closing:
                    self._wake.wait(self._every)
                closing = self._closing
            chunks = [queue.popleft() for _ in range(len(queue))]
            for output_log in self._logs:
                chunks.extend(output_log.handed_out())
            if chunks:
                try:
                    self._commit(chunks)
                except Exception:
                    log.exception("journal %s: a commit failed; %d results are not "
                                  "recorded (the next run computes them again)",
                                  self.path, sum(len(keys) for _, keys, _ in chunks))
            if closing and not queue:
                return

    def _commit(self, chunks: list) -> None:
        """Record ``chunks``, each ``(output, keys, values)``: the results of
        one output in the order taken (a group taken from the engine at
        once is one chunk: the writer's work is per chunk, not per result)."""
        outputs: dict = {}
        for output, chunk_keys, chunk_values in chunks:
            keys, values = outputs.setdefault(output, ([], []))
            keys.extend(chunk_keys)
            values.extend(chunk_values)
        batches = [(output, len(keys), *self._pickled(output, keys, values))
                   for output, (keys, values) in outputs.items()]
        conn = self._conn
        conn.execute("BEGIN")
        try:
            conn.executemany("INSERT INTO results (output, n, keys, vals) "
                             "VALUES (?, ?, ?, ?)", batches)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.committed += sum(len(keys) for keys, _ in outputs.values())

    def _pickled(self, output: str, keys: list, values: list) -> tuple[bytes, bytes]:
        """A batch's keys and values, pickled; a result that cannot be is left out."""
        try:
            return _dumps(keys), _dumps(values)
        except Exception:
            pass
        kept_keys, kept_values = [], []
        for key, value in zip(keys, values, strict=True):
            try:
                _dumps((key, value))
            except Exception as exc:
                if not self._unpicklable:
                    self._unpicklable = True
                    log.warning("journal %s: a result of %s cannot be pickled (%r); "
                                "results that cannot are not recorded, and are computed "
                                "again by the next run", self.path, output, exc)
                continue
            kept_keys.append(key)
            kept_values.append(value)
        return _dumps(kept_keys), _dumps(kept_values)

    def close(self) -> None:
        """Commit what is queued, end the writer and close the file."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._wake.notify()
        self._writer.join()
        self._conn.close()


def _describe(shape: str) -> str:
    try:
        tasks = json.loads(shape)["tasks"]
    except (ValueError, KeyError, TypeError):
        return "unknown"
    return ", ".join(f"{t['name']}={t['func']}" + ("" if t["upstream"] is None
                                                   else f"<-{t['upstream']}")
                     for t in tasks) or "none"
