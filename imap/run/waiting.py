"""Waiting that a Ctrl-C cannot break.

``threading.Condition.wait`` gives its lock back while it waits and takes it
again before it returns. A KeyboardInterrupt raised in the main thread at the
moment it takes it again (a second Ctrl-C while the first is handled, say)
leaves the lock released, and the ``with`` block around the wait then fails
with ``RuntimeError: release unlocked lock`` -- which hides the interrupt.
:func:`wait` takes the lock back before the interrupt goes on, and
:class:`Flag` is a ``threading.Event`` whose ``wait`` does the same.

Both need a condition built on an ``RLock`` (the default of
``threading.Condition``): only an RLock knows which thread holds it.
"""

from __future__ import annotations

import threading

__all__ = ["Flag", "condition", "wait"]


def condition(lock: threading.RLock | None = None) -> threading.Condition:
    """A condition :func:`wait` can use (on ``lock``, or on a new RLock)."""
    return threading.Condition(threading.RLock() if lock is None else lock)


def wait(cond: threading.Condition, timeout: float | None = None) -> bool:
    """``cond.wait(timeout)``, the lock held again whatever interrupts it."""
    try:
        return cond.wait(timeout)
    except BaseException:
        _take_back(cond)
        raise


def _take_back(cond: threading.Condition) -> None:
    # Condition._is_owned asks the RLock whether this thread holds it.
    while not cond._is_owned():  # type: ignore[attr-defined]
        try:
            cond.acquire()
        except BaseException:  # noqa: S110 - a further interrupt while taking it back
            pass               # (the first one goes on; the loop checks again)


class Flag:
    """A ``threading.Event`` whose ``wait`` a Ctrl-C cannot break."""

    def __init__(self) -> None:
        self._cond = condition()
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        with self._cond:
            self._set = True
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._set = False

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False if ``timeout`` seconds pass first."""
        with self._cond:
            if not self._set:
                wait(self._cond, timeout)
            return self._set
