"""Every log record of this process has a ``worker`` field.

Records that workers log arrive here tagged ``record.worker`` (``"process
4242"``, ``"remote host:port#i"``; see ``imap.transport.wire.relay_log``), so
a user writes ``logging.basicConfig(format="%(worker)s %(name)s:
%(message)s")``. That format is on the user's handler, which formats every
record of the process -- the user's own, imap's, those of any other library
-- and a record without the field would make ``logging`` print ``--- Logging
error ---`` instead of it.

A filter on imap's loggers would mend only imap's records; the user's own
records and those of other libraries go through the same handler. So, when
``imap`` is imported, :func:`install` wraps the log record factory (chaining
the one in force, as ``logging.setLogRecordFactory`` intends): a record made
in this process gets ``worker`` set to :data:`MAIN` (``"main"``), or, in a
thread worker of an IMap (or of a ``ThreadPoolExecutor`` it runs on, named
as by default), ``"thread <its name>"``. Nothing else of a record
changes, and a record that already has the field (the factory before it set
one) keeps it; a relayed worker record is made by ``logging.makeLogRecord``,
not by the factory, and keeps its worker's tag. One consequence: as for
any field a record has, ``logging`` refuses ``extra={"worker": ...}``
(KeyError); give such a value another name.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = ["MAIN", "install"]

#: The ``worker`` field of the records made in this process itself.
MAIN = "main"
#: The name prefixes of worker threads: imap's own (imap.backends.thread),
#: and a ``ThreadPoolExecutor``'s by default (``IMap(executor=...)``).
THREAD_PREFIXES = ("imap-thread-worker", "ThreadPoolExecutor-")


def _worker_of_this_thread() -> str:
    name = threading.current_thread().name
    return f"thread {name}" if name.startswith(THREAD_PREFIXES) else MAIN


class _WithWorker:
    """A log record factory: the one in force, then the ``worker`` field."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        if "worker" not in record.__dict__:
            record.worker = _worker_of_this_thread()
        return record


def install() -> None:
    """Wrap the log record factory in force (once; a no-op after)."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _WithWorker):
        logging.setLogRecordFactory(_WithWorker(factory))
