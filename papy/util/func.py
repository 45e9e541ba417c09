"""Ready worker functions, each called ``f(inbox, *args, **kwargs)``.

``inbox`` is the tuple a :class:`~papy.worker.Worker` receives (one element
per upstream pipe). Every function here is module-level, so it runs on
process workers and is saved by import path.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

# -- passers ----------------------------------------------------------------------


def ipasser(inbox: Sequence[Any], i: int = 0) -> Any:
    """The i-th element of the inbox (the item of the i-th upstream pipe)."""
    return inbox[i]


def npasser(inbox: Sequence[Any], n: int | None = None) -> tuple:
    """The first n elements of the inbox (all of them for ``None``)."""
    return tuple(inbox[:n])


def spasser(inbox: Sequence[Any], s: Sequence[int] | None = None) -> tuple:
    """The elements of the inbox at the indexes ``s`` (all for ``None``), in that order."""
    indexes = range(len(inbox)) if s is None else s
    return tuple(inbox[i] for i in indexes)


# -- zippers and joiners ---------------------------------------------------------------


def zipper(inbox: Sequence[Any]) -> tuple:
    """The inbox's elements (e.g. consumed groups) zipped: ``tuple(zip(*inbox))``."""
    return tuple(zip(*inbox, strict=False))


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
              suffix: str = ".pickle") -> str:
    """Pickle the first element of the inbox to a new file; return its path.

    Handy to pass large items between processes by name instead of by value.
    """
    handle, path = tempfile.mkstemp(suffix, prefix, directory)
    with os.fdopen(handle, "wb") as out:
        pickle.dump(inbox[0], out, pickle.HIGHEST_PROTOCOL)
    return path


def load_item(inbox: Sequence[Any], remove: bool = False) -> Any:
    """The object pickled in the file whose path is the first element of the inbox."""
    path = inbox[0]
    with open(path, "rb") as handle:
        value = pickle.load(handle)
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
