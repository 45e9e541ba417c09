"""Quick start: a branched pipeline on processes and remote workers.

    split ─┬─ words  (process IMap) ─┐
           ├─ digest (process IMap) ─┼─ merge ─ write (to a file)
           └─ score  (remote IMap)  ─┘

Each line of text is split off the input stream and three branches run in
parallel: two on one shared IMap of 2 processes (counting words; hashing the
line) and one on 2 remote workers of a local ``imap-server`` that the example
starts itself (the embedded default; on a thread IMap if the server cannot
start). A merge piper joins the three results of each line and an inline
piper writes the records to a file in a temporary directory. A progress bar
(``run(progress=True)``, on stderr) follows the records written; a summary,
the bottleneck report and the path of a drawing of the pipeline are printed
at the end. The temporary directory is removed at the end; set
``PAPY_DEMO_DIR`` to a directory to keep the drawing there instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile

from imap import IMap
from imap.embedded import local
from papy import Piper, Plumber, Worker
from papy.util.func import write_line

TEXT = [f"line {i}: " + " ".join(["papy"] * (i % 7 + 1)) for i in range(60)]


def split(inbox):
    """The line with surrounding spaces stripped."""
    return inbox[0].strip()


def count_words(inbox):
    return len(inbox[0].split())


def digest(inbox):
    return hashlib.sha256(inbox[0].encode()).hexdigest()[:12]


def score(inbox):
    """Runs on the remote workers: a score, and whether it was computed remotely."""
    line = inbox[0]
    return {"score": sum(map(ord, line)) % 997, "remote": os.getpid() != MAIN_PID}


def merge(inbox):
    """The inbox holds one result per branch, in branch order."""
    words, hashed, scored = inbox
    return {"words": words, "sha": hashed, **scored}


MAIN_PID = os.getpid()


def main() -> None:
    with contextlib.ExitStack() as stack:
        try:
            servers = stack.enter_context(local(2))
        except (OSError, RuntimeError, ImportError) as exc:
            print(f"no remote workers ({exc}); scoring on 2 threads")
            remote = IMap(worker_type="thread", worker_num=2)
        else:
            print(f"remote workers: 2 on the imap-server at {servers[0][0]}")
            remote = IMap(worker_type="thread", worker_num=0, worker_remote=servers)
        run(remote)


def build(remote: IMap, out: str) -> Plumber:
    """The pipeline: ``remote`` runs the score branch; records are written to ``out``.

    (``doc/draw_demo.py`` builds it too, to draw it for the documentation.)
    """
    pool = IMap(worker_type="process", worker_num=2, stride=4)
    source = Piper(split, name="split")
    words = Piper(count_words, parallel=pool, name="words", branch=0)
    hashes = Piper(digest, parallel=pool, name="digest", branch=1)
    scored = Piper(score, parallel=remote, name="score", branch=2)
    joined = Piper(merge, name="merge")
    writer = Piper(Worker(write_line, arguments=[(out,)]), name="write")
    return Plumber(pipes=[(source, words, joined), (source, hashes, joined),
                          (source, scored, joined), (joined, writer)])


def run(remote: IMap) -> None:
    kept = os.environ.get("PAPY_DEMO_DIR")
    if kept:
        os.makedirs(kept, exist_ok=True)
        report(remote, kept)
        return
    with tempfile.TemporaryDirectory(prefix="papy-demo-") as directory:
        report(remote, directory)
    print("(the drawing went with the temporary directory; PAPY_DEMO_DIR=dir keeps it)")


def report(remote: IMap, directory: str) -> None:
    """Run the pipeline, writing its records and its drawing in ``directory``."""
    out = os.path.join(directory, "records.jsonl")
    plumber = build(remote, out)
    print(f"pipeline: {[p.name for p in plumber.topological()]}")
    print("2 branches on one IMap of 2 worker processes, 1 on remote workers")
    plumber.start([TEXT])           # a list: its length gives the bar a total
    plumber.run(progress=True)      # one bar per output piper (here: write)
    plumber.wait()
    plumber.stop()
    stats = plumber.stats
    with open(out) as handle:
        lines = handle.readlines()
    print(f"progress: {stats['pipers']['write']['out']}/{len(TEXT)} records")
    print(f"first record: {lines[0].strip()}")
    remote_done = sum('"remote": true' in line for line in lines)
    print(f"records scored on remote workers: {remote_done}/{len(lines)}")
    for name, counts in stats["pipers"].items():
        print(f"  {name:7s} in={counts['in']:3d} out={counts['out']:3d} "
              f"errors={counts['errors']}")
    print(f"done: {len(lines)} records written to {out} in {stats['run_time']:.2f} s")
    os.remove(out)
    print(plumber.report())         # per piper: items, time, waits; what limits the run
    try:                            # the graphviz extra and the dot program draw it
        picture = plumber.draw(os.path.join(directory, "pipeline.svg"))
    except (ImportError, RuntimeError) as exc:
        print(f"no SVG ({str(exc).splitlines()[0]}); writing DOT source instead")
        picture = plumber.draw(os.path.join(directory, "pipeline.dot"))
    print(f"pipeline drawn: {picture}")


if __name__ == "__main__":
    main()
