"""Module-level worker functions for the papy tests (importable by worker processes)."""

from __future__ import annotations

import os
import threading
import time


def inc(inbox, n=1):
    return inbox[0] + n


def dbl(inbox):
    return inbox[0] * 2


def neg(inbox):
    return -inbox[0]


def add(inbox):
    return sum(inbox)


def pair(inbox):
    return tuple(inbox)


def fail_on_3(inbox):
    if inbox[0] == 3:
        raise ValueError("three is bad")
    return inbox[0]


def divmod_(inbox, d=3):
    return divmod(inbox[0], d)


def square(inbox):
    return inbox[0] ** 2


def identity(inbox):
    return inbox[0]


def slow_on_2(inbox, event=None):
    """Blocks for item 2 until released (or 30 s), otherwise returns the item."""
    if inbox[0] == 2:
        (event or threading.Event()).wait(30)
    return inbox[0]


def sleepy(inbox, seconds=0.001):
    time.sleep(seconds)
    return inbox[0]


def total(inbox):
    """The sum of the items of the first input (a tuple of them with consume > 1)."""
    return sum(inbox[0])


def exit_on_first_attempt(inbox, victim, marker):
    """End the worker process at the first attempt at item ``victim`` only
    (``marker`` is created then); later attempts return the item doubled."""
    x = inbox[0]
    if x == victim:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return 2 * x
        os._exit(1)
    return 2 * x
