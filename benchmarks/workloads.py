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


def gen_ints(n):
    """``0 .. n-1`` from a generator: the tiny workload's other input kind."""
    return (x for x in range(n))


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
# mixed: CPU work of a duration drawn at random between MIXED_MIN_MS and
# MIXED_MAX_MS, log-uniformly (as many calls of 0.1-1 ms as of 1-10 ms). The
# draw is a hash of the item, so every system, run and machine gets the same
# durations for the same items; the work is spin(), scaled by the calibration.

MIXED_MIN_MS = 0.1
MIXED_MAX_MS = 10.0
MIXED_SEED = 0x5EED_1234
_MASK64 = (1 << 64) - 1


def _mix64(z):
    """A 64-bit integer hash (splitmix64's finaliser): well spread bits."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def mixed_ms(i):
    """The duration of item ``i`` of the mixed workload, in milliseconds."""
    u = _mix64(i ^ MIXED_SEED) / 2.0 ** 64
    return MIXED_MIN_MS * (MIXED_MAX_MS / MIXED_MIN_MS) ** u


def mixed(x, n_per_ms):
    """``spin`` for ``mixed_ms(x)`` worth of work, then return ``x + 1``."""
    if x is None:
        return None
    spin(int(n_per_ms * mixed_ms(x)))
    return x + 1


def mixed_many(xs, n_per_ms):
    """``mixed`` over a list of items in one call: the sum of the results."""
    if xs is None:
        return None
    return sum(mixed(x, n_per_ms) for x in xs)


def balanced_parts(n, parts):
    """Split ``range(n)`` into ``parts`` contiguous lists of nearly equal work.

    Each cut is placed where the running sum of ``mixed_ms`` first reaches its
    share of the total, so no part exceeds its share by more than one item.
    """
    cuts, acc, k = [0], 0.0, 1
    total = sum(mixed_ms(i) for i in range(n))
    for i in range(n):
        if k < parts and acc + mixed_ms(i) / 2 >= total * k / parts:
            cuts.append(i)
            k += 1
        acc += mixed_ms(i)
    cuts += [n] * (parts + 1 - len(cuts))
    return [list(range(a, b)) for a, b in zip(cuts, cuts[1:], strict=False)]


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
