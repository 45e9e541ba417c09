"""The records that cross between the parent and its workers, named.

On the wire each record is plain builtins -- a tuple with its tag first or,
for a payload with frames, a dict -- because the worker's end builds and
reads them with no class of imap: the kernel (:mod:`imap.worker.kernel`)
and the remote agent's link (:mod:`imap.worker.agent_link`) travel as source
to hosts that have no imap, and a class would pickle by reference. Their
tags and fields are named once there (``REPLY_FIELDS``, ``ERROR_FIELDS``,
``FRAMES_FIELDS``, ``SUBMITTED_FIELDS``, ``LINK_FIELDS``). Here, in the parent, each record is a
NamedTuple of those fields, in that order, with ``to_wire()`` (the plain
form) and ``from_wire(data)`` (which checks the tag and the fields, and
raises a ValueError naming what it got otherwise)::

    worker -> parent: a batch's reply          (reply_from_wire)
        Answered(values, errors, busy, peak, more)
        Failed(error)                          every tasklet fails with one error
        OutOfBand(stream, refs)                an answer whose buffers are in shared memory
    an error in a reply                        PackedError(kind, text, traceback, detail)
    a payload: a batch's items, a reply        Payload(stream, frames)
    an executor's task -> parent               Submitted(replies, worker, logs)
    the remote link, both ways                 (link_from_wire)
        LinkRun(ticket, key, payload, data)    parent -> agent: run a batch
        LinkRevoke(ticket)                     parent -> agent: take it back if not started
        LinkAnswered(ticket, data, logs)       agent -> parent: its reply and log records
    a link message's payload, attached         Attached(stream, count)

The messages to a worker process are NamedTuples of
:mod:`imap.worker.process_entry` (the process imports imap anyway).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, NamedTuple

from ..worker import agent_link, kernel


def _to_wire(record: Any) -> tuple:
    """The plain form of a tagged record: its tag, then its fields."""
    return (record.tag, *record)


def _tag_of(data: Any) -> Any:
    return data[0] if type(data) is tuple and data else None


_new = tuple.__new__   # a NamedTuple of fields counted already (``_make`` counts again)


def _fields_of(cls: Any, data: tuple) -> Any:
    """``cls`` made of the fields of ``data`` after its tag (checked: as many)."""
    if len(data) != len(cls._fields) + 1:
        raise ValueError(
            f"a {cls.__name__} record ({cls.tag!r}) has {len(cls._fields)} fields after its "
            f"tag ({', '.join(cls._fields)}); this one has {len(data) - 1}")
    return _new(cls, data[1:])


def _from_wire(cls: Any, data: Any) -> Any:
    """``cls`` read from its plain form ``data`` (a ValueError if it is not one)."""
    tag = _tag_of(data)
    if tag != cls.tag:
        raise ValueError(f"a {cls.__name__} record is tagged {cls.tag!r}, not {tag!r}")
    return _fields_of(cls, data)


def _reader(what: str, *kinds: Any) -> Callable[[Any], Any]:
    """A function that reads any record of ``kinds`` by its tag."""
    by_tag = {kind.tag: kind for kind in kinds}

    def from_wire(data: Any) -> Any:
        kind = by_tag.get(data[0]) if type(data) is tuple and data else None
        if kind is None:
            raise ValueError(f"{what} tagged {_tag_of(data)!r}; known tags: "
                             f"{', '.join(by_tag)}")
        return _fields_of(kind, data)
    from_wire.__doc__ = f"The named record of {what} (one of {', '.join(by_tag)})."
    return from_wire


# -- worker -> parent: the reply to a batch ------------------------------------------------


class Answered(NamedTuple):
    """A batch's results: ``values`` aligned with its items (None where an
    error is), ``errors`` None or {position: packed error}, ``busy`` and
    ``peak`` the worker's seconds on the batch and on its longest tasklet,
    ``more`` True for a partial answer (its first tasklets; more follow)."""

    values: list
    errors: dict | None
    busy: float
    peak: float
    more: bool
    tag = kernel.ANSWER
    to_wire = _to_wire
    from_wire = classmethod(_from_wire)


class Failed(NamedTuple):
    """Every tasklet of the batch fails with ``error`` (a packed error): its
    items did not unpickle, or the worker refuses it whole."""

    error: tuple
    tag = kernel.FAILED
    to_wire = _to_wire
    from_wire = classmethod(_from_wire)


class OutOfBand(NamedTuple):
    """An answer pickled as ``stream``, its large buffers in the shared
    memory ``refs`` names (:mod:`imap.transport.shm`)."""

    stream: bytes
    refs: tuple
    tag = kernel.OUT_OF_BAND
    to_wire = _to_wire
    from_wire = classmethod(_from_wire)


reply_from_wire = _reader("a worker's reply", Answered, Failed, OutOfBand)


class PackedError(NamedTuple):
    """An error as it travels; ``kind`` is its tag. What ``text`` and
    ``detail`` hold depends on the kind: ``kernel.ERROR`` (the function
    raised): its repr, its pickle (None: it has none); ``kernel.UNSENDABLE``:
    what could not travel and why, None; ``kernel.INIT_FAILED``: the
    initializer's name, its error (packed); ``kernel.UNMET``: why the
    function's dependency is unmet, the worker that says so (or None)."""

    kind: str
    text: str
    traceback: str
    detail: Any
    KINDS = (kernel.ERROR, kernel.UNSENDABLE, kernel.INIT_FAILED, kernel.UNMET)

    def to_wire(self) -> tuple:
        return tuple(self)

    @classmethod
    def from_wire(cls, data: Any) -> PackedError:
        kind = _tag_of(data)
        if kind not in cls.KINDS:
            raise ValueError(f"an error of an unknown kind {kind!r}; known kinds: "
                             f"{', '.join(cls.KINDS)}")
        if len(data) != len(cls._fields):
            raise ValueError(f"an error record has {len(cls._fields)} fields "
                             f"({', '.join(cls._fields)}); this one has {len(data)}")
        return cls._make(data)


class Payload(NamedTuple):
    """A pickle ``stream`` and, where the transport carries them, its large
    buffers beside it (``frames``; None: all in the stream). On the wire:
    the stream alone, or a frames record (``kernel.frames_record``)."""

    stream: bytes
    frames: list | None = None

    def to_wire(self) -> Any:
        if self.frames is None:
            return self.stream
        return kernel.frames_record(self.stream, self.frames)

    @classmethod
    def from_wire(cls, data: Any) -> Payload:
        return cls(*kernel.payload_parts(data))

    @property
    def frame_bytes(self) -> int:
        """Bytes of the frames."""
        return sum(memoryview(f).nbytes for f in self.frames or ())

    def load(self) -> Any:
        """The object pickled; arrays that came as frames are read-only views of them."""
        if self.frames is None:
            return pickle.loads(self.stream)
        return pickle.loads(self.stream,
                            buffers=[memoryview(f).toreadonly() for f in self.frames])


class Submitted(NamedTuple):
    """What an executor's task returns (``kernel.run_submitted``): the
    ``replies`` of the batches it ran, in the order given (each a reply's
    pickle, or its frames record), the ``worker`` that ran them, and the
    pickled list of log records they emitted (None: none)."""

    replies: list
    worker: str
    logs: bytes | None
    tag = kernel.SUBMITTED
    to_wire = _to_wire
    from_wire = classmethod(_from_wire)


# -- the remote link -----------------------------------------------------------------------


class LinkRun(NamedTuple):
    """Run batch ``ticket`` of task ``key``: ``payload`` is the task's
    function (cloudpickle of ``(func, args, kwargs)``) the first time the
    connection sees the task, else None; ``data`` the items (a pickle
    stream, or an :class:`Attached` record's plain form)."""

    ticket: int
    key: tuple
    payload: bytes | None
    data: Any
    tag = agent_link.RUN
    to_wire = _to_wire
    from_wire = classmethod(_from_wire)


class LinkRevoke(NamedTuple):
    """Take batch ``ticket`` back if the agent has not started it."""

    ticket: int
    tag = agent_link.REVOKE
    to_wire = _to_wire
    from_wire = classmethod(_from_wire)


class LinkAnswered(NamedTuple):
    """The agent's reply ``data`` to batch ``ticket`` (a pickle stream, or
    an :class:`Attached` record's plain form) and the pickled list of log
    records the batch emitted (None: none)."""

    ticket: int
    data: Any
    logs: bytes | None
    tag = agent_link.ANSWERED
    to_wire = _to_wire
    from_wire = classmethod(_from_wire)


class Attached(NamedTuple):
    """A payload whose ``count`` large buffers crossed the link as attached
    frames just before the message it is in (``agent_link.take_attached``)."""

    stream: bytes
    count: int
    tag = agent_link.ATTACHED
    to_wire = _to_wire
    from_wire = classmethod(_from_wire)


link_from_wire = _reader("a remote link message", LinkRun, LinkRevoke, LinkAnswered)
