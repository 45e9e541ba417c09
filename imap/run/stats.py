"""Run statistics: what each task cost and what the run waited on.

The workers time every batch (:mod:`imap.worker.kernel`: ``busy``, the
batch's seconds, and ``peak``, its longest tasklet) and send the figures
back with the results; the same measurement feeds the adaptive flow policy.
The engine adds what only the parent sees: how long the Feeder waited for
input, for free buffer room (results waiting for a consumer), and how long
consumers waited for results. :class:`TaskStats` and :class:`RunStats` hold
these counters (updated under the engine's lock); ``IMap.status()`` copies
them into its snapshot, and :func:`report` turns a snapshot into a
:class:`Report`: a table per task and a verdict naming what limits the run.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Report", "RunStats", "TaskStats", "report"]

SAMPLE_EVERY = 0.25   # seconds between the samples of a task's progress
WINDOW = 5.0          # seconds over which the recent rate is measured
SAMPLES = int(WINDOW / SAMPLE_EVERY) + 1

# Shares of the run's wall time above which a wait or the work is the limit.
WAIT_LIMIT = 0.5
BUSY_LIMIT = 0.75
# A consumer that waited for results less than this share of the time
# keeps the workers waiting (if they are not busy).
CONSUMER_WAITED = 0.25
# A run shorter than this (seconds) is not judged: start-up dominates it.
MIN_ELAPSED = 0.25
# A tasklet shorter than this costs less than the messaging around it.
CHEAP_TASKLET = 100e-6


class TaskStats:
    """Timing counters of one task (updated under the engine's lock)."""

    __slots__ = ("busy", "peak", "batches", "timed", "input_wait", "result_wait", "samples")

    def __init__(self) -> None:
        self.busy = 0.0          # seconds workers spent on the task's batches
        self.peak = 0.0          # the longest tasklet measured (seconds)
        self.batches = 0         # batches (and partial answers) delivered
        self.timed = 0           # tasklets in batches whose time was measured
        self.input_wait = 0.0    # the Feeder inside the input's next(), or waiting upstream
        self.result_wait = 0.0   # consumers waiting for a result of this task
        self.samples: collections.deque = collections.deque(maxlen=SAMPLES)

    def delivered(self, n: int, busy: float | None, peak: float | None, done: int,
                  now: float) -> None:
        """A batch of ``n`` tasklets came back; ``done`` results have arrived."""
        self.batches += 1
        if busy is not None:
            self.busy += busy
            self.timed += n
        if peak is not None and peak > self.peak:
            self.peak = peak
        samples = self.samples
        if not samples or now - samples[-1][0] >= SAMPLE_EVERY:
            samples.append((now, done))

    def rate(self, done: int, now: float, since: float | None) -> float | None:
        """Results per second over the last ``WINDOW`` seconds (None before any)."""
        samples = self.samples
        then, before = None, 0
        for t, count in samples:
            if now - t <= WINDOW:
                then, before = t, count
                break
        if then is None:
            if since is None:
                return None
            then, before = since, 0
        if now - then <= 0:
            return None
        return (done - before) / (now - then)


class RunStats:
    """Timing counters of one IMap run (updated under the engine's lock)."""

    __slots__ = ("started", "ended", "finished", "room_wait", "delivered")

    def __init__(self) -> None:
        self.started: float | None = None   # perf_counter() once the workers are up
        self.ended: float | None = None     # ... at stop()
        self.finished: float | None = None  # ... when a consumer last found its task finished
        self.room_wait = 0.0   # the Feeder waiting for buffer room: results wait for consumers
        self.delivered = 0     # tasklets whose results came back, every task

    def begin(self) -> None:
        self.started = time.perf_counter()
        self.ended = self.finished = None
        self.room_wait = 0.0
        self.delivered = 0

    def elapsed(self, now: float) -> float:
        """The run's wall time: until now while it runs; once stopped, until
        the last result was taken (or the stop, if that came first)."""
        if self.started is None:
            return 0.0
        if self.ended is None:
            return now - self.started
        return min(self.ended, self.finished or self.ended) - self.started


# -- the report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What a run did and what limited it (``IMap.report()``, ``Plumber.report()``).

    Attributes:
        rows: one dict per task or piper: ``name``, ``task`` (the task id;
            absent from a piper's row), ``items`` (results),
            ``errors``, ``busy`` (worker seconds), ``share`` (of the pool's
            time, 0-1), ``rate`` (items/s, recent), ``tasklet`` (mean seconds
            per tasklet), ``peak`` (longest), ``input_wait`` and
            ``result_wait`` (seconds).
        elapsed: the run's wall time so far (seconds).
        workers: workers in the pool.
        room_wait: seconds the Feeder waited for buffer room.
        bottleneck: what limits the run: a task or piper name, ``"input"``,
            ``"consumer"``, ``"overhead"`` or None (nothing ran yet).
        verdict: one line naming the bottleneck and the usual remedy.
        notes: other findings (a task whose every item failed, ...).
        kind: what a row is: ``"task"`` or ``"piper"``.
    """

    rows: list[dict] = field(default_factory=list)
    elapsed: float = 0.0
    workers: int = 0
    room_wait: float = 0.0
    bottleneck: str | None = None
    verdict: str = ""
    notes: list[str] = field(default_factory=list)
    kind: str = "task"

    def as_dict(self) -> dict:
        """The report as plain data, for programs."""
        return {"rows": [dict(r) for r in self.rows], "elapsed": self.elapsed,
                "workers": self.workers, "room_wait": self.room_wait,
                "bottleneck": self.bottleneck, "verdict": self.verdict,
                "notes": list(self.notes)}

    def __str__(self) -> str:
        head = [self.kind, "items", "errors", "busy s", "share", "items/s", "tasklet",
                "input wait s", "result wait s"]
        lines = [[str(r["name"]), str(r["items"]), str(r["errors"]), f"{r['busy']:.2f}",
                  f"{r['share']:.0%}", _num(r["rate"]), _secs(r["tasklet"]),
                  f"{r['input_wait']:.2f}", f"{r['result_wait']:.2f}"] for r in self.rows]
        out = _table(head, lines)
        out.append(f"{self.elapsed:.2f} s on {self.workers} worker(s); the Feeder waited "
                   f"{self.room_wait:.2f} s for buffer room")
        out.extend(f"note: {n}" for n in self.notes)
        out.append(f"verdict: {self.verdict}")
        return "\n".join(out)


def _table(head: list[str], lines: list[list[str]]) -> list[str]:
    """Rows of aligned columns: the first to the left, the others to the right."""
    widths = [max(len(cell) for cell in column) for column in zip(head, *lines, strict=True)]

    def row(cells: list[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths, strict=True)))
    return [row(head)] + [row(line) for line in lines]


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}" if x >= 10 else f"{x:.2f}"


def _secs(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.1f} ms"
    return f"{x * 1e6:.0f} us"


def task_row(name: str, t: Any, pool: float) -> dict:
    """A report row from a :class:`~imap.run.status.TaskStatus`."""
    return {
        "name": name, "task": t.task, "items": t.done, "errors": t.errors, "busy": t.busy,
        "share": t.busy / pool if pool > 0 else 0.0, "rate": t.rate,
        "tasklet": t.mean_time, "peak": t.peak_time,
        "input_wait": t.input_wait, "result_wait": t.result_wait,
        "reads_input": t.reads_input, "output": t.output,
    }


def judge(rows: list[dict], elapsed: float, workers: int, room_wait: float,
          kind: str = "task", adaptive: bool = True) -> tuple[str | None, str, list[str]]:
    """``(bottleneck, verdict, notes)`` for report rows (see :class:`Report`)."""
    notes = [f"every item of {kind} {r['name']} failed ({r['errors']})"
             for r in rows if r["items"] and r["errors"] == r["items"]]
    if elapsed <= 0 or not any(r["items"] for r in rows):
        return None, "nothing has run yet", notes
    if elapsed < MIN_ELAPSED:
        return None, (f"the run was too short ({elapsed:.2f} s) to tell what limits "
                      f"it"), notes
    used = sum(r["share"] for r in rows)
    top = max(rows, key=lambda r: r["share"])
    waiting_input = [r for r in rows
                     if r["reads_input"] and r["input_wait"] / elapsed >= WAIT_LIMIT]
    # Busy workers come first: while they are, a full buffer is work in
    # flight as much as results waiting, so room_wait does not tell.
    if used >= BUSY_LIMIT:
        return top["name"], (
            f"the work of {kind} {top['name']}: it holds {top['share']:.0%} of the "
            f"workers' time (all {kind}s: {used:.0%}). Add workers (worker_num, or "
            f"hosts with worker_remote); CPU-bound Python code needs process workers, "
            f"not threads."), notes
    if room_wait / elapsed >= WAIT_LIMIT:
        return "consumer", (
            f"the consumer: results waited for it {room_wait / elapsed:.0%} of the time "
            f"(workers busy {used:.0%}). Read the results faster, from more threads, or "
            f"move the consumer's work into a {kind} of its own; a larger buffer only "
            f"delays the wait."), notes
    if waiting_input:
        slow = max(waiting_input, key=lambda r: r["input_wait"])
        return "input", (
            f"the input of {kind} {slow['name']}: the Feeder spent "
            f"{slow['input_wait'] / elapsed:.0%} of the time inside its next() "
            f"(workers busy {used:.0%}). Make the input faster or produce it in "
            f"parallel (e.g. as a {kind} of its own); more workers will not help."), notes
    outputs = [r for r in rows if r["output"]]
    if outputs and all(r["result_wait"] / elapsed < CONSUMER_WAITED for r in outputs):
        return "consumer", (
            f"the consumer: it found results ready nearly every time it asked, and "
            f"the workers were busy only {used:.0%} of the time. Read the results "
            f"faster, from more threads, or move the consumer's work into a {kind} "
            f"of its own."), notes
    cheap = [r for r in rows if r["tasklet"] is not None and r["tasklet"] < CHEAP_TASKLET]
    if adaptive:
        remedy = ("batches are sized adaptively already: the tasklets may be too short "
                  "for the messaging, or the run too short to fill the pool")
    else:
        remedy = ("leave stride, buffer and chunksize unset (adaptive), or raise "
                  "chunksize, so each message carries more work")
    if cheap:
        remedy += f"; {kind} {cheap[0]['name']} takes {_secs(cheap[0]['tasklet'])} a " \
                  f"tasklet: it may be cheaper to run inline"
    return "overhead", (
        f"overhead: the workers were busy only {used:.0%} of the time and nothing "
        f"waited long on the input or the consumer. {remedy[0].upper()}{remedy[1:]}."), notes


def placement_note(name: str, t: Any) -> str:
    """Where task ``name`` (its :class:`~imap.run.status.TaskStatus` ``t``, of a
    task with a functional dependency) may run, as a report's note."""
    where = ", ".join(t.may_run or ()) or "no live worker"
    note = f"{name} needs {t.dependency}: it may run on {where}"
    if t.refused:
        note += "; refused by " + "; ".join(f"{w} ({why})" for w, why in t.refused.items())
    return note


def report(status: Any, workers: int, adaptive: bool = True) -> Report:
    """The :class:`Report` of an :class:`~imap.run.status.IMapStatus` of an IMap
    of ``workers`` workers (``adaptive``: its stride and batches are)."""
    workers = max(workers, 1)
    pool = status.elapsed * workers
    rows = [task_row(f"{t.task} ({t.name})", t, pool) for t in status.tasks]
    bottleneck, verdict, notes = judge(rows, status.elapsed, workers, status.room_wait,
                                       adaptive=adaptive)
    notes += [placement_note(f"{t.task} ({t.name})", t) for t in status.tasks
              if t.dependency is not None]
    notes += [f"task {t.task} ({t.name}): {t.replayed} results replayed from the journal, "
              f"{t.consumed} computed" for t in status.tasks if t.replayed]
    return Report(rows=rows, elapsed=status.elapsed, workers=workers,
                  room_wait=status.room_wait, bottleneck=bottleneck, verdict=verdict,
                  notes=notes)
