"""The Plumber: start, run, pause, resume, wait, stop, stats, save and load."""

from __future__ import annotations

import os
import tempfile

from imap import IMap
from papy import Piper, Plumber


def inc(inbox):
    return inbox[0] + 1


def square(inbox):
    return inbox[0] ** 2


def build() -> Plumber:
    pool = IMap(worker_type="process", worker_num=2)
    return Plumber(pipes=[(Piper(inc, parallel=pool, name="inc"),
                           Piper(square, parallel=pool, name="square"))], keep=True)


if __name__ == "__main__":
    plumber = build()
    plumber.start([range(1000)])
    plumber.run()
    plumber.pause()
    print("paused after", len(plumber.results["square"]), "results")
    plumber.run()
    print("finished:", plumber.wait(60))
    plumber.stop()
    results = plumber.results["square"]
    print("results:", len(results), "first:", results[:4],
          "correct:", results == [(x + 1) ** 2 for x in range(1000)])
    for name, counts in plumber.stats["pipers"].items():
        print(f"  {name}: {counts}")
    path = os.path.join(tempfile.mkdtemp(), "pipeline.py")
    plumber.save(path)
    print("saved to a Python file:", os.path.basename(path))
    copy = Plumber(keep=True).load(path)
    copy.start([range(5)])
    copy.run()
    copy.wait(60)
    copy.stop()
    print("loaded copy gives:", copy.results["square"])
    os.remove(path)
    os.rmdir(os.path.dirname(path))
