"""Arrays through a chain of process workers, without copies.

Each 512 x 512 float64 image (2 MiB) reaches a worker through shared memory:
the worker's array is that memory, read-only. The workers' numpy computes the
results in shared memory too, so they come back without a copy (the blurred
image goes on to the next task as it is). Copy an array before editing it in
place.

Needs numpy (``pip install numpy``).
"""

import time

import numpy as np

from imap import IMap

SIDE = 512


def image(i):
    """A test image: a gradient plus a seeded noise."""
    rng = np.random.default_rng(i)
    ramp = np.linspace(0.0, 1.0, SIDE)
    return np.add.outer(ramp, ramp) + rng.random((SIDE, SIDE))


def blur(a):
    """The mean of each pixel's 3 x 3 neighbourhood (edges kept)."""
    out = a.copy()   # the input is read-only: edit a copy
    out[1:-1, 1:-1] = sum(a[1 + dy:SIDE - 1 + dy, 1 + dx:SIDE - 1 + dx]
                          for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    return out


def normalise(a):
    """Scaled to [0, 1]."""
    low, high = a.min(), a.max()
    return (a - low) / (high - low)


if __name__ == "__main__":
    images = [image(i) for i in range(60)]
    with IMap(worker_num=2) as m:
        blurred = m.add_task(blur, images)
        scaled = m.add_task(normalise, blurred)
        began = time.perf_counter()
        m.start()
        results = list(scaled)
        seconds = time.perf_counter() - began
    mib = sum(a.nbytes for a in images) / 2 ** 20
    print(f"{len(results)} images of {SIDE} x {SIDE} through blur, then normalise, "
          f"on 2 worker processes")
    print(f"results are read-only: {not results[0].flags.writeable}")
    try:
        results[0][0, 0] = 1.0
    except ValueError as exc:
        print(f"writing into one: ValueError: {exc}")
    editable = results[0].copy()
    editable[0, 0] = 1.0
    print(f"a copy can be edited: {editable[0, 0] == 1.0}")
    same = all(np.array_equal(r, normalise(blur(a))) for r, a in zip(results, images, strict=True))
    print(f"done: {mib:.0f} MiB in {seconds:.2f} s, identical to the serial computation: "
          f"{same}")
