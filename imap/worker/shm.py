"""Shared memory for large buffers: the half that runs in worker processes
(and that the parent's half, :mod:`imap.transport.shm`, builds on).

Segments are files in ``/dev/shm`` (or the temporary directory where there is
none) that hold the out-of-band buffers of one pickled message; a
:class:`Pool` is a writer's set of segments, reused once their reader is done
with them; a :class:`Reader` is a worker's mappings of the segments its
items are in. See :mod:`imap.transport.shm` for the whole path of a buffer.

This module imports only the standard library: worker processes import it
(:mod:`imap.worker.process_entry`).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import mmap
import os
import pickle
import tempfile
import threading
from typing import Any

THRESHOLD = 64 * 1024   # bytes: a smaller buffer stays in the pickle stream
ALIGN = 64              # each buffer starts at a multiple of this offset
PREFIX = "imap-"
PROTOCOL = 5

__all__ = ["PREFIX", "THRESHOLD", "Pool", "Reader", "Segment", "address_of", "directory",
           "dumps_out_of_band",
           "loads", "map_segment", "segment_path", "sweep", "unlink"]


@functools.cache
def directory() -> str:
    """Where segments live: ``/dev/shm`` if there is one, else the temporary
    directory (looked up once a process: every segment's path uses it)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def segment_path(name: str) -> str:
    return os.path.join(directory(), name)


def unlink(name: str) -> None:
    """Remove segment ``name`` (gone already: nothing to do)."""
    try:
        os.unlink(segment_path(name))
    except FileNotFoundError:
        pass


class Segment(mmap.mmap):
    """A mapped segment (an ``mmap`` that knows its name and address)."""

    name = ""
    address = 0


def map_segment(name: str, size: int | None = None, reserve: bool = False) -> Segment:
    """Map segment ``name``: a new one of ``size`` bytes, or an existing one.
    ``reserve``: the new segment's pages are all allocated now (a full
    ``/dev/shm`` raises OSError here rather than SIGBUS at a first write)."""
    created = size is not None
    flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if created else 0)
    fd = os.open(segment_path(name), flags, 0o600)
    try:
        if not created:
            size = os.fstat(fd).st_size
        elif reserve:
            os.posix_fallocate(fd, 0, max(size, 1))
        else:
            os.ftruncate(fd, max(size, 1))
        seg = Segment(fd, max(size, 1))
    except BaseException:
        if created:
            unlink(name)
        raise
    finally:
        os.close(fd)
    seg.name = name
    probe = ctypes.c_char.from_buffer(seg)   # its address (the export ends with probe)
    seg.address = ctypes.addressof(probe)
    del probe
    return seg


def _layout(sizes: list) -> tuple[list, int]:
    offsets, end = [], 0
    for n in sizes:
        offsets.append(end)
        end += (n + ALIGN - 1) // ALIGN * ALIGN
    return offsets, end


COPY_APART = 2**20         # a buffer this large is copied without holding the GIL
KEEP_BYTES = 128 * 2**20   # free segments a writer keeps for reuse, beyond KEEP_COUNT
KEEP_COUNT = 2             # free segments a writer keeps whatever their size


class Pool:
    """A writer's segments (the parent's for items, a worker's for results),
    reused once their reader is done with them: writing into pages that
    exist already is about twice as fast as into new ones (no page to
    allocate and clear).

    A reader that keeps a view of a segment past its batch (a function that
    stores its input) removes the segment's name; a writer reuses a segment
    only while its name exists, so what a reader keeps is never written over.
    """

    def __init__(self, prefix: str, keep_bytes: int = KEEP_BYTES) -> None:
        self.prefix = prefix
        self.keep_bytes = keep_bytes
        self._count = itertools.count()
        self._sizes: dict = {}    # name -> size, for every segment not yet dropped
        self._maps: dict = {}     # name -> this writer's mapping (made at the first reuse)
        self._free: list = []     # names of segments no reader uses, oldest first
        self._lock = threading.Lock()

    def write(self, buffers: list) -> tuple[str, list]:
        """Write ``buffers`` (PickleBuffers) into one segment, copied once
        (a large one without holding the GIL): ``(its name, refs)``."""
        with self._lock:
            raws = [_bytes_view(buffer.raw()) for buffer in buffers]
            offsets, size = _layout([r.nbytes for r in raws])
            name = self._reusable(size)
            if name is None:
                name = f"{self.prefix}{next(self._count)}"
                _pwrite_new(name, raws, offsets, size)
                self._sizes[name] = size
            else:
                seg = self._mapping(name)
                for buffer, raw, offset in zip(buffers, raws, offsets, strict=True):
                    source = address_of(buffer) if raw.nbytes >= COPY_APART else None
                    if source is None:
                        seg[offset:offset + raw.nbytes] = raw
                    else:   # without the GIL: the other threads go on meanwhile
                        ctypes.memmove(seg.address + offset, source, raw.nbytes)
        return name, [(name, offset, raw.nbytes) for raw, offset in zip(raws, offsets,
                                                                       strict=True)]

    def _mapping(self, name: str) -> Segment:
        seg = self._maps.get(name)
        if seg is None:
            seg = self._maps[name] = map_segment(name)
        return seg

    def _reusable(self, size: int) -> str | None:
        """The smallest free segment of ``size`` bytes or more whose name
        still exists (None if there is none)."""
        while True:
            fits = [name for name in self._free if self._sizes[name] >= size]
            if not fits:
                return None
            best = min(fits, key=self._sizes.__getitem__)
            self._free.remove(best)
            if os.path.exists(segment_path(best)):
                return best
            self._drop(best, unlink_it=False)   # a reader kept a view of it

    def release(self, name: str) -> None:
        """The reader of segment ``name`` is done: it may be written again
        (kept within ``KEEP_COUNT`` segments, or ``keep_bytes``)."""
        with self._lock:
            self._make_free(name)

    def _make_free(self, name: str) -> None:
        if name not in self._sizes or name in self._free:
            return
        self._free.append(name)
        while len(self._free) > KEEP_COUNT and sum(
                self._sizes[n] for n in self._free) > self.keep_bytes:
            self._drop(self._free.pop(0))

    def _drop(self, name: str, unlink_it: bool = True) -> None:
        self._sizes.pop(name, None)
        seg = self._maps.pop(name, None)
        if seg is not None:
            try:
                seg.close()
            except BufferError:   # pragma: no cover - the writer keeps no view
                pass
        if unlink_it:
            unlink(name)

    def close(self) -> None:
        """Drop every segment (the run ends)."""
        with self._lock:
            for name in list(self._sizes):
                self._drop(name)
            self._free.clear()


def _bytes_view(raw: memoryview) -> memoryview:
    return raw if raw.format == "B" and raw.ndim == 1 else raw.cast("B")


def _pwrite_new(name: str, raws: list, offsets: list, size: int) -> None:
    fd = os.open(segment_path(name), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, max(size, 1))
        for raw, offset in zip(raws, offsets, strict=True):
            done = 0
            while done < raw.nbytes:   # pwrite may write less than asked
                done += os.pwrite(fd, raw[done:], offset + done)
    finally:
        os.close(fd)


def address_of(buffer: pickle.PickleBuffer) -> int | None:
    """Where the memory of ``buffer`` starts, for an object that says so
    (a numpy array: ``__array_interface__``); None otherwise."""
    interface = getattr(buffer.raw().obj, "__array_interface__", None)
    if not isinstance(interface, dict):
        return None
    data = interface.get("data")
    return data[0] if isinstance(data, tuple) else None


def sweep(run: str) -> None:
    """Remove every segment whose name starts with ``run``."""
    try:
        names = os.listdir(directory())
    except OSError:
        return
    for name in names:
        if name.startswith(run):
            unlink(name)


READ_KEEP_COUNT = 8           # mappings a worker keeps of segments it read ...
READ_KEEP_BYTES = 256 * 2**20  # ... and their bytes at most


class Reader:
    """A worker's mappings of the segments its batches' items are in.

    A mapping is kept after its batch (the most recent ones, within
    ``READ_KEEP_COUNT`` and ``READ_KEEP_BYTES``): writers reuse their
    segments, and reading through a mapping made earlier costs no page
    faults (a third of the time of ``x * 2`` on 64 MiB read through a new
    one). A kept mapping whose segment's name is gone (its writer dropped
    it) is closed at the next :meth:`release`, so it holds no memory for
    long; names are never reused, so a kept mapping always shows its own
    segment.
    """

    def __init__(self) -> None:
        self._open: dict = {}   # name -> mapping, of the batch running
        self._kept: dict = {}   # name -> mapping, of earlier batches (least recent first)

    def views(self, refs: tuple) -> list:
        out = []
        for name, offset, length in refs:
            seg = self._open.get(name)
            if seg is None:
                seg = self._kept.pop(name, None)
                if seg is None:
                    fd = os.open(segment_path(name), os.O_RDONLY)
                    try:
                        seg = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
                    finally:
                        os.close(fd)
                self._open[name] = seg
            out.append(memoryview(seg)[offset:offset + length])
        return out

    def release(self) -> None:
        """The batch is done. A segment the function kept a view of loses
        its name (its writer must never write it again) and its mapping
        goes with the last view; the others are kept for later batches."""
        for name, seg in self._open.items():
            if _exported(seg):
                unlink(name)
            else:
                self._kept[name] = seg
        self._open.clear()
        total = sum(len(seg) for seg in self._kept.values())
        for name in list(self._kept):
            within = len(self._kept) <= READ_KEEP_COUNT and total <= READ_KEEP_BYTES
            if within and os.path.exists(segment_path(name)):
                continue
            seg = self._kept.pop(name)
            total -= len(seg)
            seg.close()


def _exported(seg: mmap.mmap) -> bool:
    """Whether a view of the read-only mapping ``seg`` is alive: ``resize``
    checks for views before it refuses a read-only mapping."""
    try:
        seg.resize(len(seg))
    except BufferError:
        return True
    except (TypeError, OSError, ValueError, SystemError):
        return False
    return False   # pragma: no cover - a read-only mapping never resizes


def loads(stream: bytes, views: list) -> Any:
    """Unpickle a stream whose large buffers are ``views``."""
    return pickle.loads(stream, buffers=views)


def dumps_out_of_band(obj: Any, pool: Pool, threshold: int = THRESHOLD) -> tuple[bytes, tuple]:
    """``obj`` pickled by a worker: ``(stream, refs)``, its large buffers
    written into a segment of ``pool`` (none if no buffer is large)."""
    large: list = []

    def keep_in_band(buffer: pickle.PickleBuffer) -> bool:
        if buffer.raw().nbytes < threshold:
            return True
        large.append(buffer)
        return False

    stream = pickle.dumps(obj, PROTOCOL, buffer_callback=keep_in_band)
    if not large:
        return stream, ()
    return stream, tuple(pool.write(large)[1])
