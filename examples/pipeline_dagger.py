"""Daggers: a branch (one piper feeding two) and a merge (inbox order by branch)."""

from __future__ import annotations

from imap import IMap
from papy import Dagger, DaggerError, Piper


def inc(inbox):
    return inbox[0] + 1


def double(inbox):
    return inbox[0] * 2


def negate(inbox):
    return -inbox[0]


def pair(inbox):
    return inbox


if __name__ == "__main__":
    with IMap(worker_type="thread", worker_num=2) as pool:
        source = Piper(inc, name="source")
        left = Piper(double, parallel=pool, name="left", branch=2)
        right = Piper(negate, parallel=pool, name="right", branch=1)
        merge = Piper(pair, name="merge")
        dagger = Dagger(pipes=[(source, left, merge), (source, right, merge)])
        print("inputs:", [p.name for p in dagger.get_inputs()],
              "outputs:", [p.name for p in dagger.get_outputs()])
        print("merge inbox order (by branch):", [p.name for p in dagger.upstream(merge)])
        dagger.connect([range(5)])
        dagger.start()
        print("merged:", list(merge))
        dagger.stop()
        dagger.disconnect()
    try:
        dagger.add_pipe((merge, source))
    except DaggerError as error:
        print("a cycle is refused:", error)
