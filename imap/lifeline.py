"""A process that never outlives the process that started it.

One mechanism for every process the project starts -- a local worker
(whatever the start method: fork, forkserver, spawn) and a connection's
process of ``imap-server``: :func:`end_with_parent`. It watches the parent
from a daemon thread, every :data:`WATCH_EVERY` seconds, and ends this
process with ``os._exit`` once the parent is gone, however it went
(SIGKILL, SIGTERM, ``os._exit``), even while a user's function runs. A
process is gone when this process was adopted by another (its parent pid
changed) or when its pid no longer exists: the first catches every death of
a direct parent, the second a parent that is not the direct one (under
forkserver a worker's direct parent is the forkserver, and the IMap's
process is the one to watch).

Where Linux has it, and the caller forked from the thread that lives as
long as its process (the server's main thread), the kernel is asked as well
to SIGKILL this process when its parent ends (``prctl(PR_SET_PDEATHSIG)``):
no delay at all. It is not asked for local workers: they are started by
whichever thread of the IMap's process needs one (the consumer's, or an
engine thread replacing a lost worker), and the kernel sends that signal
when the *thread* that forked ends, not its process.

No pipe is used: a sibling forked later would hold its end open.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

WATCH_EVERY = 0.5     # seconds between a process's looks at its parent
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): a signal for when the parent ends
ORPHAN_EXIT = 70      # the exit status of a process that ended because its parent had


def parent_gone(parent: int, first: int) -> bool:
    """Whether the process ``parent`` has ended. ``first``: this process's
    direct parent when it began (``parent`` itself, or a process between,
    like the forkserver): an orphan is adopted by another process."""
    if os.getppid() != first:
        return True
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return True
    except PermissionError:   # pragma: no cover - another user's process has its number
        return True
    return False


def _kernel_kills_orphan() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; True if it will."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0


def end_with_parent(parent: int, *, direct: bool = True, kernel: bool = False,
                    on_end: Callable[[], object] | None = None,
                    every: float = WATCH_EVERY) -> threading.Thread:
    """Make this process end within ``every`` seconds of the end of the
    process ``parent`` (see the module's text). ``direct``: ``parent``
    started this process itself (not through a forkserver), so a parent pid
    other than ``parent`` already means it ended before the watch began.
    ``on_end`` runs first, in the watching thread (e.g. to remove what the
    parent can no longer remove); ``kernel``: also ask Linux for SIGKILL at
    the parent's end (only from a process forked by a thread that lives as
    long as its parent). Returns the watching thread."""
    if kernel:
        _kernel_kills_orphan()
    first = os.getppid()

    def watch() -> None:
        while not parent_gone(parent, first):
            time.sleep(every)
        end()

    def end() -> None:
        try:
            if on_end is not None:
                on_end()
        finally:
            os._exit(ORPHAN_EXIT)

    if direct and first != parent:   # ended before the watch began: end here and now
        end()
    thread = threading.Thread(target=watch, name="imap-parent-watch", daemon=True)
    thread.start()
    return thread
