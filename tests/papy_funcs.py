"""Module-level worker functions for the papy tests (importable by worker processes)."""

from __future__ import annotations

import os
import threading
import time

import worker_funcs

import imap


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
    """With consume > 1: the sum of the first input's items over the inboxes consumed."""
    return sum(box[0] for box in inbox)


def exit_on_first_attempt(inbox, victim, marker):
    """``worker_funcs.exit_on_first_attempt`` on a papy inbox."""
    return worker_funcs.exit_on_first_attempt(inbox[0], victim, marker)


@imap.depend(worker_funcs.is_capable)
def papy_pid_if_capable(inbox):
    """A papy worker function that runs only where is_capable()."""
    return (inbox[0], os.getpid())


def gc_content(seq):
    """The share of G and C in ``seq`` (a function of one item: papy.item)."""
    return (seq.count("G") + seq.count("C")) / len(seq)


def drop_odd_item(x):
    """Drops an odd item (imap.DROP), keeps an even one (papy.item)."""
    return imap.DROP if x % 2 else x
