"""Every decision of what to draw, when, and where it runs.

* :mod:`.policy` — :class:`FlowPolicy`: the stride, batch size and buffer
  bound in force, from what the engine measures (adaptive flow).
* :mod:`.draw` — whether a task's turn draws now, and how much (the
  impatient weave of one chain), and what is left to draw.
* :mod:`.dispatch` — :class:`Dispatcher`: which worker a batch is bound to,
  as late as the flow allows, and taking back a batch that has not started.
* :mod:`.plan` — :func:`~.plan.plan`: what a run keeps from its start
  (impatient turns, which queued batch goes first, joining queued batches,
  prefetch), decided once when the IMap starts.
* :mod:`.waits` — what a consumer's wait decides: a result late of itself
  (skip), a stall relieved, raised or a buffer stretched.
* :mod:`.recover` — what runs again after a worker died holding a batch
  (careful reruns, halves, retries) and what fails.

The engine (``run/engine.py``), the Feeder (``run/feeder.py``), the IMap
(``core.py``) and the backends ask these modules; they decide nothing of
this themselves. A new flow rule goes here.
"""

from .policy import (
    BOUND_TURNS,
    DEFAULT_BUFFER_BYTES,
    MAX_ALIVE,
    MAX_BATCH,
    MAX_BATCH_WORK,
    RAMP_FAST,
    TAIL_SHARES,
    FlowPolicy,
    TaskFlow,
)

__all__ = ["BOUND_TURNS", "DEFAULT_BUFFER_BYTES", "MAX_ALIVE", "MAX_BATCH", "MAX_BATCH_WORK",
           "RAMP_FAST", "TAIL_SHARES", "FlowPolicy", "TaskFlow"]
