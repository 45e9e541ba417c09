"""Pipers: inline and on an IMap; consume, produce, repeat and spawn."""

from __future__ import annotations

from imap import IMap
from papy import Piper


def square(inbox):
    return inbox[0] ** 2


def total(inbox):
    """With consume=3 the inbox holds, per pipe, a tuple of 3 items."""
    return sum(inbox[0])


def digits(inbox):
    """With produce=2 one result (a pair) becomes two items."""
    return divmod(inbox[0], 10)


def pull(piper, data):
    piper.connect([data])
    piper.start()
    try:
        return list(piper)
    finally:
        piper.stop()
        piper.disconnect()


if __name__ == "__main__":
    print("inline (lazy):       ", pull(Piper(square), range(6)))
    with IMap(worker_type="thread", worker_num=2) as pool:
        print("on a thread IMap:    ", pull(Piper(square, parallel=pool), range(6)))
        print("spawn=3 (3 tasks):   ", pull(Piper(square, parallel=pool, spawn=3), range(6)))
    print("consume=3:           ", pull(Piper(total, consume=3), range(9)))
    print("produce=2:           ", pull(Piper(digits, produce=2), [42, 17]))
    print("produce=2 repeat:    ", pull(Piper(square, produce=2, repeat=True), [3, 4]))
    tracked = Piper(square, track=True)
    pull(tracked, range(4))
    print("track=True keeps:    ", tracked.tracked)
