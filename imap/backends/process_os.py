"""Worker processes as the operating system sees them.

What :class:`~imap.backends.process.ProcessBackend` asks of the operating
system, apart from its own bookkeeping: the start method to use by default,
a process that has settled before it forks (:func:`settle_threads`),
whether a process has ended (:func:`ended`), and one wait on every worker's
pipes and sentinel for the Router thread (:class:`Waiter`).
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import operator
import select
import threading
import time
from typing import Any


def default_start_method() -> str:
    """forkserver where there is one, else spawn (fork only when asked)."""
    methods = mp.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def _os_thread_count() -> int | None:
    try:
        with open("/proc/self/stat", "rb") as stat:
            # the fields after the parenthesised command name; num_threads is the 20th
            return int(stat.read().rsplit(b")", 1)[1].split()[17])
    except (OSError, ValueError, IndexError):
        return None


_last_stop = [float("-inf")]  # when a process backend last joined its threads


def stopped() -> None:
    """A process backend joined its threads just now (see :func:`settle_threads`)."""
    _last_stop[0] = time.monotonic()


def settle_threads(limit: float = 0.2) -> None:
    """Before forking: wait (briefly) for threads that a backend stopped just
    before were joined but are still leaving the operating system, so the
    child is forked from a single-threaded process where the caller has no
    threads of its own. Threads of the caller's are not waited for."""
    if time.monotonic() - _last_stop[0] > 1.0:
        return
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        count = _os_thread_count()
        if count is None or count <= threading.active_count():
            return
        time.sleep(0.001)


def ended(process: Any, timeout: float) -> bool:
    """Whether ``process`` ended within ``timeout`` seconds.

    Its sentinel tells, not ``is_alive()``: when two threads wait for the
    same "fork" child (the Router seeing it die while ``stop()`` joins it),
    the one that loses the race to reap it is told it still runs.
    """
    return bool(multiprocessing.connection.wait([process.sentinel], timeout))


class Waiter:
    """What the Router waits on: the result pipe, sentinel and log pipe of
    every live worker, as one ``select.poll`` object kept from one wait to
    the next and rebuilt only when the live workers change.

    ``multiprocessing.connection.wait`` builds a new selector and registers
    every handle at each call: about half of the Router's CPU time per
    answered batch. Where ``select.poll`` is missing (Windows) it is used
    as before.
    """

    def __init__(self) -> None:
        self._key: list | None = None
        self._objects: list = []
        self._poll: Any = None
        self._by_fd: dict = {}

    def changed(self, live: list) -> bool:
        """Whether ``live`` (the live workers) differs from the last call's:
        other workers, or a log pipe closed since."""
        key: list = []
        for w in live:
            key += (w, w.log_conn)
        old = self._key
        if old is not None and len(old) == len(key) and all(map(operator.is_, old, key)):
            return False
        self._key = key   # holds the objects: their identities stay theirs
        return True

    def watch(self, objects: list) -> None:
        """Wait on ``objects`` (connections and sentinels) from now on."""
        self._objects = objects
        if not hasattr(select, "poll"):
            return
        self._poll = select.poll()
        self._by_fd = {}
        for obj in objects:
            fd = obj if isinstance(obj, int) else obj.fileno()
            self._by_fd[fd] = obj
            self._poll.register(fd, select.POLLIN)

    def wait(self) -> list:
        """Block until one of the objects is ready (readable, closed or in
        error); return the ready ones."""
        if self._poll is None:
            return multiprocessing.connection.wait(self._objects)
        return [self._by_fd[fd] for fd, _ in self._poll.poll()]
