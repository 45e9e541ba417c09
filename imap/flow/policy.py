"""Adaptive flow: the stride, batch size and buffer bound in force.

:class:`FlowPolicy` is the one place that decides, while an IMap runs, how
many tasklets of a task the Feeder draws per turn (the *stride*), how many
contiguous tasklets travel to a worker in one message (the *batch*), and the
most tasklets that may be alive at once (the *bound*, the buffer in force).
The Feeder asks it at every turn; the engine tells it what each delivered
batch measured. Nothing else decides these.

What it measures (``observe``, once per batch, under the engine's lock):

* the time the batch took in the worker (``busy``, measured by the batch
  kernel), giving a running mean **tasklet time** per task;
* the **messaging cost**: the time from sending a batch to its results being
  filed, less the worker's busy time. Its smallest recent value is taken as
  the cost of one round trip (a larger one is a batch that waited behind
  another);
* the **bytes** a tasklet costs (its pickled item and result; process and
  remote workers only), giving a count of tasklets that fits the byte budget.

What it decides, when ``stride``, ``buffer`` and ``chunksize`` are unset:

* **batch** = enough tasklets for ``RTT_FACTOR`` round trips of work (at
  least ``MIN_BATCH_WORK`` seconds, at most ``MAX_BATCH_WORK`` so that load
  stays balanced; a backend with costly messages, such as Dask, sets a
  higher cap), between 1 and ``MAX_BATCH``, and within the byte budget's
  share (a turn of every task that fits the budget gives every worker one
  batch: no message outgrows it). Every task starts at 1 tasklet,
  and stays there until a task that nobody consumes (an output) has
  delivered a batch: the first result does not wait, at any stage of a
  chain, behind a large batch of an earlier stage. Then a delivered batch
  lets the batch grow to twice its own size, or ``RAMP_FAST`` times while
  its work took less time than its round trip (it is all messaging then,
  and a large factor risks little: the batch is still far below its
  target). Growth starts from the batch measured, compounding from the
  size in force only while the grown batch's measured work stays within a
  round trip: small batches answered together never vouch for a large one
  (two cheap warm-up items once grew the batch to 64 tasklets of 2 ms);
  a task whose tasklets get slower gets smaller batches at once; a task
  with a ``timeout`` gets batches of at most ``TIMEOUT_SHARE`` of it in
  work (a result never times out for waiting behind its batch-mates). Near the
  end of a task's input, once the number of tasklets left is known (a
  ``range`` or container input, or an upstream task that has drawn all its
  input), a batch holds at most a ``1 / (TAIL_SHARES * workers)`` share of
  them (but at least a round trip of work): every worker gets a part of
  the tail instead of one worker running it while the others idle. Once
  every task's tasklet time is measured and every task's count left is
  known, the share is one of the work left to the whole run (the tasklets
  left of every task, each at its task's tasklet time), a tasklet counting
  the time it takes from its task to the output: in a chain, the batches
  of an early task stay whole while the later tasks have work for every
  worker, and only the run's last work is cut.
* **stride** = the largest batch of any task times the number of workers:
  one turn gives every worker a batch. The stride is the same for every task
  in a turn, as with a fixed stride, so chained tasks keep pace. The batch
  of a turn's draw (the tail cut included) is kept as the task's ``draw``:
  the engine's source of a chain waits for that many free slots while the
  workers have work enough (``flow.draw.short_of_room``).
* **bound** = ``BOUND_TURNS`` turns of every task (each worker has a batch
  running and one queued, and the consumer has one to take), at most
  ``MAX_ALIVE`` tasklets and at most what fits in ``buffer_bytes``, counting
  two copies (object and pickle) of each item and result. It never drops
  below the slots already in use (so ``high_water`` never exceeds it) nor
  below one stride per task.

* **prefetch** = the batches a worker may hold, ``PREFETCH`` (one running,
  one queued): the backends' dispatchers bind no more than that to a worker
  (:mod:`.dispatch`).

Anything set explicitly is obeyed exactly: a given ``stride`` fixes the
stride (and, unless given, ``buffer = stride * tasks`` and ``chunksize =
stride // (2 * workers)``, as before); a given ``buffer`` is the bound; a
given ``chunksize`` is the batch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FlowPolicy"]

MAX_BATCH = 4096          # tasklets in one message
MIN_BATCH_WORK = 0.002    # seconds of work per batch, at least (once measured)
# ... at most: the most one worker may lag behind the others. Each message
# costs the workers more than its round trip shows (the parent's threads
# wake for every batch on the same CPUs): 2 ms tasklets on 2 CPUs ran at
# ~0.95 of one message per worker at a cap of 20 ms, ~0.98 at 50 ms, with no
# loss on tasklets of 0.1-10 ms (the tail is cut into shares regardless).
MAX_BATCH_WORK = 0.05
RTT_FACTOR = 50           # a batch holds this many round trips of work: messaging <= 2 %
BOUND_TURNS = 3           # the bound holds this many turns of every task
MAX_ALIVE = 1 << 16       # tasklets alive at once, at most
# ... while a consumer waits on one output and the results of others fill the
# buffer (several outputs read one after the other): the bound may then grow
# to this, within the byte budget (FlowPolicy.relieve).
MAX_HELD = 1 << 21
SLOT_BYTES = 96           # what a slot costs besides its items (objects, bookkeeping)
COPIES = 2                # an item or result is alive as an object and as a pickle
TAIL_SHARES = 2           # the tail of an input is cut in this many batches per worker, at least
RAMP_FAST = 8             # growth per delivered batch while a batch's work is below a round trip
TIMEOUT_SHARE = 0.25      # of a task's timeout, the most work one of its batches holds
# Batches a worker holds: one running and one queued, so that it never waits
# a round trip; more would only bind work early (late binding takes back a
# queued batch that has not started, but the fewer there are the less is
# taken back).
PREFETCH = 2
EWMA = 0.3                # weight of the newest measurement in the running means
PEAK_DECAY = 0.998        # a task's longest tasklet is forgotten this much per batch
DEFAULT_BUFFER_BYTES = 24 << 20
# Under skip=True: seconds a worker may go on running a batch that holds an
# abandoned tasklet before it is replaced, so that the items behind it run;
# and seconds between looks at a result that waits behind other tasklets.
GIVE_UP_AFTER = 1.0
LOOK_AGAIN = 0.25


class TaskFlow:
    """What the policy knows and chose for one task."""

    __slots__ = ("batch", "draw", "tasklet", "size", "peak", "fast")

    def __init__(self) -> None:
        self.batch = 1                     # the batch size in force
        self.draw = 1                      # ... of the Feeder's current stride (tail cut)
        self.tasklet: float | None = None  # mean seconds per tasklet in a worker
        self.size: float | None = None     # mean pickled bytes per tasklet (item + result)
        self.peak: float | None = None     # the longest tasklet lately (seconds; decays)
        self.fast: float | None = None     # the fastest batch's mean tasklet lately (rises)


def _path(task: Any) -> float | None:
    """Seconds a tasklet of ``task`` takes from there to the output: its
    tasklet time and that of each task after it (None if one is unknown)."""
    total = 0.0
    while task is not None:
        tasklet = task.flow.tasklet if task.flow is not None else None
        if not tasklet:
            return None
        total += tasklet
        task = task.consumer
    return total


class FlowPolicy:
    """Chooses stride, batch and bound (see the module docstring).

    Args:
        stride, buffer, chunksize: the IMap's options (None: adaptive).
        buffer_bytes: the byte budget of an adaptive bound (None: no budget).
        workers: the IMap's workers (local and remote).
    """

    def __init__(self, stride: int | None, buffer: int | None, chunksize: int | None,
                 buffer_bytes: int | None, workers: int) -> None:
        self.fixed_stride = stride
        self.fixed_buffer = buffer
        self.fixed_chunk = chunksize
        self.buffer_bytes = buffer_bytes
        self.workers = max(1, workers)
        self.adaptive = stride is None
        self.rtt: float | None = None      # seconds of one round trip, as measured
        self.max_work = MAX_BATCH_WORK     # the backend's cap on a batch's work (seconds)
        self.growing = False               # an output task has delivered: batches may grow
        self.stride = 1
        self.bound = 1
        self.prefetch = PREFETCH           # batches a worker may hold
        # skip=True on workers that cannot be given up on (an executor's):
        # a task with a timeout sends its tasklets one by one, so that a hung
        # one holds no other behind it in its batch.
        self.isolate_timeouts = False
        self._want = 1
        self._extra = 0                    # stretched by starved turns (see stretch)
        self._cap = MAX_ALIVE              # raised by relieve
        self._most: int | None = None      # the largest batch the byte budget allows

    # -- the numbers an IMap shows (its properties), before a run or in it ----------------

    def fixed_batch(self) -> int | None:
        """The batch every task keeps: the chunksize given, or the one that
        follows from a fixed stride (half a stride per worker); None when
        batches are adaptive."""
        if self.fixed_chunk is not None:
            return self.fixed_chunk
        if not self.adaptive:
            return max(1, self.fixed_stride // (2 * self.workers))
        return None

    def stride_now(self, running: bool) -> int:
        """The stride given, or the adaptive one in force (before a run: the first)."""
        if not self.adaptive:
            return self.fixed_stride
        return self.stride if running else self.workers

    def max_stride(self) -> int:
        """The largest stride there can be (the stride given, if fixed)."""
        return self.fixed_stride if not self.adaptive else MAX_BATCH * self.workers

    def bound_now(self, running: bool, tasks: int) -> int:
        """The buffer given, or the bound in force (before a run: the first
        one, for ``tasks`` tasks)."""
        if self.fixed_buffer is not None:
            return self.fixed_buffer
        if running:
            return max(1, self.bound)
        tasks = max(1, tasks)
        if self.adaptive:
            return self.workers * tasks * BOUND_TURNS
        return self.fixed_stride * tasks

    # -- at start ------------------------------------------------------------------------

    def start(self, tasks: list) -> None:
        """Reset for a run of ``tasks`` and choose the first stride and bound."""
        batch = self.fixed_batch()
        for task in tasks:
            task.flow = TaskFlow()
            if batch is not None:
                task.flow.batch = batch
        self.rtt = None
        self.bound = 0
        self._extra = 0
        self._cap = MAX_ALIVE
        self.growing = False
        self._most = None
        self.turn(tasks, slots_used=0)

    def fit_backend(self, alive: int | None, batch_work: float | None) -> None:
        """The backend started: ``alive``, the workers it found (an
        executor's cluster, whose size is known only now; None: as
        configured), and ``batch_work``, its cap on a batch's seconds of
        work (None: ``MAX_BATCH_WORK``; Dask's messages cost more)."""
        if alive is not None:
            self.workers = max(1, alive)
        self.max_work = batch_work or MAX_BATCH_WORK

    # -- every turn (the Feeder, under the engine's lock) ----------------------------------

    def turn(self, tasks: list, slots_used: int) -> int:
        """Choose this turn's stride and the bound in force; return the stride."""
        n = max(1, len(tasks))
        if not self.adaptive:
            self.stride = self.fixed_stride
            self.bound = self.fixed_buffer or self.stride * n
            return self.stride
        widest = max((t.flow.batch for t in tasks), default=1)
        want = widest * self.workers
        if self.fixed_buffer:
            self.bound = self.fixed_buffer
        else:
            self._want = max(want * n * BOUND_TURNS, want * n + self._hold(tasks)) + self._extra
            self.rebound(tasks, slots_used)
        self.stride = max(1, min(want, self.bound // n))
        self._most = None
        budget = None if self.fixed_buffer else self._budget_tasklets(tasks)
        if self.fixed_chunk is None and budget is not None:
            # The byte budget caps the batches too: a turn of every task
            # within it still gives every worker a batch, and no message (a
            # batch, or batches that go out together) outgrows its share.
            self._most = max(1, budget // (n * self.workers))
            for task in tasks:
                task.flow.batch = min(task.flow.batch, self._most)
        return self.stride

    def _hold(self, tasks: list) -> int:
        """Tasklets the other workers end while one runs a task's longest
        tasklet: results that wait behind it (in order) or its batch, and
        that the bound must hold so that no worker waits for room."""
        hold = 0
        for task in tasks:
            flow = task.flow
            if flow.peak and flow.fast:
                hold += int((self.workers - 1 or 1) * flow.peak / flow.fast)
        return hold

    def isolate_tasklets(self, on: bool) -> None:
        """``on`` for ``skip=True``: then a task with a timeout sends its
        tasklets one by one, so that no tasklet waits behind a hung one in
        its batch (until its worker is given up on, a second later, or for
        ever on an executor, whose tasks cannot be stopped from here)."""
        self.isolate_timeouts = on

    def can_stretch(self, tasks: list) -> bool:
        """Whether an adaptive bound may still grow (see :meth:`stretch`)."""
        if not self.adaptive or self.fixed_buffer:
            return False
        return self._adaptive_bound(tasks, self.bound + 1) > self.bound

    def stretch(self, tasks: list, slots_used: int) -> int:
        """Widen the adaptive bound by a turn of every worker (workers idle
        for room while results wait behind a slower one); return the bound
        in force. Kept for the rest of the run, within the byte budget and
        ``MAX_ALIVE``."""
        widest = max((t.flow.batch for t in tasks), default=1)
        self._extra += widest * self.workers
        self._want += widest * self.workers
        return self.rebound(tasks, slots_used)

    def rebound(self, tasks: list, slots_used: int) -> int:
        """Recompute an adaptive bound (sizes may have become known)."""
        if self.adaptive and not self.fixed_buffer:
            # Never below what is in use (the bound in force is never
            # exceeded), and room for at least one stride of every task.
            self.bound = max(self._adaptive_bound(tasks, self._want), slots_used,
                             len(tasks), 1)
        return self.bound

    def can_relieve(self, tasks: list) -> bool:
        """Whether an adaptive bound may grow for a consumer that waits on
        one output while results of others fill it (see :meth:`relieve`)."""
        if not self.adaptive or self.fixed_buffer:
            return False
        cap, self._cap = self._cap, self._held_cap(tasks)
        try:
            return self._adaptive_bound(tasks, self.bound + 1) > self.bound
        finally:
            self._cap = cap

    def _held_cap(self, tasks: list) -> int:
        """MAX_HELD within a measured byte budget; MAX_ALIVE where no size
        is measured (thread workers pickle nothing)."""
        return MAX_ALIVE if self._budget_tasklets(tasks) is None else MAX_HELD

    def relieve(self, tasks: list, slots_used: int) -> int:
        """Widen the adaptive bound by a turn of every worker for a consumer
        that waits on one output while the results of other outputs, not
        read yet, hold every slot (``list(x); list(y)``): the results wait
        here instead of the reader failing with a StallError, as long as
        they fit the byte budget (and ``MAX_HELD`` tasklets). Returns the
        bound in force."""
        self._cap = self._held_cap(tasks)
        return self.stretch(tasks, slots_used)

    def _adaptive_bound(self, tasks: list, want: int) -> int:
        bound = min(want, self._cap)
        budget = self._budget_tasklets(tasks)
        return bound if budget is None else min(bound, budget)

    def _budget_tasklets(self, tasks: list) -> int | None:
        """How many tasklets fit the byte budget (None: no budget, or no
        size measured yet)."""
        sizes = [t.flow.size for t in tasks if t.flow.size]
        if self.buffer_bytes is None or not sizes:
            return None
        # the mean over tasks (a slot moves along a chain), and what a slot
        # itself costs
        per_tasklet = COPIES * sum(sizes) / len(sizes) + SLOT_BYTES
        return int(self.buffer_bytes / per_tasklet)

    def bytes_alive(self, tasks: list, slots_used: int) -> int:
        """An estimate of the bytes ``slots_used`` tasklets hold (0 if unmeasured)."""
        sizes = [t.flow.size for t in tasks if t.flow is not None and t.flow.size]
        if not sizes:
            return 0
        return int(slots_used * COPIES * sum(sizes) / len(sizes))

    def batch_for(self, task: Any, left: int | None, work_left: float | None = None) -> int:
        """The batch size of ``task``'s next stride, ``left`` tasklets of it
        being known to remain (None: unknown), and ``work_left`` seconds of
        work being known to remain for every task of the run (None:
        unknown). An adaptive batch is cut down to a share of the tail (see
        the module docstring)."""
        flow = task.flow
        if self.isolate_timeouts and task.timeout is not None and self.fixed_chunk is None:
            return 1   # a hung tasklet must not hold its batch's others (see start)
        if left is None or self.fixed_chunk is not None or not self.adaptive:
            return flow.batch
        path = _path(task) if work_left is not None else None
        if path:
            # a share of the run's work, a tasklet costing its path to the
            # output: an early task of a chain is not cut while the tasks
            # after it have work for every worker, and the last items of a
            # chain do not go through it in one long batch after another
            share = int(work_left / (TAIL_SHARES * self.workers * path)) + 1
        else:
            share = -(-left // (TAIL_SHARES * self.workers))
        if self.rtt and flow.tasklet:   # ... of at least a round trip of work
            share = max(share, int(self.rtt / flow.tasklet))
        return max(1, min(flow.batch, share))

    # -- every delivered batch (the engine, under its lock) ----------------------------------

    def sent(self, task: Any, n: int, nbytes: int, tasks: list,
             slots_used: int) -> tuple[int, int]:
        """The first batch of ``task`` was pickled: ``nbytes`` for ``n`` items.

        Until a result comes back, a result is taken to be as large as its
        item, so the byte budget holds from the first batch on. Returns the
        bound in force and the stride for the rest of the turn (lowered to
        fit the bound, as at the start of a turn).
        """
        if task.flow.size is None and n:
            task.flow.size = 2 * nbytes / n
        bound = self.rebound(tasks, slots_used)
        if self.adaptive:
            self.stride = max(1, min(self.stride, bound // max(1, len(tasks))))
        return bound, self.stride

    def observe(self, task: Any, n: int, busy: float | None, latency: float | None,
                nbytes: int | None, peak: float | None = None) -> None:
        """A batch of ``n`` tasklets of ``task`` came back (``peak``: its
        longest tasklet's seconds)."""
        flow = task.flow
        if peak is not None:
            flow.peak = peak if flow.peak is None else max(peak, flow.peak * PEAK_DECAY)
        if nbytes:
            per = nbytes / n
            flow.size = per if flow.size is None else flow.size + EWMA * (per - flow.size)
        if busy is None or n <= 0:
            return
        per = busy / n
        flow.tasklet = per if flow.tasklet is None else flow.tasklet + EWMA * (per - flow.tasklet)
        flow.fast = per if flow.fast is None else min(per, flow.fast / PEAK_DECAY)
        if latency is not None:
            cost = max(0.0, latency - busy)
            # The smallest recent cost: a batch that waited behind another costs more.
            self.rtt = cost if self.rtt is None else min(cost, self.rtt * 1.05)
        if task.consumer is None:
            self.growing = True
        if self.fixed_chunk is None and self.adaptive:
            target = self._target(flow.tasklet, task.timeout)
            if target <= flow.batch:
                flow.batch = target
            elif self.growing:
                flow.batch = max(flow.batch, self._grown(flow, n, busy, target))

    def _grown(self, flow: TaskFlow, n: int, busy: float, target: int) -> int:
        """The batch that an answered one of ``n`` tasklets vouches for (module docstring)."""
        if self.rtt is None or busy >= self.rtt:
            grown = 2 * n
        else:
            cheap = int(self.rtt / (RAMP_FAST * flow.tasklet)) if flow.tasklet else n
            grown = RAMP_FAST * max(n, min(flow.batch, cheap))
        grown = min(target, grown)
        return min(grown, self._most or grown)

    def _target(self, tasklet: float, timeout: float | None = None) -> int:
        work = MIN_BATCH_WORK
        if self.rtt is not None:
            work = max(work, RTT_FACTOR * self.rtt)
        work = min(work, self.max_work)
        if timeout:
            # A consumer waits for a result while its batch-mates before it
            # run: no batch holds more than TIMEOUT_SHARE of the task's
            # timeout in work, so batching alone never makes a wait time out.
            work = min(work, timeout * TIMEOUT_SHARE)
        if tasklet <= 0:
            return MAX_BATCH
        return max(1, min(MAX_BATCH, int(work / tasklet)))
