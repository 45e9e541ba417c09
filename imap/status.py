"""Read-only snapshots of a running IMap (``IMap.status()``)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["IMapStatus", "TaskStatus"]


@dataclass(frozen=True)
class TaskStatus:
    """Counters of one task at the moment ``IMap.status()`` was called.

    Attributes:
        task: the task id (its position in the IMap, from 0).
        name: the task's name (the function name unless given).
        drawn: tasklets drawn from the task's input so far.
        in_flight: tasklets drawn whose result has not arrived yet.
        done: results arrived (values and errors).
        buffered: results arrived and waiting to be taken.
        consumed: results taken (by ``next()`` or by a chained task).
        errors: results that are errors.
        skipped: results abandoned by a timeout with ``skip=True``.
        finished: the input is exhausted and every result was taken or skipped.
        busy: seconds the workers spent running this task's tasklets, as
            measured in the workers (the batches delivered so far).
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
    busy: float = 0.0


@dataclass(frozen=True)
class IMapStatus:
    """A snapshot of an IMap: its pool, its buffer and its tasks.

    Attributes:
        started: ``start()`` was called and the IMap is not stopped.
        stopped: the IMap was stopped (it may be restarted with new tasks).
        workers: workers alive now.
        workers_lost: workers that died and were replaced since start.
        slots_used: buffer slots held now (tasklets drawn, results not taken).
        buffer: the buffer size (the most slots that may be held).
        high_water: the most slots ever held at once since start.
        tasks: one :class:`TaskStatus` per task.
    """

    started: bool
    stopped: bool
    workers: int
    workers_lost: int
    slots_used: int
    buffer: int
    high_water: int
    tasks: list[TaskStatus] = field(default_factory=list)
