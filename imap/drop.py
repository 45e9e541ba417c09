"""``imap.DROP``: the value a function returns for an item that has no result.

A task's function returns :data:`DROP` to filter its item out: the IMap
files nothing for it. Ordered output goes on with the next item (the
dropped one is simply not yielded), a chained task is not fed it, and its
buffer slot is given back as soon as it arrives. ``IMap.status()`` counts
it in ``done`` (it arrived) and in ``dropped``.

It crosses process and host boundaries as itself: it pickles by reference
to this module's attribute, so the value a worker returns is, in the
parent, the very same object, and ``result is imap.DROP`` holds.
"""

from __future__ import annotations

from itertools import repeat
from operator import is_

__all__ = ["DROP", "has_drop"]


class _Drop:
    """The type of :data:`DROP` (one instance)."""

    __slots__ = ()
    _instance: _Drop | None = None

    def __new__(cls) -> _Drop:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __reduce__(self) -> str:
        return "DROP"   # pickled as the global imap.drop.DROP: the same object

    def __repr__(self) -> str:
        return "imap.DROP"


#: Returned by a task's function: the item has no result (it is filtered out).
DROP = _Drop()


def has_drop(values: list) -> bool:
    """True if ``values`` holds :data:`DROP` (by identity: no ``==`` is called,
    so an array among the values is fine)."""
    return any(map(is_, values, repeat(DROP)))
