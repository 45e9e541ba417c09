"""GC content of FASTA records: parse, measure, drop the poor ones, write.

    read ── parse ─┬─ gc ── rich ─┐
                   └─ length ─────┴─ merge ── write

The example writes its own input: 300 random DNA records (no download) in
``records.fasta``, in the output directory given as the first argument
(default: ``fasta_gc_out`` under the current directory). ``read`` is a plain
generator that yields the text of one record at a time; then

* ``parse`` (2 worker processes) makes ``(name, sequence)`` of a record;
* the pipeline branches: ``gc`` (on the same IMap) measures the share of G
  and C, and ``rich`` drops a record below the threshold by returning
  ``imap.DROP``; ``length`` (inline) counts the bases;
* ``merge`` joins the two branches item by item: a record that ``rich``
  dropped is dropped there too, and its length is never seen by ``merge``;
* ``write`` (inline) appends one tab-separated line per record that is left
  to ``gc_rich.tsv``.

Every function is written for one item and wrapped in ``papy.item``. The
script checks the file against the same steps run one record after the
other, and prints the counts.
"""

from __future__ import annotations

import os
import random
import sys

import imap
import papy
from imap import IMap
from papy import Piper, Plumber, Worker

THRESHOLD = 0.5   # records with less GC than this are dropped
RECORDS = 300


def make_fasta(path: str, n: int = RECORDS, seed: int = 7) -> None:
    """Write ``n`` random DNA records to ``path``, 60 bases a line; each
    record has its own GC bias, so some fall below the threshold."""
    rng = random.Random(seed)
    with open(path, "w", encoding="ascii") as out:
        for i in range(n):
            gc = rng.uniform(0.3, 0.7)
            weights = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
            seq = "".join(rng.choices("AGCT", weights, k=rng.randint(80, 400)))
            out.write(f">seq{i:04d} sample record {i}\n")
            for start in range(0, len(seq), 60):
                out.write(seq[start:start + 60] + "\n")


def read_records(path: str):
    """The text of each record of a FASTA file, one at a time (lazily)."""
    lines: list[str] = []
    with open(path, encoding="ascii") as handle:
        for line in handle:
            if line.startswith(">") and lines:
                yield "".join(lines)
                lines = []
            lines.append(line)
    if lines:
        yield "".join(lines)


def parse(record: str) -> tuple[str, str]:
    """``(name, sequence)`` of one record's text."""
    header, *rows = record.splitlines()
    return header[1:].split()[0], "".join(rows).upper()


def gc_content(named: tuple[str, str]) -> tuple[str, float]:
    name, seq = named
    return name, (seq.count("G") + seq.count("C")) / len(seq)


def rich(measured: tuple[str, float], threshold: float):
    """The record if its GC content reaches ``threshold``; else dropped."""
    return measured if measured[1] >= threshold else imap.DROP


def length(named: tuple[str, str]) -> int:
    return len(named[1])


def merge(measured: tuple[str, float], bases: int) -> str:
    """One line of the table: a merge's item function gets one argument per branch."""
    name, gc = measured
    return f"{name}\t{gc:.4f}\t{bases}"


def write(line: str, path: str) -> str:
    with open(path, "a", encoding="ascii") as out:
        out.write(line + "\n")
    return line


def serial(path: str) -> list[str]:
    """The same steps, one record after the other (the check)."""
    lines = []
    for record in read_records(path):
        named = parse(record)
        measured = rich(gc_content(named), THRESHOLD)
        if measured is not imap.DROP:
            lines.append(merge(measured, length(named)))
    return lines


def build(out: str) -> Plumber:
    pool = IMap(worker_type="process", worker_num=2)
    source = Piper(papy.item(parse), parallel=pool, name="parse")
    gc = Piper(papy.item(gc_content), parallel=pool, name="gc")
    keep = Piper(Worker(papy.item(rich), arguments=[(THRESHOLD,)]), name="rich", branch=0)
    bases = Piper(papy.item(length), name="length", branch=1)
    joined = Piper(papy.item(merge), name="merge")
    writer = Piper(Worker(papy.item(write), arguments=[(out,)]), name="write")
    return Plumber(pipes=[(source, gc, keep, joined), (source, bases, joined),
                          (joined, writer)])


def main(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    fasta = os.path.join(directory, "records.fasta")
    out = os.path.join(directory, "gc_rich.tsv")
    make_fasta(fasta)
    if os.path.exists(out):
        os.remove(out)
    plumber = build(out)
    print(f"pipeline: {[p.name for p in plumber.topological()]}")
    plumber.start([read_records(fasta)])
    plumber.run()
    plumber.wait()
    plumber.stop()
    stats = plumber.stats
    with open(out, encoding="ascii") as handle:
        written = handle.read().splitlines()
    dropped = stats["pipers"]["rich"].get("dropped", 0)
    print(f"{stats['pipers']['parse']['out']} records parsed, {dropped} dropped below "
          f"GC {THRESHOLD}, {len(written)} written to {out}")
    print(f"first line: {written[0]}")
    print(f"identical to the serial computation: {written == serial(fasta)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fasta_gc_out")
