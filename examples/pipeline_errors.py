"""Errors never stop the flow: PiperError values in place, timeouts, debug mode."""

from __future__ import annotations

import time

from imap import IMap
from papy import Piper, PiperError, Plumber, PlumberError


def reciprocal(inbox):
    return 1 / inbox[0]


def slow_on_three(inbox):
    if inbox[0] == 3:
        time.sleep(1.0)   # longer than the piper's timeout
    return inbox[0]


def identity(inbox):
    """Never sees an error: an inbox holding a PiperError is passed on unrun."""
    return inbox[0]


def show(values):
    return [f"<{type(v.error).__name__} from {v.piper}>" if isinstance(v, PiperError)
            else v for v in values]


def run(plumber, data):
    plumber.start([data])
    plumber.run()
    try:
        plumber.wait(60)
    finally:
        plumber.stop()
    return show(list(plumber.results.values())[0])


if __name__ == "__main__":
    p = Plumber(pipes=[(Piper(reciprocal, name="reciprocal"), Piper(identity, name="next"))],
                keep=True)
    print("an error in place:", run(p, [1, 2, 0, 4]))
    with IMap(worker_type="thread", worker_num=2, skip=True) as pool:
        slow = Piper(slow_on_three, parallel=pool, timeout=0.3, name="slow")
        p = Plumber(pipes=[(slow, Piper(identity, name="next"))], keep=True)
        print("a timeout in place:", run(p, range(5)))
    p = Plumber(pipes=[(Piper(reciprocal, debug=True), Piper(identity))], keep=True)
    try:
        run(p, [1, 0, 2])
    except PlumberError as error:
        print("debug=True raises:", error.__cause__)
