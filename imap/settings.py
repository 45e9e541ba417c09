"""What an :class:`~imap.IMap` shows of its options and its state: read-only
properties (a base class of the IMap).

An IMap's options are fixed when it is made; the numbers that follow from
them (the stride, buffer and chunksize in force) are the flow policy's
(:class:`imap.flow.FlowPolicy`), read here, never derived here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Settings:
    """The read-only properties of an :class:`~imap.IMap`. It sets
    ``_options`` (:class:`imap.options.Options`), ``_policy``
    (:class:`imap.flow.FlowPolicy`), ``_engine`` and ``_name``."""

    _options: Any
    _policy: Any
    _engine: Any
    _name: str
    _start_method: str | None

    @property
    def worker_type(self) -> str:
        return self._options.worker_type

    @property
    def worker_num(self) -> int:
        """Local workers (``os.cpu_count()`` unless given)."""
        return self._options.local_workers

    @property
    def worker_remote(self) -> list:
        return list(self._options.worker_remote)

    @property
    def workers(self) -> int:
        """Local and remote workers configured (see ``status().workers`` for those alive)."""
        return self._options.workers

    @property
    def adaptive(self) -> bool:
        """True when the stride is left to the engine (``stride=None``)."""
        return self._policy.adaptive

    @property
    def stride(self) -> int:
        """Tasklets of a task drawn per turn: the stride given, or, when it
        is adaptive, the one in force (before start: the first one)."""
        return self._policy.stride_now(self.running)

    @property
    def max_stride(self) -> int:
        """The largest stride this IMap may use (the stride given, if fixed)."""
        return self._policy.max_stride()

    @property
    def ordered(self) -> bool:
        return self._options.ordered

    @property
    def skip(self) -> bool:
        return self._options.skip

    @property
    def name(self) -> str:
        return self._name

    @property
    def start_method(self) -> str | None:
        """The start method of process workers (None for thread workers)."""
        return self._start_method

    @property
    def initializer(self) -> Callable[..., Any] | None:
        return self._options.initializer

    @property
    def initargs(self) -> tuple:
        return self._options.initargs

    @property
    def progress(self) -> Any:
        """The ``progress`` option: False (off), True, a bar class or a callback."""
        return self._options.progress

    @property
    def remote_options(self) -> dict[str, Any]:
        return dict(self._options.remote_options)

    @property
    def buffer(self) -> int:
        """The most tasklets alive at once: the buffer given, or the bound in
        force (adaptive; before start: the first one)."""
        return self._policy.bound_now(self.running, len(self._engine.tasks))

    @property
    def options(self) -> dict[str, Any]:
        """The options this IMap was made with, as keyword arguments.

        ``IMap(**m.options)`` makes an IMap like ``m`` (without its tasks).
        Options left to their defaults are given as such (``buffer=None``
        stays ``None``: its default depends on the number of tasks).
        """
        kwargs = self._options.as_kwargs()
        kwargs["name"] = self.name
        return kwargs

    @property
    def chunksize(self) -> int | None:
        """The most tasklets sent to a worker in one message: the chunksize
        given, the one that follows from a fixed stride, or None when each
        task's batch size is adaptive (see ``status()``)."""
        return self._policy.fixed_batch()

    @property
    def tracked(self) -> dict[int, dict[int, Any]]:
        """Results of tasks added with ``track=True``: ``{task: {index: value}}``."""
        return self._engine.tracked

    @property
    def high_water(self) -> int:
        """The most buffer slots held at once since the last start."""
        return self._engine.high_water

    @property
    def task_count(self) -> int:
        """The number of tasks."""
        return len(self._engine.tasks)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._engine.started

    @property
    def stopped(self) -> bool:
        """True after :meth:`stop`, until the next :meth:`start`."""
        return self._engine.stopped
