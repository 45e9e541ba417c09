"""Three chained tasks sharing one pool of two worker processes.

A generated stream of CSV-like records flows through

    parse  ->  transform  ->  summarise

on a single IMap. The three functions are interleaved stride by stride (the
weave), so the first summaries are printed while most of the stream has not
been read yet, and the buffer caps how many records are inside the engine at
any moment.

Run it with ``python examples/chained_tasks.py`` (``make demo`` runs
``examples/pipeline_demo.py``, a branched pipeline).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from imap import IMap

RECORDS = 40
STRIDE = 4


def generate_records(count: int) -> Iterator[str]:
    """Yield ``count`` records of the form ``"id,x,y"``, lazily."""
    for i in range(count):
        yield f"{i},{(i * 37) % 101 - 50},{(i * 11) % 17 - 8}"


def parse(line: str) -> tuple[int, float, float]:
    """Task 0: split a record into its id and a point (x, y)."""
    ident, x, y = line.split(",")
    return int(ident), float(x), float(y)


def transform(record: tuple[int, float, float]) -> tuple[int, float, float]:
    """Task 1: convert the point to polar coordinates (radius, angle in degrees)."""
    ident, x, y = record
    return ident, math.hypot(x, y), math.degrees(math.atan2(y, x))


def summarise(polar: tuple[int, float, float], digits: int) -> str:
    """Task 2: format one line of the report; ``digits`` comes from ``args``."""
    ident, radius, angle = polar
    return f"record {ident:3d}: r = {radius:7.{digits}f}  angle = {angle:8.{digits}f} deg"


def serial(count: int, digits: int) -> list[str]:
    """The same computation without the IMap, for comparison."""
    return [summarise(transform(parse(line)), digits) for line in generate_records(count)]


def main() -> None:
    digits = 2
    m = IMap(worker_type="process", worker_num=2, stride=STRIDE)
    parsed = m.add_task(parse, generate_records(RECORDS), name="parse")
    polar = m.add_task(transform, parsed, name="transform")
    report = m.add_task(summarise, polar, args=(digits,), name="summarise")
    m.start()
    print(
        f"3 chained tasks on 2 worker processes: stride {STRIDE}, "
        f"buffer {m.status().buffer} (stride x tasks)"
    )

    lines = []
    try:
        for line in report:
            lines.append(line)
            print(line)
            if len(lines) % 10 == 0:
                status = m.status()
                counts = ", ".join(f"{t.name} drawn {t.drawn}" for t in status.tasks)
                print(
                    f"  progress: {len(lines)}/{RECORDS} results; {counts}; "
                    f"slots used {status.slots_used}/{status.buffer}"
                )
        high_water = m.high_water
    finally:
        m.stop()

    same = lines == serial(RECORDS, digits)
    print(f"done: {len(lines)} results, identical to the serial computation: {same}")
    print(f"at most {high_water} tasklets were inside the engine at once")


if __name__ == "__main__":
    main()
