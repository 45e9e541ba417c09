"""What a consumer's wait decides: a result that is late of itself, a run
that stalled, and what to do about either.

The engine's :meth:`~imap.run.engine.Engine.take` and ``pull_upstream``
call these with the engine's lock held, each time before they wait; they do
what these functions say and decide nothing of it themselves:

* :func:`not_late_yet` — under ``skip=True``, whether the result waited for
  is late of itself (its tasklet ran for the whole timeout) or only behind
  others, and :func:`give_up_overdue` for tasklets that outlived their
  task's timeout;
* :func:`stalled` — nothing can change until somebody takes a result;
* :func:`before_wait` — the choice, for a waiting consumer, between
  relieving a stall (more buffer, within the byte budget), raising
  :class:`~imap.StallError` after ``stall_grace``; and
  :func:`stretch_if_starved`, stretching the buffer for a Feeder that starves.
"""

from __future__ import annotations

from typing import Any

from ..errors import StallError
from . import draw
from .policy import LOOK_AGAIN


def not_late_yet(engine: Any, task: Any, timeout: float, now: float) -> float | None:
    """Whether the result of ``task`` a consumer has waited ``timeout``
    seconds for is late of itself: None if it is (its tasklet ran for
    ``timeout`` seconds, or the backend cannot tell, or its item is not
    drawn yet), else when to look again. A tasklet still waiting behind
    others is not late: it is never skipped for the time a hung one took,
    and tasklets that outlived their task's timeout are given up meanwhile
    (:func:`give_up_overdue`), so that it gets a worker."""
    index = task.results.awaited_index(task.drawn)
    backend = engine.backend
    if index >= task.drawn or backend is None:
        return None   # (not drawn yet: the timeout is raised, nothing skipped)
    began = backend.began(task, index)
    if began is None:
        give_up_overdue(engine, now)
        return now + max(0.01, min(timeout, LOOK_AGAIN))   # a wait, even for timeout=0
    if now - began < timeout:
        return began + timeout
    return None


def give_up_overdue(engine: Any, now: float) -> None:
    """Abandon every tasklet running longer than its task's timeout: its
    worker is replaced, its result is a TimeoutError, and the tasklets
    behind it run elsewhere."""
    for task, index, began in engine.backend.running_tasklets():
        if (task.generation == engine.generation and task.timeout is not None
                and now - began > task.timeout):
            engine.backend.abandon(task, index)   # its result: a TimeoutError, filed


def stalled(engine: Any) -> bool:
    """Nothing can change until somebody takes a result."""
    if engine.in_flight or engine.forced:
        return False
    if engine.feeder_waits_any is not None:
        return not draw.work_ready(engine, engine.feeder_waits_any)
    if engine.feeder_waits_slot:
        return engine.slots_used >= engine.buffer
    up = engine.feeder_waits_on
    if up is None:
        return False
    return not up.results.has_next() and not up.finished()


def before_wait(engine: Any, task: Any, now: float, stalled_since: float | None,
                wait: float | None) -> tuple[float | None, float | None]:
    """A consumer of ``task`` is about to wait (at most ``wait`` seconds,
    None: no limit): relieve a stall if the flow can, else raise
    :class:`~imap.StallError` once it lasted ``stall_grace``. Returns
    ``(stalled_since, wait)`` for the wait."""
    if stalled(engine) and engine.policy.can_relieve(engine.tasks):
        # Other outputs' results, not read yet, hold every slot: they wait
        # here, within the byte budget, rather than stall.
        engine.buffer = engine.policy.relieve(engine.tasks, engine.slots_used)
        engine.slot_free.notify_all()
        stalled_since = None
    elif stalled(engine):
        if stalled_since is None:
            stalled_since = now
        if engine.stall_grace is not None:
            left = stalled_since + engine.stall_grace - now
            if left <= 0:
                raise StallError(stall_message(engine, task))
            wait = left if wait is None else min(wait, left)
    else:
        stalled_since = None
    return stalled_since, wait


def stretch_if_starved(engine: Any) -> None:
    """A consumer waits (counted in ``consumers_waiting``) while the Feeder
    waits for a slot it cannot get: stretch the buffer (see
    :func:`imap.flow.draw.starved`)."""
    if engine.feeder_waits_slot and draw.starved(engine):
        engine.buffer = engine.policy.stretch(engine.tasks, engine.slots_used)
        engine.slot_free.notify()


def stall_message(engine: Any, task: Any) -> str:
    """Why ``task`` can never produce its next result, and what to do."""
    holders = [t for t in engine.tasks if len(t.results) and t is not task]
    names = ", ".join(f"task {t.id} ({t.name}: {len(t.results)} waiting)" for t in holders)
    return (
        f"task {task.id} ({task.name}) can never produce its next result: all "
        f"{engine.buffer} buffer slots hold results nobody has taken and nothing is "
        f"being computed. Take results from {names or 'the other tasks'} first "
        f"(at most a stride at a time from each output, in task order), or give "
        f"the IMap a larger buffer."
    )
