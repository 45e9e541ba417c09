"""Bringing lost workers back: reconnection with backoff, in the background.

A backend whose workers live elsewhere (remote hosts, a cluster) loses them
to things that pass: a host restarted, a link down for a while. When one is
lost, :class:`Rejoiner` tries to make a new one in a thread of its own —
``connect()`` returns a ready slot or raises — waiting ``FIRST_DELAY``
seconds, then twice as long after each failure, up to ``MAX_DELAY``, until
it succeeds or the backend stops. A slot made is handed to ``join(slot)``,
which adds it to the pool. Nothing here knows how a worker is reached.

While some worker is being brought back, queued batches may wait for it:
:meth:`Rejoiner.waiting` says so for ``wait`` seconds after the last worker
was lost (the backend's ``worker_wait``); after that they fail as lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("imap")

FIRST_DELAY = 0.5   # seconds before the first attempt to bring a worker back
MAX_DELAY = 8.0     # the longest wait between two attempts


class Rejoiner:
    """Brings lost workers back (see the module docstring).

    Args:
        join: ``join(slot)``: add a slot made by a ``connect()`` to the pool.
        wait: seconds queued batches may wait for a worker to come back
            once none is left (``0``: they fail at once).
        expired: called (from a timer thread) when that wait ends with no
            worker back, so the backend can fail what still waits.
    """

    def __init__(self, join: Callable[[Any], None], wait: float,
                 expired: Callable[[], None]) -> None:
        self._join = join
        self.wait = wait
        self._expired = expired
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._until = 0.0          # queued batches may wait until then (monotonic)
        self._timer: threading.Timer | None = None

    def lost(self, name: str, connect: Callable[[], Any]) -> None:
        """A worker called ``name`` was lost: bring one back with ``connect``."""
        with self._lock:
            if self._stop.is_set() or name in self._threads:
                return
            thread = threading.Thread(target=self._retry, args=(name, connect),
                                      name=f"imap-rejoin-{name}", daemon=True)
            self._threads[name] = thread
            self._until = time.monotonic() + self.wait
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.wait, self._wait_over)
            self._timer.name = "imap-rejoin-wait"
            self._timer.daemon = True
            self._timer.start()
            thread.start()   # under the lock: stop() never sees it unstarted

    def _wait_over(self) -> None:
        with self._lock:
            self._until = 0.0
        self._expired()

    def waiting(self) -> bool:
        """Whether queued batches should wait for a worker to come back."""
        with self._lock:
            return bool(self._threads) and time.monotonic() < self._until

    def _retry(self, name: str, connect: Callable[[], Any]) -> None:
        delay = FIRST_DELAY
        attempts = 0
        while not self._stop.wait(delay):
            attempts += 1
            try:
                slot = connect()
            except Exception as exc:
                if attempts == 1 or attempts % 10 == 0:
                    log.info("worker %s not back yet (attempt %d): %s", name, attempts, exc)
                delay = min(delay * 2, MAX_DELAY)
                continue
            with self._lock:
                stopped = self._stop.is_set()
                self._threads.pop(name, None)
            if stopped:
                _discard(slot)
                return
            log.warning("worker %s is back after %d attempt(s); it rejoins the pool",
                        name, attempts)
            self._join(slot)
            return
        with self._lock:
            self._threads.pop(name, None)

    def stop(self, timeout: float) -> None:
        """Stop every attempt; join the threads for up to ``timeout`` seconds
        (an attempt under way ends within its connect timeout; a thread
        still in one is left to end on its own, discarding what it makes)."""
        self._stop.set()
        with self._lock:
            threads = list(self._threads.values())
            if self._timer is not None:
                self._timer.cancel()
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


def _discard(slot: Any) -> None:
    close = getattr(slot, "close", None)
    if close is not None:
        close()
