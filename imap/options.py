"""The options of an IMap: one frozen record, checked once.

:class:`Options` is the single source of truth for what an IMap was made
with: ``IMap.__init__`` builds and checks it, ``IMap.options`` reads it back
as keyword arguments, :func:`imap.backends.make` builds the workers from it,
and ``papy.save`` writes it out (a field left at its default is written only
when it matters). A new option is one new field here.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .auth import DEFAULT_PORT
from .backends.kinds import LOCAL
from .flow import DEFAULT_BUFFER_BYTES
from .run.progress import check as check_progress

__all__ = ["Options", "REMOTE_OPTIONS", "check_address", "parse_address", "check_bool",
           "check_int", "check_seconds", "parse_remote", "WORKER_TYPES", "START_METHODS",
           "MAX_REMOTE_WORKERS"]

WORKER_TYPES = tuple(LOCAL)   # the kinds of local workers (imap.backends.kinds)
START_METHODS = ("fork", "forkserver", "spawn")
# Connections one worker_remote entry may open: more is taken for a port
# written as the count, ("host", 18812), rather than 18812 connections.
MAX_REMOTE_WORKERS = 1024


def check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} ({value}) must be >= {minimum}")


def check_bool(name: str, value: Any) -> None:
    """Raise ``TypeError`` unless ``value`` is True or False (``"no"`` is not false)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} "
                        f"({value!r})")


def check_seconds(name: str, value: Any) -> None:
    """Raise unless ``value`` is None or a number of seconds >= 0.

    Raises:
        TypeError: not a number (a str such as ``"1"`` included).
        ValueError: negative, or NaN.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds or None, got "
                        f"{type(value).__name__} ({value!r})")
    if not value >= 0:
        raise ValueError(f"{name} ({value}) must be >= 0 or None")


_REMOTE_EXAMPLE = 'worker_remote=[("host:port", 2)]'


def _remote_error(problem: str) -> ValueError:
    return ValueError(f"worker_remote: {problem}")


def _check_port(address: str, port: str) -> None:
    """``port``, the text after the last ``:`` of ``address``: 1 to 65535, digits only."""
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        shown = repr(port) if port else "nothing"
        raise _remote_error(
            f"the port of {address!r} is {shown}; a port is a number from 1 to 65535, "
            f"as in 'host:18812' (or leave it out for the default port)")


def parse_address(text: str) -> tuple[str, int]:
    """``"host"``, ``"host:port"`` or ``"[v6]:port"`` -> ``(host, port)`` (an
    address :func:`check_address` accepts; the default port if none)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else DEFAULT_PORT
    host, sep, port = text.rpartition(":")
    if not sep or ":" in host:
        return text, DEFAULT_PORT
    try:
        return host, int(port)
    except ValueError:
        raise ValueError(f"bad port in remote worker address {text!r}") from None


def check_address(address: str) -> None:
    """Raise ``ValueError`` unless ``address`` is a remote worker address.

    The forms: ``"host"``, ``"host:port"``, ``"[v6]"``, ``"[v6]:port"`` and a
    bare IPv6 address such as ``"::1"`` (the default port); a port is 1 to
    65535. What passes is what :func:`parse_address`
    reads as meant.
    """
    if not address.strip():
        raise _remote_error(f"an address is empty ({address!r}); give 'host' or 'host:port'")
    if any(c.isspace() for c in address):
        raise _remote_error(f"the address {address!r} holds white space; remove it")
    if address.startswith("["):
        host, closed, rest = address[1:].partition("]")
        if not closed or "[" in host or "[" in rest or "]" in rest:
            raise _remote_error(
                f"the brackets of {address!r} do not match; an IPv6 address is written "
                f"'[v6]' or '[v6]:port', e.g. '[::1]:18812'")
        if not host:
            raise _remote_error(f"the address {address!r} has no host between its brackets")
        if rest and not rest.startswith(":"):
            raise _remote_error(
                f"the address {address!r} has {rest!r} after its ']'; only ':port' may "
                f"follow, e.g. '[::1]:18812'")
        if rest:
            _check_port(address, rest[1:])
        return
    if "[" in address or "]" in address:
        raise _remote_error(
            f"the brackets of {address!r} do not match; an IPv6 address is written "
            f"'[v6]' or '[v6]:port', e.g. '[::1]:18812'")
    host, colon, port = address.rpartition(":")
    if not colon:
        return  # a host name or an IPv4 address: the default port
    if ":" in host:  # more than one ':': a bare IPv6 address, or a mistake
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise _remote_error(
                f"{address!r} is neither 'host:port' nor an IPv6 address; write an IPv6 "
                f"address with a port in brackets, e.g. '[::1]:18812'") from None
        return
    if not host:
        raise _remote_error(f"the address {address!r} has no host before its ':port'")
    _check_port(address, port)


def parse_remote(worker_remote: Any) -> tuple[tuple[str, int], ...]:
    """Check ``worker_remote``; return it as a tuple of ``(address, n)`` pairs.

    Every mistake is a ``ValueError`` naming the value and how to write it,
    raised when the IMap is made rather than at ``start()``. The addresses are
    kept as given (see :func:`check_address` for the forms).
    """
    if worker_remote is None:
        return ()
    if isinstance(worker_remote, (str, bytes, bytearray)):
        raise _remote_error(
            f"got the single value {worker_remote!r}; pass a list of (address, n) pairs, "
            f"e.g. worker_remote=[({_text(worker_remote)!r}, 2)] for 2 workers on that host")
    if isinstance(worker_remote, Mapping):
        raise _remote_error(
            f"got a mapping ({worker_remote!r}); pass a list of (address, n) pairs, "
            f"e.g. worker_remote=list(mapping.items())")
    try:
        entries = list(worker_remote)
    except TypeError:
        raise _remote_error(
            f"got {worker_remote!r}; pass a list of (address, n) pairs, e.g. "
            f"{_REMOTE_EXAMPLE}") from None
    return tuple(_remote_entry(entry) for entry in entries)


def _text(value: Any) -> Any:
    """``value`` as a str, if it is bytes (to show it in an example)."""
    return value.decode(errors="replace") if isinstance(value, (bytes, bytearray)) else value


def _remote_entry(entry: Any) -> tuple[str, int]:
    if isinstance(entry, (str, bytes, bytearray)):
        raise _remote_error(
            f"the entry {entry!r} is an address without a worker count; each entry is an "
            f"(address, n) pair, e.g. ({_text(entry)!r}, 2)")
    if not isinstance(entry, (tuple, list)) or len(entry) != 2:
        raise _remote_error(
            f"each entry is an (address, n) pair, got {entry!r}; e.g. {_REMOTE_EXAMPLE}")
    address, n = entry
    if isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        address = str(address)
    if not isinstance(address, str):
        hint = "'host', 'host:port' or '[v6]:port'"
        if isinstance(address, (tuple, list)) and len(address) == 2:  # (host, port)
            hint = repr(f"{address[0]}:{address[1]}")
        raise _remote_error(
            f"the address in {tuple(entry)!r} must be a str such as {hint}, got "
            f"{type(address).__name__} {address!r}")
    check_address(address)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise _remote_error(
            f"the worker count of {address!r} must be an int >= 1, got {n!r}; "
            f"e.g. ({address!r}, 2)")
    if n > MAX_REMOTE_WORKERS:
        raise _remote_error(_too_many(address, n))
    return address, n


def _too_many(address: str, n: int) -> str:
    """What to say of ``(address, n)`` with ``n`` above :data:`MAX_REMOTE_WORKERS`."""
    problem = (f"({address!r}, {n}) asks for {n} connections to one host; the most is "
               f"{MAX_REMOTE_WORKERS}")
    host, colon, port = address.rpartition(":")
    has_port = address.startswith("[") and "]:" in address or (colon and ":" not in host)
    if has_port or n > 65535:
        return f"{problem}: give the number of workers, e.g. ({address!r}, 8)"
    with_port = f"[{address}]:{n}" if ":" in address else f"{address}:{n}"
    return (f"{problem}; if {n} is the port, write it in the address, as in "
            f"('host:port', n): ({with_port!r}, 8) for 8 workers")


# remote_options: name -> (accepted types, description of a good value, check)
_REMOTE_OPTIONS: dict[str, tuple] = {
    "secret": ((str, bytes, type(None)), "a str or bytes, not empty (white space at "
               "either end is not part of it)", lambda v: v is None or bool(v.strip())),
    "ssl": ((bool,), "True or False", None),
    "ssl_certfile": ((str, type(None)), "a path", None),
    "ssl_keyfile": ((str, type(None)), "a path", None),
    "ssl_ca_certs": ((str, type(None)), "a path", None),
    "connect_timeout": ((int, float), "seconds > 0", lambda v: v > 0),
    "liveness": ((int, float), "seconds > 0", lambda v: v > 0),
    "reconnect": ((bool,), "True or False", None),
    "compress": ((bool,), "True or False", None),
    "worker_wait": ((int, float), "seconds >= 0", lambda v: v >= 0),
}


REMOTE_OPTIONS = tuple(_REMOTE_OPTIONS)   # the names ``remote_options`` may hold


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


def check_executor(executor: Any, worker_remote: tuple, worker_num: int | None) -> None:
    """An executor is an address string or an object with ``submit``."""
    if isinstance(executor, str):
        if "://" not in executor and ":" not in executor:
            raise ValueError(f"executor={executor!r}: give a Dask scheduler address such "
                             f"as 'tcp://host:8786', a distributed.Client, or a "
                             f"concurrent.futures.Executor")
    elif not callable(getattr(executor, "submit", None)):
        raise TypeError(f"executor must be a Dask scheduler address, a distributed.Client "
                        f"or a concurrent.futures.Executor (with submit()), got {executor!r}")
    if worker_remote:
        raise ValueError("executor= and worker_remote= cannot be combined: the executor's "
                         "workers are the IMap's workers")
    if worker_num == 0:
        raise ValueError("with executor=, worker_num is the number of the executor's "
                         "workers to use (>= 1), or None to ask the executor")


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
    executor: Any = None
    journal: str | None = None
    journal_reuse: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # normalising a frozen record as it is made
        if self.worker_type not in WORKER_TYPES:
            raise ValueError(
                f"worker_type must be one of {', '.join(map(repr, WORKER_TYPES))}, "
                f"got {self.worker_type!r}")
        set_(self, "worker_remote", parse_remote(self.worker_remote))
        if self.worker_num is not None:
            check_int("worker_num", self.worker_num, 0)
        if self.executor is not None:
            check_executor(self.executor, self.worker_remote, self.worker_num)
        elif self.local_workers + self.remote_workers == 0:
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
        check_seconds("stall_grace", self.stall_grace)
        if self.initializer is not None and not callable(self.initializer):
            raise TypeError(f"initializer must be callable, got {self.initializer!r}")
        check_progress(self.progress)
        check_bool("ordered", self.ordered)
        check_bool("skip", self.skip)
        check_bool("journal_reuse", self.journal_reuse)
        if self.journal is not None:
            if not isinstance(self.journal, (str, os.PathLike)):
                raise TypeError(f"journal must be a file path (str or os.PathLike) or None, "
                                f"got {type(self.journal).__name__} ({self.journal!r})")
            set_(self, "journal", os.fspath(self.journal))
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
        """Local and remote workers (with an executor: a first guess, replaced
        by the executor's count once it runs)."""
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
