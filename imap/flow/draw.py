"""What the Feeder draws, and when: the rules of an *impatient* weave.

With stride and buffer both adaptive and one output, the Feeder's turns draw
what is ready instead of waiting for a whole stride (see
``Feeder._stride``). These functions decide, for such a turn, whether a task
draws at all and how much; the engine's wait for work asks the same
questions (:func:`work_ready`), so the Feeder can neither spin nor sleep
through work. They read the engine's counters without its lock (hints,
checked again at every turn) unless said otherwise. Nothing else in the
engine decides these.
"""

from __future__ import annotations

import operator
from typing import Any

AHEAD = 1  # strides an impatient task may run ahead of the task consuming it
FLUSH_AFTER = 0.005  # seconds inside a generic input's next() before drawn items are sent
# Batches per worker (of the task's batch size in force) that an impatient
# task may have in flight: twice what the workers hold (PREFETCH each), so a
# batch is always queued for a worker that frees a place.
FLOOD_BATCHES = 4


def flooded(engine: Any, task: Any) -> bool:
    """Whether an impatient ``task`` has ``FLOOD_BATCHES`` batches per worker
    of its batch size in force in flight: it draws more once some come
    back (and say how large its batches can be). Without it a task whose
    batch size is still small -- its first batches waiting, unmeasured,
    behind large batches of an earlier stage on a busy machine -- cut a
    whole stride of upstream results into one-tasklet messages (measured:
    8 000 of them, 20 s to get through a chain of 0.2 s). Not for a task
    with a timeout: tasklets given up under ``skip`` must not hold its
    draws back."""
    if not engine.impatient or task.timeout is not None or engine.draw_stop:
        return False
    return task.in_flight >= FLOOD_BATCHES * engine.policy.workers * task.flow.batch

# Iterators over builtin containers never block: they are drawn in bulk.
PLAIN_SOURCES = frozenset(type(iter(x)) for x in (
    [], (), range(0), "", b"", bytearray(), {}, {}.values(), {}.items(), set(), frozenset(),
))


def patient(engine: Any, task: Any) -> bool:
    """Whether ``task``'s turns wait for a whole stride.

    Turns are impatient only for one chain with one output, with stride
    and buffer both adaptive: there every slot ends at the one output,
    so drawing what is ready can never fill the buffer with results
    that the consumer does not read next. With several outputs read in
    turn, the weave keeps the draws in step with the reads (a fixed
    stride or buffer is obeyed the same way). An upstream whose
    timed-out results are skipped needs a waiting turn to notice.
    """
    if not engine.impatient:
        return True
    up = task.upstream
    return up is not None and engine.skip and up.timeout is not None


def ahead(engine: Any, task: Any) -> bool:
    """Whether an impatient ``task`` is far enough ahead of the task of
    this IMap that consumes it to skip its turn: ``AHEAD`` strides of
    its tasklets are in flight or wait to be drawn. (Read without the
    lock: a hint, checked again at every turn.)

    Never in the *tail* of a run, once every input has ended: then the
    tasklets with the most stages left go first (the backend runs the
    batches of earlier tasks first), so the last items do not go
    through the chain one stage after another while workers idle.
    """
    if task.consumer is None or engine.tail:
        return False
    room = warm_room(engine, task)
    if room is not None:
        return room <= 0
    return task.in_flight + len(task.results) >= AHEAD * engine.policy.stride


def warm_room(engine: Any, task: Any) -> int | None:
    """How many more tasklets the source ``task`` of an impatient chain
    may draw while the chain warms up (None: no such limit).

    Until the output has delivered a batch (the policy's ``growing``),
    the chain holds at most one tasklet per worker: a worker that ends a
    stage finds nothing queued before the next stage of its item, so the
    first result takes the chain's stage times and nothing more, instead
    of waiting at every stage behind batches of earlier stages that a
    worker already holds. (Read without the lock, like :func:`ahead`.)
    """
    if (engine.policy.growing or not engine.impatient or engine.tail
            or task.upstream is not None or task.consumer is None):
        return None
    inside = engine.in_flight + sum(len(t.results) for t in engine.tasks
                                  if t.consumer is not None)
    return max(0, engine.policy.workers - inside)


def short_of_room(engine: Any, task: Any) -> bool:
    """Whether the source ``task`` of an impatient chain waits for more
    free slots before it draws: fewer than a batch (its ``flow.draw``)
    are free while the backend holds more than a batch for every
    worker. Drawing then would send a fragment, a message for a few
    tasklets that no worker is waiting for (each costs the parent and
    the workers a round of wake-ups); the batches in flight free the
    rest of the room before any worker runs dry. Not while the chain
    warms up (see :func:`warm_room`). (Read without the lock by the
    Feeder, under it by ``Engine.wait_for_work``, the same test.)
    """
    if not engine.impatient or not engine.policy.growing or task.upstream is not None:
        return False
    batch = task.flow.draw
    free = engine.buffer - engine.slots_used
    return 0 < free < batch and engine.in_flight >= (engine.policy.workers + 1) * batch


def work_ready(engine: Any, active: list) -> bool:
    """Some task of ``active`` can draw (lock held)."""
    for task in active:
        up = task.upstream
        if up is None:
            if engine.draw_stop or (engine.slots_used < engine.buffer
                                    and not ahead(engine, task)
                                    and not short_of_room(engine, task)
                                    and not flooded(engine, task)):
                return True
        elif flooded(engine, task):
            continue
        elif up.finished() or (up.results.has_next() and not ahead(engine, task)):
            return True
    return False


def starved(engine: Any) -> bool:
    """Whether the adaptive bound should stretch (lock held): an impatient
    chain has every slot taken, a consumer waits for its next result, and
    fewer tasklets are in flight than a batch for every worker. The slots
    are then held by results that wait behind a slower one (in order), and
    workers would idle for want of room: a heavy tail of slow tasklets
    costs no more than the slow tasklets themselves. The byte budget and
    ``MAX_ALIVE`` still cap the bound (``FlowPolicy.stretch``)."""
    if not engine.impatient or engine.draw_stop or not engine.consumers_waiting:
        return False
    if engine.slots_used < engine.buffer:
        return False
    policy = engine.policy
    widest = max((t.flow.batch for t in engine.tasks), default=1)
    return engine.in_flight < policy.workers * widest and policy.can_stretch(engine.tasks)


def left(task: Any) -> int | None:
    """How many tasklets of ``task`` remain to be drawn, if that is
    known: the length left of a plain input; for a chained task, what
    its upstream task holds (in flight or waiting to be drawn) and has
    left to draw. Read without the lock: a hint for the batch size."""
    up = task.upstream
    if up is None:
        source = task.source
        if type(source) in PLAIN_SOURCES:
            return operator.length_hint(source)
        return None
    upstream_left = 0 if up.exhausted else left(up)
    if upstream_left is None:
        return None
    return upstream_left + up.in_flight + len(up.results)


def work_left(tasks: list) -> float | None:
    """The seconds of work left to draw for every task of ``tasks``
    (their tasklets left, each at its task's mean tasklet time), if
    every one of them is known; None otherwise. A hint, read without
    the lock."""
    total = 0.0
    for task in tasks:
        count = left(task)
        tasklet = task.flow.tasklet if task.flow is not None else None
        if count is None or tasklet is None:
            return None
        total += count * tasklet
    return total


def group_limit(policy: Any, tasks: list) -> Any:
    """``limit(task)``: the most tasklets of ``task`` that may go out in one
    message now: the batch size a draw made now would have, tail share
    included (a backend that queues batches joins queued ones up to it).
    Holds the policy and the task list, not the IMap, so a dropped running
    IMap is still collected."""
    return lambda task: policy.batch_for(task, left(task), work_left(tasks))
