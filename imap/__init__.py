"""imap: a lazy, parallel, multi-task ``imap``.

One :class:`IMap` evaluates several tasks ``(function, iterable, args,
kwargs)`` on a shared pool of thread, process or remote workers, interleaving
their tasklets by *stride*, bounding memory by a *buffer*, returning results
ordered or unordered, with timeouts and skipping.
"""

from .core import IMap, TaskIterator
from .depends import depend, require
from .drop import DROP
from .errors import (
    ImpossibleDependency,
    StallError,
    TimeoutError,
    UnmetDependency,
    UnsendableError,
    WorkerInitError,
    WorkerLostError,
    WorkerTraceback,
)
from .imports import imports
from .journal import JournalError
from .logfield import install as _install_log_field
from .oneshot import IMapResults, imap
from .run.status import IMapStatus, TaskStatus

__all__ = [
    "IMap",
    "IMapResults",
    "TaskIterator",
    "imap",
    "imports",
    "DROP",
    "TimeoutError",
    "WorkerInitError",
    "WorkerLostError",
    "StallError",
    "WorkerTraceback",
    "UnsendableError",
    "require",
    "depend",
    "UnmetDependency",
    "ImpossibleDependency",
    "JournalError",
    "IMapStatus",
    "TaskStatus",
]

__version__ = "0.1.0"

_install_log_field()   # every record has a `worker` field (see imap.logfield)
