"""Read-only snapshots of a running IMap (``IMap.status()``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..depends import describe

__all__ = ["IMapStatus", "TaskStatus"]


@dataclass(frozen=True)
class TaskStatus:
    """Counters of one task at the moment ``IMap.status()`` was called.

    Attributes:
        task: the task id (its position in the IMap, from 0).
        name: the task's name (the function name unless given).
        drawn: tasklets drawn from the task's input so far.
        in_flight: tasklets drawn whose result has not arrived yet.
        done: results arrived (values and errors, and the items the
            function dropped by returning :data:`imap.DROP`).
        buffered: results arrived and waiting to be taken.
        consumed: results taken (by ``next()`` or by a chained task).
        errors: results that are errors.
        skipped: results abandoned by a timeout with ``skip=True``.
        dropped: items the function dropped (it returned :data:`imap.DROP`):
            counted in ``done``, never handed out.
        finished: the input is exhausted and every result was taken or skipped.
        busy: seconds the workers spent running this task's tasklets, as
            measured in the workers (the batches delivered so far).
        batch: the batch size in force (tasklets sent to a worker in one
            message).
        tasklet_time: the running mean of one tasklet's time in a worker
            (seconds; None before the first batch came back): what the
            adaptive flow policy sizes batches by.
        mean_time: ``busy`` over the tasklets timed (seconds; None before).
        peak_time: the longest tasklet measured (seconds). Workers time a
            batch in runs of tasklets: the first tasklet alone, then runs
            twice as long while a run takes under about 30 ms; a run counts
            as its mean, so this is exact for a tasklet timed alone and a
            run's mean otherwise.
        rate: results per second over the last few seconds (None before).
        input_wait: seconds the Feeder spent drawing this task's input: in
            the input's ``next()``, or waiting for the results of the task
            it consumes.
        result_wait: seconds consumers waited for this task's results.
        reads_input: the input is an iterable, not another task of this IMap.
        output: no other task of this IMap consumes this one.
        dependency: the function's functional dependency as text
            (``"require('numpy')"``, see :func:`imap.require`), or None.
        may_run: the workers that may run its tasklets now (names; those
            alive that have not refused its dependency), None when it has
            no dependency (every worker may).
        refused: the workers that refused its dependency -> why.
        replayed: with a journal, results of this output handed out from
            the journal (not computed by this run; ``consumed`` counts
            those computed).
    """

    task: int
    name: str
    drawn: int
    in_flight: int
    done: int
    buffered: int
    consumed: int
    errors: int
    skipped: int
    finished: bool
    dropped: int = 0
    busy: float = 0.0
    batch: int = 1
    tasklet_time: float | None = None
    mean_time: float | None = None
    peak_time: float = 0.0
    rate: float | None = None
    input_wait: float = 0.0
    result_wait: float = 0.0
    reads_input: bool = True
    output: bool = True
    dependency: str | None = None
    may_run: tuple[str, ...] | None = None
    refused: dict = field(default_factory=dict)
    replayed: int = 0


@dataclass(frozen=True)
class IMapStatus:
    """A snapshot of an IMap: its pool, its buffer and its tasks.

    Attributes:
        started: ``start()`` was called and the IMap is not stopped.
        stopped: the IMap was stopped (it may be restarted with new tasks).
        workers: workers alive now.
        workers_lost: workers that died and were replaced since start.
        slots_used: buffer slots held now (tasklets drawn, results not taken).
        buffer: the bound in force: the most slots that may be held now (the
            buffer given, or the adaptive bound).
        high_water: the most slots ever held at once since start. It never
            exceeded the bound in force at that moment; an adaptive bound
            moves, so it may exceed ``buffer`` (the bound now).
        tasks: one :class:`TaskStatus` per task.
        stride: the stride in force (the stride given, or this turn's).
        bytes_alive: an estimate of the bytes the tasklets alive hold (their
            pickled items and results, two copies each), from the sizes
            measured; 0 when not measured (thread workers).
        elapsed: seconds since ``start()`` (until ``stop()``).
        room_wait: seconds the Feeder waited for buffer room, i.e. results
            waited for a consumer to take them.
    """

    started: bool
    stopped: bool
    workers: int
    workers_lost: int
    slots_used: int
    buffer: int
    high_water: int
    tasks: list[TaskStatus] = field(default_factory=list)
    stride: int = 1
    bytes_alive: int = 0
    elapsed: float = 0.0
    room_wait: float = 0.0


def snapshot(engine: Any) -> IMapStatus:
    """The counters of ``engine`` (an :class:`~imap.run.engine.Engine`) now,
    read under its lock."""
    now = time.perf_counter()
    with engine.lock:
        tasks = [_task_status(engine, t, now) for t in engine.tasks]
        backend = engine.backend
        return IMapStatus(
            started=engine.started, stopped=engine.stopped,
            workers=backend.alive if backend is not None and engine.started else 0,
            workers_lost=backend.workers_lost if backend is not None else 0,
            slots_used=engine.slots_used, buffer=engine.buffer,
            high_water=engine.high_water, tasks=tasks,
            stride=engine.policy.stride, bytes_alive=engine.policy.bytes_alive(
                engine.tasks, engine.slots_used),
            elapsed=engine.run.elapsed(now), room_wait=engine.run.room_wait,
        )


def _task_status(engine: Any, t: Any, now: float) -> TaskStatus:
    stats = t.stats
    dependency = describe(t.func)
    may_run, refused = None, {}
    if dependency is not None and engine.backend is not None and engine.started:
        names, refused = engine.backend.may_run(t)
        may_run = tuple(names)
    done = t.results.arrived
    run = engine.run
    return TaskStatus(
        task=t.id, name=t.name, drawn=t.drawn, in_flight=t.in_flight,
        done=done, buffered=len(t.results) + len(t.handout),
        consumed=t.results.taken - len(t.handout), errors=t.errors,
        skipped=t.results.nskipped, finished=t.finished(),
        dropped=t.results.ndropped,
        busy=stats.busy,
        batch=t.flow.batch if t.flow else 1,
        tasklet_time=t.flow.tasklet if t.flow else None,
        mean_time=stats.busy / stats.timed if stats.timed else None,
        peak_time=stats.peak,
        rate=stats.rate(done, run.ended or now, run.started),
        input_wait=stats.input_wait, result_wait=stats.result_wait,
        reads_input=t.upstream is None, output=t.consumer is None,
        dependency=dependency, may_run=may_run, refused=refused, replayed=t.replayed,
    )
