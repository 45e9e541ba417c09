"""The options of an IMap: one frozen record, checked once.

:class:`Options` is the single source of truth for what an IMap was made
with: ``IMap.__init__`` builds and checks it, ``IMap.options`` reads it back
as keyword arguments, :func:`imap.backends.make` builds the workers from it,
and ``papy.save`` writes it out (a field left at its default is written only
when it matters). A new option is one new field here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .flow import DEFAULT_BUFFER_BYTES
from .progress import check as check_progress

__all__ = ["Options", "check_int", "parse_remote", "WORKER_TYPES", "START_METHODS"]

WORKER_TYPES = ("process", "thread")
START_METHODS = ("fork", "forkserver", "spawn")


def check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} ({value}) must be >= {minimum}")


def parse_remote(worker_remote: Any) -> tuple:
    if not worker_remote:
        return ()
    hosts = []
    for entry in worker_remote:
        try:
            host, n = entry
        except (TypeError, ValueError):
            raise ValueError(
                f"worker_remote entries must be (host, n) or ('host:port', n) pairs, "
                f"got {entry!r}") from None
        check_int(f"the worker count for {host!r}", n, 1)
        hosts.append((str(host), n))
    return tuple(hosts)


# remote_options: name -> (accepted types, description of a good value, check)
_REMOTE_OPTIONS: dict[str, tuple] = {
    "secret": ((str, bytes, type(None)), "a str or bytes", None),
    "ssl": ((bool,), "True or False", None),
    "ssl_certfile": ((str, type(None)), "a path", None),
    "ssl_keyfile": ((str, type(None)), "a path", None),
    "ssl_ca_certs": ((str, type(None)), "a path", None),
    "connect_timeout": ((int, float), "seconds > 0", lambda v: v > 0),
    "liveness": ((int, float), "seconds > 0", lambda v: v > 0),
    "reconnect": ((bool,), "True or False", None),
    "worker_wait": ((int, float), "seconds >= 0", lambda v: v >= 0),
}


def check_remote_options(options: Mapping[str, Any]) -> None:
    """Reject an unknown remote option or a value of the wrong kind, naming it."""
    for name, value in options.items():
        if name not in _REMOTE_OPTIONS:
            raise ValueError(f"unknown remote option {name!r}; known: "
                             f"{', '.join(_REMOTE_OPTIONS)}")
        kinds, good, check = _REMOTE_OPTIONS[name]
        number = kinds == (int, float)
        if (not isinstance(value, kinds) or (number and isinstance(value, bool))
                or (check is not None and not check(value))):
            raise ValueError(f"remote option {name!r} must be {good}, got {value!r}")


@dataclass(frozen=True)
class Options:
    """Everything an IMap is made with, except its first task.

    The meaning of each field is documented with :class:`imap.IMap`. ``None``
    means "the default", which may depend on the machine (``worker_num``,
    ``start_method``) or be chosen while the IMap runs (``stride``,
    ``buffer``, ``chunksize``).
    """

    worker_type: str = "process"
    worker_num: int | None = None
    worker_remote: tuple = ()
    stride: int | None = None
    buffer: int | None = None
    ordered: bool = True
    skip: bool = False
    name: str | None = None
    start_method: str | None = None
    chunksize: int | None = None
    initializer: Callable[..., Any] | None = None
    initargs: tuple = ()
    stall_grace: float | None = 2.0
    remote_options: Mapping[str, Any] = field(default_factory=dict)
    buffer_bytes: int | None = DEFAULT_BUFFER_BYTES
    worker_logs: bool = True
    progress: Any = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # normalising a frozen record as it is made
        if self.worker_type not in WORKER_TYPES:
            raise ValueError(
                f"worker_type must be one of {', '.join(map(repr, WORKER_TYPES))}, "
                f"got {self.worker_type!r}")
        set_(self, "worker_remote", parse_remote(self.worker_remote))
        if self.worker_num is not None:
            check_int("worker_num", self.worker_num, 0)
        if self.local_workers + self.remote_workers == 0:
            raise ValueError(
                "the IMap has no workers: worker_num is 0 and worker_remote is empty; "
                "give worker_num >= 1 or some remote workers")
        if self.stride is not None:
            check_int("stride", self.stride, 1)
        if self.buffer is not None:
            check_int("buffer", self.buffer, 1)
            if self.stride is not None and self.buffer < self.stride:
                raise ValueError(
                    f"buffer ({self.buffer}) must be >= stride ({self.stride}); raise "
                    f"buffer or lower stride")
        if self.chunksize is not None:
            check_int("chunksize", self.chunksize, 1)
        if self.buffer_bytes is not None:
            check_int("buffer_bytes", self.buffer_bytes, 1)
        if not isinstance(self.worker_logs, bool):
            raise TypeError(f"worker_logs must be True or False, got {self.worker_logs!r}")
        if self.start_method is not None and self.start_method not in START_METHODS:
            raise ValueError(
                f"start_method must be one of {', '.join(map(repr, START_METHODS))} "
                f"or None, got {self.start_method!r}")
        if self.stall_grace is not None and self.stall_grace < 0:
            raise ValueError(f"stall_grace ({self.stall_grace}) must be >= 0 or None")
        if self.initializer is not None and not callable(self.initializer):
            raise TypeError(f"initializer must be callable, got {self.initializer!r}")
        check_progress(self.progress)
        if self.progress is None:
            set_(self, "progress", False)
        set_(self, "ordered", bool(self.ordered))
        set_(self, "skip", bool(self.skip))
        set_(self, "initargs", tuple(self.initargs))
        set_(self, "remote_options", dict(self.remote_options or {}))
        check_remote_options(self.remote_options)

    # -- resolved values --------------------------------------------------------

    @property
    def local_workers(self) -> int:
        """Local workers: ``worker_num``, or the number of CPUs."""
        return self.worker_num if self.worker_num is not None else (os.cpu_count() or 1)

    @property
    def remote_workers(self) -> int:
        return sum(n for _, n in self.worker_remote)

    @property
    def workers(self) -> int:
        """Local and remote workers."""
        return self.local_workers + self.remote_workers

    @property
    def resolved_start_method(self) -> str | None:
        """The start method process workers use (None for thread workers)."""
        if self.worker_type != "process":
            return None
        if self.start_method is not None:
            return self.start_method
        from .backends.process import default_start_method
        return default_start_method()

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of ``IMap`` (defaults as given)."""
        kwargs = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        kwargs["worker_remote"] = list(self.worker_remote)
        kwargs["remote_options"] = dict(self.remote_options)
        return kwargs

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each option's default value."""
        return {
            f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)
        }
