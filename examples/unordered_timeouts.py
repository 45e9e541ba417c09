"""Unordered results, timeouts and skipping, on thread workers.

1. ``ordered=False``: results come back as they are computed, not in input order.
2. ``skip=True``: a result that misses its timeout is given up, and the next
   call moves on to the following result.
3. ``skip=False`` (the default): a timeout loses nothing; the same result can
   be asked for again.

Thread workers suit this example: the functions only sleep, standing in for
I/O such as a network call. Run it with ``python examples/unordered_timeouts.py``.
"""

from __future__ import annotations

import time

from imap import IMap, imap

# How long each item of part 1 takes, in seconds.
DELAYS = [0.30, 0.05, 0.20, 0.01, 0.15, 0.02, 0.10, 0.01]
TIMEOUT = 0.5
SLOW = 2.0


def slow_square(i: int) -> tuple[int, int]:
    """Sleep for item ``i``'s delay, then return ``(i, i * i)``."""
    time.sleep(DELAYS[i])
    return i, i * i


def lookup(key: str) -> str:
    """A fake remote lookup: fast, except for the key ``"slow"``."""
    time.sleep(SLOW if key == "slow" else 0.05)
    return f"value of {key}"


def unordered() -> None:
    print("1. ordered=False on 3 thread workers")
    results = list(
        imap(slow_square, range(len(DELAYS)), worker_type="thread", worker_num=3, ordered=False)
    )
    arrival = [i for i, _ in results]
    print(f"   input order:   {list(range(len(DELAYS)))}")
    print(f"   arrival order: {arrival}")
    print(f"   every item came back exactly once: {sorted(arrival) == list(range(len(DELAYS)))}")


def skipping() -> None:
    print(f"2. skip=True, timeout {TIMEOUT} s per result")
    keys = ["a", "b", "slow", "c", "d"]
    with IMap(worker_type="thread", worker_num=2, skip=True) as m:
        answers = m.add_task(lookup, keys, timeout=TIMEOUT)
        m.start()
        for key in keys:
            try:
                # next(answers) uses the task's default timeout given to add_task
                print(f"   {key}: {next(answers)}")
            except TimeoutError:  # imap.TimeoutError subclasses the builtin one
                print(f"   {key}: no answer within {TIMEOUT} s, skipped")
        skipped = m.status().tasks[0].skipped
    print(f"   results skipped: {skipped}")


def waiting() -> None:
    print("3. skip=False: a timeout loses nothing")
    with IMap(worker_type="thread", worker_num=1) as m:
        answers = m.add_task(lookup, ["slow"])
        m.start()
        try:
            answers.next(timeout=TIMEOUT)
        except TimeoutError:
            print(f"   not ready after {TIMEOUT} s; asking again without a timeout")
        print(f"   slow: {answers.next()}")


def main() -> None:
    unordered()
    skipping()
    waiting()


if __name__ == "__main__":
    main()
