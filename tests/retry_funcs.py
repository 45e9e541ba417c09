"""Functions for the retry tests: each attempt is noted in a file (one line,
appended with O_APPEND, holding the time), so attempts are counted and timed
whatever process or host ran them. The remote tests send this module by
value."""

from __future__ import annotations

import os
import time


def attempt(directory: str, x) -> int:
    """Note an attempt on item ``x``; return how many were made, this one included."""
    path = os.path.join(directory, f"attempts-{x}")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{time.monotonic()!r}\n".encode())
    finally:
        os.close(fd)
    with open(path) as handle:
        return len(handle.read().split())


def attempt_times(directory: str, x) -> list[float]:
    """The times of the attempts on item ``x``, in order."""
    path = os.path.join(directory, f"attempts-{x}")
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [float(t) for t in handle.read().split()]


def flaky(x, directory, failures):
    """Raise OSError on the first ``failures`` attempts of ``x``, then return 10 x."""
    if attempt(directory, x) <= failures:
        raise OSError(f"item {x}: a passing failure")
    return 10 * x


def flaky_inbox(inbox, directory, failures):
    """:func:`flaky` on a papy inbox."""
    return flaky(inbox[0], directory, failures)


def bad_value(x, directory):
    """Always raise ValueError (not a class to retry)."""
    attempt(directory, x)
    raise ValueError(f"item {x} is bad")


def lost_then_oserror(x, directory):
    """Attempt 1 kills its worker process, attempt 2 raises OSError, attempt 3 returns."""
    n = attempt(directory, x)
    if n == 1:
        os._exit(3)
    if n == 2:
        raise OSError(f"item {x}: a passing failure")
    return 10 * x
