"""Large buffers between this process and its local worker processes,
through shared memory: pickle protocol 5 with out-of-band buffers.

An item or a result that holds large buffers (numpy arrays, ``bytearray``,
anything whose pickling hands out :class:`pickle.PickleBuffer` s) is pickled
with its buffers *out of band*: the pickle stream keeps only their place,
and each buffer of at least :data:`THRESHOLD` bytes is written once into a
*segment*, a file in ``/dev/shm`` (memory, not disk) that the receiver maps
and reads in place. A message then carries the stream and ``refs``, one
``(segment, offset, length)`` per buffer.

* The parent writes a batch's buffers into one segment; the worker maps it
  read-only, so the arrays it unpickles are read-only views of it (no
  copy). The parent removes the segment once the batch is answered.
* A worker writes its results' buffers into a segment of its own; the
  parent maps it and the results are read-only views of it. The segment is
  removed when the last of those results is garbage collected (or at the
  end of the run, whichever is first: a mapping outlives its name).
* A result that feeds the next task of the chain goes on as a reference to
  the segment it is in (a numpy array, found by its address): it is not
  copied again in this process.

Segments are named ``imap-<parent pid>-<run>-...``: the run removes every
segment of its own when it stops (and at interpreter exit), and a run that
starts removes those of parents that no longer exist (killed with ``kill
-9``). Where there is no ``/dev/shm`` (macOS), the temporary directory is
used instead; the operating system's page cache keeps it in memory.

This is the parent's half (:class:`Arena`, the sweeping of stale segments);
the half that runs in worker processes is :mod:`imap.worker.shm`.
"""

from __future__ import annotations

import multiprocessing.util
import os
import pickle
import threading
import uuid
import weakref
from typing import Any

from ..worker.shm import (
    PREFIX,
    PROTOCOL,
    THRESHOLD,
    Pool,
    Segment,
    address_of,
    directory,
    map_segment,
    sweep,
    unlink,
)

__all__ = ["Arena", "THRESHOLD", "sweep_stale"]


def _segment_under(obj: Any) -> Segment | None:
    """The segment whose memory ``obj`` (an array unpickled from a segment,
    or a view of one) lies in, following ``base`` and memoryview owners."""
    for _ in range(16):
        if isinstance(obj, Segment):
            return obj
        if isinstance(obj, memoryview):
            obj = obj.obj
            continue
        obj = getattr(obj, "base", None)
        if obj is None:
            return None
    return None


class Arena:
    """The segments of one run of a process pool, on the parent's side.

    Args:
        threshold: buffers of at least this many bytes go out of band.
    """

    def __init__(self, threshold: int = THRESHOLD) -> None:
        self.threshold = threshold
        self.run = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._inputs = Pool(f"{self.run}-p")
        self._mapped: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        # Reentrant: a mapping's finalizer (_done_reading) may run inside a
        # locked section, when a collection frees the last array of it there.
        self._lock = threading.RLock()
        self._freed: dict = {}   # worker pid -> names of its segments this process is done with
        # At interpreter exit, after multiprocessing has ended the worker
        # processes (negative exit priority), and at close: the run's
        # segments go, and this process writes none after that (its Feeder
        # thread may still be packing items while the interpreter exits).
        self._ended: list = [False]
        self._finalizer = multiprocessing.util.Finalize(
            self, _end_run, args=(self.run, self._lock, self._ended), exitpriority=-10)

    # -- items, to a worker ------------------------------------------------------------

    def pack(self, obj: Any) -> tuple[bytes, tuple, str | None]:
        """``obj`` pickled for a local worker: ``(stream, refs, segment)``,
        the large buffers out of band (``segment``: the new segment written
        for them, None if none was; ``refs`` empty if no buffer is large)."""
        large: list = []

        def keep_in_band(buffer: pickle.PickleBuffer) -> bool:
            if buffer.raw().nbytes < self.threshold:
                return True
            large.append(buffer)
            return False

        stream = pickle.dumps(obj, PROTOCOL, buffer_callback=keep_in_band)
        if not large:
            return stream, (), None
        refs: list = [None] * len(large)
        fresh = []
        for i, buffer in enumerate(large):
            ref = self._ref_of(buffer)
            if ref is None:
                fresh.append(i)
            else:
                refs[i] = ref
        segment = None
        if fresh:
            with self._lock:
                if self._ended[0]:
                    raise RuntimeError("the run has ended: no segment is written any more")
                segment, written = self._inputs.write([large[i] for i in fresh])
            for i, ref in zip(fresh, written, strict=True):
                refs[i] = ref
        return stream, tuple(refs), segment

    def done_with(self, segment: str) -> None:
        """The worker answered the batch whose items are in ``segment``."""
        with self._lock:
            self._inputs.release(segment)

    def _ref_of(self, buffer: pickle.PickleBuffer) -> tuple | None:
        """The ref of ``buffer`` if it lies in a segment this process mapped
        (a result going on to the next task): no copy is made."""
        if not self._mapped:
            return None
        raw = buffer.raw()
        seg = _segment_under(raw.obj)
        if seg is None or seg.name not in self._mapped:
            return None
        address = address_of(buffer)
        if address is None:
            return None
        offset = address - seg.address
        if 0 <= offset and offset + raw.nbytes <= len(seg):
            return (seg.name, offset, raw.nbytes)
        return None

    # -- results, from a worker ----------------------------------------------------------

    def views(self, refs: list) -> list:
        """Read-only views of the buffers ``refs`` (of segments a worker wrote):
        each segment is mapped once and removed when nothing uses it."""
        mapped: dict = {}
        out = []
        for name, offset, length in refs:
            seg = mapped.get(name)
            if seg is None:
                seg = mapped[name] = map_segment(name)
                weakref.finalize(seg, self._done_reading, name)
                self._mapped[name] = seg
            out.append(memoryview(seg)[offset:offset + length].toreadonly())
        return out

    def _done_reading(self, name: str) -> None:
        """Nothing here uses worker segment ``name`` any more: its worker
        may write it again (told with its next batch, :meth:`freed`)."""
        worker = name[len(self.run) + 2:].split("-", 1)[0]   # "<run>-w<pid>-<n>"
        with self._lock:
            self._freed.setdefault(worker, []).append(name)

    def freed(self, pid: int) -> tuple:
        """The segments of worker ``pid`` that it may write again (once)."""
        with self._lock:
            return tuple(self._freed.pop(str(pid), ()))

    def close(self) -> None:
        """The run ended: remove every segment of it (mappings stay valid)."""
        with self._lock:
            self._inputs.close()
            self._freed.clear()
        self._finalizer()


def _end_run(run: str, lock: threading.RLock, ended: list) -> None:
    """End a run's shared memory: no segment is written after this one
    returns, and every segment of the run is removed."""
    with lock:
        ended[0] = True
        sweep(run)


def sweep_stale() -> int:
    """Remove the segments of parents that no longer exist; how many."""
    try:
        names = os.listdir(directory())
    except OSError:
        return 0
    removed = 0
    for name in names:
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        unlink(name)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
