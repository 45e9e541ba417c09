"""The decisions a run keeps from start to end, taken once when it starts.

:func:`plan` looks at the options (through the :class:`~.policy.FlowPolicy`)
and the tasks, and returns a :class:`RunPlan`: how the Feeder takes its
turns, which queued batch a backend runs first, how far it may join queued
batches, how many batches a worker holds. It also marks the tasks that
answer tasklet by tasklet. ``IMap.start`` passes the plan on to the engine
and the backend; neither decides these itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import draw

__all__ = ["RunPlan", "plan"]


@dataclass(frozen=True)
class RunPlan:
    """What a run keeps (see the module's text).

    Attributes:
        impatient: the Feeder's turns draw what is ready instead of waiting
            for a whole stride (:mod:`.draw`): stride and buffer adaptive,
            and one output, so every slot ends where the consumer reads.
        depth_order: which queued batch a backend runs first
            (:func:`.dispatch.take_next`): 1, the latest task's (items
            finish their chain sooner) when the flow is adaptive; 0, the
            oldest, under a fixed stride (the order the user tuned for).
        group_limit: ``limit(task)``, the most tasklets of a task one
            message may carry now (a backend joins queued batches up to
            it); None when the batch size is fixed.
        prefetch: the batches a worker holds (one running, one queued).
    """

    impatient: bool
    depth_order: int
    group_limit: Callable[[Any], int] | None
    prefetch: int


def plan(policy: Any, tasks: list, skip: bool) -> RunPlan:
    """The plan of a run of ``tasks`` under ``policy`` (``skip``: the
    IMap's option). With ``skip``, a task with a timeout answers tasklet
    by tasklet and travels one tasklet a batch, so that no batch-mate of a
    hung tasklet waits for its worker to be given up on."""
    for task in tasks:
        task.each_result = skip and task.timeout is not None
    policy.isolate_tasklets(skip)
    outputs = sum(1 for task in tasks if task.consumer is None)
    grouped = policy.adaptive and policy.fixed_chunk is None
    return RunPlan(
        impatient=policy.adaptive and policy.fixed_buffer is None and outputs == 1,
        depth_order=1 if policy.adaptive else 0,
        group_limit=draw.group_limit(policy, tasks) if grouped else None,
        prefetch=policy.prefetch,
    )
