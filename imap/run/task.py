"""One task of an IMap: its function, its input and its results.

A :class:`Task` is the engine's record of a task (``IMap.add_task``); the
Feeder, the backends and the consumers read and update it under the
engine's lock (``engine.py``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any

from ..transport import pickling
from .results import ResultBuffer
from .stats import TaskStats

_NO_PAYLOAD = object()


class Task:
    """One task: a function, its input and its results."""

    def __init__(self, id: int, generation: int, func: Callable, args: tuple,
                 kwargs: dict, name: str, timeout: float | None, block: bool,
                 track: bool, retries: int, ordered: bool) -> None:
        self.id = id
        self.generation = generation      # the IMap run this task belongs to
        self.key = (generation, id)       # names the task to workers
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.name = name
        self.timeout = timeout
        # Its results are due one by one (skip=True and a timeout: a result
        # held back behind a hung batch-mate would be given up with it).
        self.each_result = False
        self.block = block
        self.track = track
        self.retries = retries
        self.retry_on: tuple = ()   # exception classes whose tasklets run again (imap.retry)
        self.placement: dict = {}   # where an executor may run it (Dask annotations)
        self.iterable: Any = None                # the input as given
        self.source: Iterator | None = None   # iterator drawn by the Feeder
        self.upstream: Task | None = None   # a task of the same IMap
        self.consumer: Task | None = None   # the task of this IMap that eats this one
        self.results = ResultBuffer(ordered)
        # Results taken from ``results`` in a group by a consumer and handed
        # out one by one without the lock (TaskIterator.__next__). Their
        # slots are given back at the consumer's next visit under the lock.
        self.handout: collections.deque = collections.deque()
        self.handout_taken = 0   # results ever moved into the handout
        self.handout_freed = 0   # of those, slots given back
        self.drawn = 0
        self.in_flight = 0
        self.errors = 0
        self.flow: Any = None  # the flow policy's record (flow.TaskFlow)
        self.stats = TaskStats()  # timing counters (imap.run.stats)
        self.exhausted = False
        # With a journal (imap.journal): the key function of a source task's
        # inputs, an output task's OutputLog and its results replayed.
        self.journal_key: Callable[[Any], Any] | None = None
        self.output_log: Any = None
        self.replayed = 0
        self._payload: Any = _NO_PAYLOAD
        self._local: Any = _NO_PAYLOAD

    def payload(self) -> tuple[bytes | None, BaseException | None]:
        """The function, args and kwargs pickled by value, computed once."""
        if self._payload is _NO_PAYLOAD:
            try:
                self._payload = (pickling.dumps((self.func, self.args, self.kwargs)), None)
            except Exception as exc:
                self._payload = (None, exc)
        return self._payload

    def local_payload(self) -> bytes | None:
        """The function, args and kwargs pickled for a local worker process
        (:func:`pickling.dumps_local`), computed once; None if they do not
        pickle (:meth:`payload` says why)."""
        if self._local is _NO_PAYLOAD:
            try:
                self._local = pickling.dumps_local((self.func, self.args, self.kwargs))
            except Exception:
                self._local = self.payload()[0]
        return self._local

    def finished(self) -> bool:
        return self.exhausted and self.results.exhausted(self.drawn)
