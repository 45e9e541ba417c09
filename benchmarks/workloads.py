"""Workload functions shared by every system in the benchmarks.

Everything here is a module-level function (or a ``functools.partial`` of one)
so that ``multiprocessing.Pool``, ``ProcessPoolExecutor``, mpire, pypeln and
imap can all pickle it by reference, under fork, forkserver and spawn alike.
``run.py`` puts this directory on ``PYTHONPATH`` before any pool starts, so
worker processes import this same module.

``None`` is a *warm-up token*: every stage function returns ``None`` for it at
once.  The benchmarks use it to start each system's workers (and ship the
function to them) before the clock starts, the same way for every system.
The check costs a few tens of nanoseconds per call, the same for everyone.
"""

import time
import zlib

# --------------------------------------------------------------------------
# 1. tiny tasks


def inc(x):
    """The tiny task: ``x + 1``."""
    if x is None:
        return None
    return x + 1


# --------------------------------------------------------------------------
# 2./3. CPU-bound work: a fixed amount of pure-Python work, not a busy-wait on
# the clock, so oversubscribed workers really do take longer.


def spin(n):
    """Pure-Python loop of ``n`` iterations; the unit of CPU work."""
    acc = 0
    for i in range(n):
        acc ^= i * 7
    return acc


def burn(x, n):
    """Do ``spin(n)`` worth of CPU work, then return ``x + 1``."""
    if x is None:
        return None
    spin(n)
    return x + 1


def burn_chain(x, n, stages):
    """``stages`` calls of ``burn`` composed in one call (the chain, serially)."""
    for _ in range(stages):
        x = burn(x, n)
    return x


def calibrate(seconds, repeats=7):
    """Return the ``n`` for which ``spin(n)`` takes about ``seconds`` here.

    Measured once per run, in the parent, as the best of ``repeats`` timings
    (best = least disturbed by other load).
    """
    probe = 20_000
    best = float("inf")
    # grow the probe until one call takes at least ~5 ms, for a stable ratio
    while True:
        t0 = time.perf_counter()
        spin(probe)
        dt = time.perf_counter() - t0
        if dt >= 0.005:
            break
        probe *= 2
    for _ in range(repeats):
        t0 = time.perf_counter()
        spin(probe)
        best = min(best, time.perf_counter() - t0)
    return max(1, int(probe * seconds / best))


# --------------------------------------------------------------------------
# 4. memory: 1 KB bytes items through a chain of three cheap stages.

ITEM_SIZE = 1024
_ROT13ISH = bytes((b + 13) % 256 for b in range(256))


def make_item(i):
    """Item ``i``: 1024 bytes, built on demand."""
    return i.to_bytes(8, "little") * (ITEM_SIZE // 8)


def gen_items(n):
    """A lazy generator of ``n`` 1 KB items (never a list)."""
    for i in range(n):
        yield make_item(i)


def stage_a(b):
    """Reverse the bytes (1 KB in, 1 KB out)."""
    if b is None:
        return None
    return b[::-1]


def stage_b(b):
    """Shift every byte by 13 (1 KB in, 1 KB out)."""
    if b is None:
        return None
    return b.translate(_ROT13ISH)


def stage_c(b):
    """Rotate by half the length (1 KB in, 1 KB out)."""
    if b is None:
        return None
    half = len(b) // 2
    return b[half:] + b[:half]


def fold_bytes(acc, b):
    """Order-independent checksum step for a bytes result."""
    return (acc + zlib.crc32(b)) & 0xFFFFFFFFFFFF


def expected_bytes_checksum(n):
    """The checksum a correct chain run over ``gen_items(n)`` must give."""
    acc = 0
    for b in gen_items(n):
        acc = fold_bytes(acc, stage_c(stage_b(stage_a(b))))
    return acc
