"""Quick start: a branched pipeline on a shared pool of worker processes.

    split ─┬─ words  (process IMap) ─┐
           └─ digest (process IMap) ─┴─ merge ─ score (remote IMap) ─ write (to a file)

Each line of text is split off the input stream, two branches run in parallel
on one shared IMap of 2 processes (counting words; hashing the line), a merge
piper joins their results per line, a scoring piper runs on 2 remote workers
of a local ``imap-server`` that the example starts itself (the embedded
default; run on a thread IMap if the server cannot start), and an inline
piper writes the records to a file in a temporary directory. Progress and a
summary are printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile

from imap import IMap
from imap.server import local
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


def merge(inbox):
    words, hashed = inbox
    return {"words": words, "sha": hashed}


def score(inbox):
    """Runs on the remote workers: adds a score and where it was computed."""
    record = dict(inbox[0])
    record["score"] = record["words"] * int(record["sha"][:2], 16)
    record["remote"] = os.getpid() != MAIN_PID
    return record


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


def run(remote: IMap) -> None:
    directory = tempfile.mkdtemp(prefix="papy-demo-")
    out = os.path.join(directory, "records.jsonl")
    pool = IMap(worker_type="process", worker_num=2, stride=4)
    source = Piper(split, name="split")
    words = Piper(count_words, parallel=pool, name="words", branch=0)
    hashes = Piper(digest, parallel=pool, name="digest", branch=1)
    joined = Piper(merge, name="merge")
    scored = Piper(score, parallel=remote, name="score")
    writer = Piper(Worker(write_line, arguments=[(out,)]), name="write")
    plumber = Plumber(pipes=[(source, words, joined), (source, hashes, joined),
                             (joined, scored, writer)])
    print(f"pipeline: {[p.name for p in plumber.topological()]}")
    print("2 branches on one IMap of 2 worker processes")
    plumber.start([iter(TEXT)])
    plumber.run()
    while not plumber.wait(0.05):
        print(f"progress: {plumber.stats['pipers']['write']['out']}/{len(TEXT)} records")
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
    os.rmdir(directory)


if __name__ == "__main__":
    main()
