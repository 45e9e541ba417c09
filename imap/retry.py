"""Running a tasklet again: ``add_task(retries=n, retry_on=(OSError, ...))``.

``retries`` is one count of extra attempts per tasklet, whatever the cause:
a worker lost while running it (``Engine.lost`` resubmits at once) or an
exception of a ``retry_on`` class raised by the function (resubmitted here,
after a back-off). ``Batch.attempt`` counts the attempts made so far; a
batch split into parts passes its count on to each part.

The parent decides: when a batch's results come back (``Engine.deliver``),
:func:`hold` takes out the tasklets that raised a ``retry_on`` exception
while attempts are left, and the :class:`Retrier` thread submits them again
once their back-off is over: ``BACKOFF_FIRST * 2 ** (attempt - 1)`` seconds
(at most ``BACKOFF_MAX``), times a random jitter between 1 and
``1 + JITTER``. The workers see an ordinary batch.

The error a tasklet ends with (every exception of a task with ``retries``)
carries the attempts made: ``exc.attempts`` and a note (``add_note``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from typing import Any

log = logging.getLogger("imap")

__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "JITTER", "Retrier", "backoff", "checked",
           "hold", "min_backoff"]

BACKOFF_FIRST = 0.05   # seconds before the second attempt (at least)
BACKOFF_MAX = 5.0      # the longest wait between two attempts (before jitter)
JITTER = 0.5           # each wait is stretched by a random factor in [1, 1 + JITTER]


def checked(retry_on: Any, retries: int) -> tuple:
    """``retry_on`` (a class or a tuple or list of them) as a tuple of
    exception classes, checked: TypeError for anything else, ValueError if
    there are classes but no extra attempt (``retries < 1``)."""
    classes = retry_on if isinstance(retry_on, (tuple, list)) else (retry_on,)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(f"retry_on must be exception classes (e.g. (OSError, "
                            f"ConnectionError)), got {cls!r}")
    if classes and retries < 1:
        raise ValueError(f"retry_on={retry_on!r} needs retries >= 1: retries is how many "
                         f"extra attempts a tasklet gets (e.g. retries=3)")
    return tuple(classes)


def min_backoff(attempt: int) -> float:
    """The least wait before attempt ``attempt + 1`` (``attempt`` made so far, >= 1)."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempt - 1))


def backoff(attempt: int) -> float:
    """The wait before attempt ``attempt + 1``: :func:`min_backoff` with jitter."""
    return min_backoff(attempt) * (1 + JITTER * random.random())


def _annotate(exc: BaseException, attempts: int, retries: int) -> None:
    """Say on the final error how many attempts were made."""
    if getattr(exc, "attempts", None) == attempts:
        return
    try:
        exc.attempts = attempts
        exc.add_note(f"(imap: {attempts} attempt{'s' if attempts != 1 else ''} made; "
                     f"retries={retries})")
    except (AttributeError, TypeError):   # an exception that takes no attributes
        pass


def hold(engine: Any, batch: Any, values: list, errors: dict) -> tuple:
    """Take the tasklets of ``batch`` to run again out of its results.

    Returns ``(batch, values, errors)`` to deliver now: the batch itself when
    nothing is retried, a batch of the other tasklets, or ``(None, None,
    None)`` when every tasklet runs again. The errors delivered are annotated
    with the attempts made.
    """
    task = batch.task
    attempts = batch.attempt + 1
    retry_on = task.retry_on
    again = []
    if retry_on and batch.attempt < task.retries:
        again = [pos for pos, exc in errors.items() if isinstance(exc, retry_on)]
    if not again:
        for exc in errors.values():
            _annotate(exc, attempts, task.retries)
        return batch, values, errors
    retried = batch.subset(again)
    retried.attempt = attempts
    engine.retrier.later(engine, retried, backoff(attempts))
    log.debug("task %d (%s): %d tasklet(s) raised %s; attempt %d in a while", task.id,
              task.name, len(again), type(errors[again[0]]).__name__, attempts + 1)
    held = set(again)
    rest = [pos for pos in range(len(batch.indices)) if pos not in held]
    if not rest:
        return None, None, None
    kept = batch.subset(rest)
    kept.sent, kept.nbytes = batch.sent, batch.nbytes
    new_errors = {}
    for new, pos in enumerate(rest):
        if pos in errors:
            new_errors[new] = errors[pos]
            _annotate(errors[pos], attempts, task.retries)
    return kept, [values[pos] for pos in rest], new_errors or None


class Retrier:
    """Submits batches again when their back-off is over (one thread, started
    when the first one waits and ended when none is left)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def later(self, engine: Any, batch: Any, delay: float) -> None:
        """Submit ``batch`` to ``engine``'s backend in ``delay`` seconds."""
        with self._lock:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order),
                                        engine, batch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="imap-retry",
                                                daemon=True)
                self._thread.start()
            self._wake.notify()

    def cancel(self) -> None:
        """Drop every batch waiting (a forced stop); the thread ends."""
        with self._lock:
            self._heap.clear()
            self._wake.notify()

    @property
    def waiting(self) -> int:
        """Batches waiting for their back-off to end."""
        return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if not self._heap:
                        self._thread = None
                        return
                    due, _, engine, batch = self._heap[0]
                    left = due - time.monotonic()
                    if left <= 0:
                        heapq.heappop(self._heap)
                        break
                    self._wake.wait(left)
            task = batch.task
            backend = engine.backend
            if engine.forced or task.generation != engine.generation or backend is None:
                continue
            try:
                backend.submit(batch)
            except Exception as exc:   # the backend is stopping: fail the tasklets
                log.debug("resubmitting a batch of task %d failed: %r", task.id, exc)
                engine.deliver(batch, [None] * len(batch),
                               dict.fromkeys(range(len(batch)), exc))
