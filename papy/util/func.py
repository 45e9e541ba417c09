"""Ready worker functions, each called ``f(inbox, *args, **kwargs)``.

``inbox`` is the tuple a :class:`~papy.worker.Worker` receives (one element
per upstream pipe). Every function here is module-level, so it runs on
process workers and is saved by import path.
"""

from __future__ import annotations

import json
import mmap
import os
import pickle
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, TextIO

# -- passers ----------------------------------------------------------------------


def plugger(inbox: Sequence[Any]) -> None:
    """Nothing: a piper of it ends a branch whose results nobody needs."""
    return None


def ipasser(inbox: Sequence[Any], i: int = 0) -> Any:
    """The i-th element of the inbox (the item of the i-th upstream pipe)."""
    return inbox[i]


def npasser(inbox: Sequence[Any], n: int | None = None) -> tuple:
    """The first n elements of the inbox (all of them for ``None``)."""
    return tuple(inbox[:n])


def spasser(inbox: Sequence[Any], s: Sequence[int] | None = None) -> tuple:
    """The elements of the inbox whose indexes are in ``s`` (all for ``None``),
    in the inbox's order (as PaPy 1.x: ``s=[2, 0]`` gives elements 0 and 2)."""
    if s is None:
        return tuple(inbox)
    chosen = set(s)
    return tuple(x for i, x in enumerate(inbox) if i in chosen)


# -- zippers and joiners ---------------------------------------------------------------


def zipper(inbox: Sequence[Any]) -> tuple:
    """The inbox's elements (e.g. consumed groups) zipped: ``tuple(zip(*inbox))``."""
    return tuple(zip(*inbox, strict=False))


def nzipper(inbox: Sequence[Any], n: int | None = None) -> tuple:
    """The first element of each of the first n inbox elements (all for ``None``):
    ``nzipper(([a0], [a1]))`` is ``(a0, a1)``, the items of a ``consume=2`` group."""
    firsts = tuple(zip(*inbox[:n], strict=False))
    if not firsts:
        raise ValueError(f"nzipper: nothing to zip in {inbox!r} (n={n})")
    return firsts[0]


def szipper(inbox: Sequence[Any], s: Sequence[int] | None = None) -> list:
    """The inbox elements whose indexes are in ``s`` (all for ``None``), in the
    inbox's order, zipped: ``list(zip(*chosen))``."""
    return list(zip(*spasser(inbox, s), strict=False))


def unzipper(inbox: Sequence[Any]) -> tuple:
    """The single element of the inbox, a sequence of tuples, unzipped."""
    return tuple(zip(*inbox[0], strict=False))


def sjoiner(inbox: Sequence[Any], s: Sequence[int] | None = None, join: str = "") -> str:
    """The string elements of the inbox at indexes ``s`` joined by ``join``."""
    return join.join(str(x) for x in spasser(inbox, s))


def njoiner(inbox: Sequence[Any], n: int | None = None, join: str = "") -> str:
    """The first n string elements of the inbox joined by ``join``."""
    return join.join(str(x) for x in npasser(inbox, n))


def print_(inbox: Sequence[Any], prefix: str = "") -> Any:
    """Print the first element of the inbox (for debugging) and pass it on."""
    print(f"{prefix}{inbox[0]}", flush=True)
    return inbox[0]


# -- item serialisation ---------------------------------------------------------------


def pickle_dumps(inbox: Sequence[Any], protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    """The first element of the inbox as pickle bytes."""
    return pickle.dumps(inbox[0], protocol)


def pickle_loads(inbox: Sequence[Any]) -> Any:
    """The object in the pickle bytes that are the first element of the inbox."""
    return pickle.loads(inbox[0])


def json_dumps(inbox: Sequence[Any], **kwargs: Any) -> str:
    """The first element of the inbox as a JSON string."""
    return json.dumps(inbox[0], **kwargs)


def json_loads(inbox: Sequence[Any]) -> Any:
    """The object in the JSON string that is the first element of the inbox."""
    return json.loads(inbox[0])


def dump_item(inbox: Sequence[Any], directory: str | None = None, prefix: str = "papy_",
              suffix: str = ".pickle", raw: bool = False) -> str:
    """Write the first element of the inbox to a new file; return its path.

    Pickled, or with ``raw=True`` its bytes as they are (a ``str`` as UTF-8),
    as PaPy 1.x wrote items. Handy to pass large items between processes by
    name instead of by value.
    """
    value = inbox[0]
    if raw and not isinstance(value, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"dump_item(raw=True) writes bytes or str, got "
                        f"{type(value).__name__}; leave raw=False to pickle it")
    handle, path = tempfile.mkstemp(suffix, prefix, directory)
    with os.fdopen(handle, "wb") as out:
        if not raw:
            pickle.dump(value, out, pickle.HIGHEST_PROTOCOL)
        else:
            out.write(value.encode() if isinstance(value, str) else value)
    return path


def load_item(inbox: Sequence[Any], remove: bool = False, type: str = "object") -> Any:
    """The item in the file whose path is the first element of the inbox.

    ``type``: ``"object"`` (unpickled, as :func:`dump_item` wrote it),
    ``"bytes"`` (the file's bytes) or ``"mmap"`` (a read-only memory map of
    the file, as PaPy 1.x's ``type="mmap"``: nothing is read until used; the
    map stays valid after ``remove``). An empty file maps to ``b""``.
    """
    if type not in ("object", "bytes", "mmap"):
        raise ValueError(f"load_item: type must be 'object', 'bytes' or 'mmap', "
                         f"got {type!r}")
    path = inbox[0]
    with open(path, "rb") as handle:
        if type == "object":
            value = pickle.load(handle)
        elif type == "bytes" or os.fstat(handle.fileno()).st_size == 0:
            value = handle.read()
        else:
            value = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if remove:
        os.remove(path)
    return value


# -- streams ---------------------------------------------------------------------


def dump_stream(inbox: Sequence[Any], handle: TextIO, format: str = "json") -> Any:
    """Write the first element of the inbox as one line to ``handle``; pass it on.

    ``format``: ``"json"`` (one JSON document a line) or ``"str"``.
    """
    value = inbox[0]
    line = json.dumps(value) if format == "json" else str(value)
    handle.write(line + "\n")
    handle.flush()
    return value


def write_line(inbox: Sequence[Any], path: str, format: str = "json") -> Any:
    """Append the first element of the inbox as one line to the file ``path``.

    Opens the file per item, so it works on any worker (thread or process).
    """
    with open(path, "a", encoding="utf-8") as handle:
        return dump_stream(inbox, handle, format)


def dump_pickle_stream(inbox: Sequence[Any], handle: BinaryIO) -> Any:
    """Pickle the first element of the inbox onto ``handle`` (open for binary
    writing, in one process: an inline piper); pass it on."""
    pickle.dump(inbox[0], handle, pickle.HIGHEST_PROTOCOL)
    handle.flush()
    return inbox[0]


def load_pickle_stream(handle: BinaryIO) -> Iterator[Any]:
    """The objects of a stream written by :func:`dump_pickle_stream` (an input)."""
    while True:
        try:
            yield pickle.load(handle)
        except EOFError:
            return


def load_stream(handle: TextIO, format: str = "json") -> Iterator[Any]:
    """The items of a stream written by :func:`dump_stream` (an input for a Dagger)."""
    for line in handle:
        line = line.rstrip("\n")
        if line:
            yield json.loads(line) if format == "json" else line


def make_lines(handle: TextIO) -> Iterator[str]:
    """The lines of ``handle`` without their line ends (an input for a Dagger)."""
    for line in handle:
        yield line.rstrip("\r\n")
