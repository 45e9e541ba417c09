"""Workers: composed functions, the inbox convention, errors returned as values."""

from __future__ import annotations

from papy import Worker, WorkerError


def add(inbox):
    """First function: the inbox holds one item per upstream pipe."""
    return sum(inbox)


def times(inbox, factor):
    """Next function: the inbox is (previous_result,)."""
    return inbox[0] * factor


def invert(inbox):
    return 1 / inbox[0]


if __name__ == "__main__":
    worker = Worker((add, times), arguments=[(), (10,)])
    print("add then times 10 on inbox (1, 2, 3):", worker((1, 2, 3)))
    print("equal workers for equal functions and arguments:",
          worker == Worker((add, times), arguments=[(), (10,)]))
    error = Worker((add, invert))((1, -1))
    print("an exception is returned, not raised:", isinstance(error, WorkerError))
    print(f"  function={error.function} input={error.input} exception={error.exception!r}")
    print("an error in the inbox is passed on:", Worker(add)((error,)) is error)
