"""numpy arrays that a process worker allocates, in shared memory.

A result that holds a large buffer reaches the parent through a segment
(:mod:`imap.shm`): the worker copies the buffer into one. For a numpy array
that copy can be skipped: numpy lets a program choose where arrays get their
memory (its memory-handler API, numpy 1.22 and later), so a worker can have
numpy allocate its large arrays in segments of its own
(:meth:`imap.shm.Pool.allocate`). A result that is such an array, and that
nothing else in the worker refers to, then goes to the parent as a reference
to its segment (:func:`handover`): computed once, never copied. What the
parent sees is read-only, as before; the worker cannot write into it later,
since it keeps no reference to it.

The handler costs every numpy allocation in the worker a call into Python
(a few microseconds, against a fraction of one for numpy's own), large or
small. So it is in force only while a tasklet runs, only for a function
whose items are large numpy arrays or whose results have been (:data:`MIN_BYTES`
or more, their own memory, nothing else referring to them), and only while
that pays: a function whose batches make more allocator calls than their
handed-over bytes are worth (:data:`BYTES_PER_CALL` per call) goes back to
numpy's handler for the rest of the run. Threads the function starts keep
numpy's handler (the handler is set for the worker's own context only).

A Python callback cannot return with an exception set, and numpy frees
arrays in some of its C error paths with its exception set: the callbacks
take such an exception over, and the tasklet runs again under numpy's own
handler (see :meth:`Allocator._guarded`), so what it returns or raises is
numpy's.

Linux only (``/dev/shm`` and ``posix_fallocate``: a full ``/dev/shm`` makes
an allocation fall back to numpy's memory, never a ``SIGBUS``). A process
the function forks shares these arrays with the worker instead of getting a
copy of them.

This module imports only the standard library; numpy is used only when a
worker has imported it already, or is about to unpickle numpy arrays.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from typing import Any

from . import shm

MIN_BYTES = 1 << 20          # an array smaller than this is copied, as any buffer
BYTES_PER_CALL = 32 << 10    # the copying one allocator call must save (~3 us vs ~0.15 ms/MiB)
# References to a result nothing else holds, as handover() sees them: its
# list (or tuple), the loop's variable, getrefcount's argument, and for an
# array the PickleBuffer its pickling made.
SOLE = 4
SOLE_CONTAINER = 3
HANDLER_NAME = b"imap_shared_memory"

_SET_HANDLER = 304           # PyDataMem_SetHandler in numpy's C-API table (fixed since 1.22)
_KEPT: list = []             # the handler's parts: never freed (arrays of it may outlive all else)
_AS_IS = contextlib.nullcontext()


def supported() -> bool:
    """Whether this process can lend segments to numpy (Linux ``/dev/shm``)."""
    return (sys.platform.startswith("linux") and hasattr(os, "posix_fallocate")
            and shm.directory() == "/dev/shm")


class Allocator:
    """numpy's large allocations of one worker process in segments of its
    result pool ``pool``, function by function (see the module docstring).

    ``state`` maps a function's key to True (the handler is in force for its
    batches) or False (not worth it); a function not in it has not returned
    a large array yet.
    """

    def __init__(self, pool: shm.Pool) -> None:
        self.pool = pool
        self.state: dict = {}
        self.calls = [0]          # allocator calls so far (a cell the callbacks share)
        self.lost: list = []      # exceptions the callbacks took over (see _handler)
        self._set: Any = None     # PyDataMem_SetHandler (None: not installed; False: cannot be)
        self._capsule: Any = None
        self.key: Any = None      # the function of the batch running

    def batch(self, key: Any, refs: tuple = (), data: Any = b"") -> Any:
        """The context of one batch of the function ``key`` (see
        :meth:`_batch`); nothing to do while numpy is not imported and the
        items hold no large buffer."""
        self.key = key   # a result may still show the function returns large arrays
        if not refs and "numpy" not in sys.modules:
            return _AS_IS
        return self._batch(key, refs, data)

    @contextlib.contextmanager
    def _batch(self, key: Any, refs: tuple, data: Any) -> Iterator[Any]:
        """Run one batch of the function ``key``: yields None, or a guard
        (``guard(call)``: ``call`` with the handler in force, see
        :meth:`_guarded`) when the handler is worth it for the function.
        ``refs`` and ``data``: the batch's items (their large buffers and
        their pickle): a function not tried yet whose items are large numpy
        arrays is tried at once (its results are most likely large arrays
        too, and one batch tells), not after a batch of copies."""
        state = self.state.get(key)
        if state is None and _large_arrays(refs, data):
            state = self.state[key] = True
        on = state is True and self._install()
        calls, handed = self.calls[0], self.pool.handed
        self.lost.clear()
        try:
            yield (lambda call: self._guarded(key, call)) if on else None
        finally:
            if on and self.state.get(key) is True:
                made = self.calls[0] - calls
                saved = self.pool.handed - handed
                if made * BYTES_PER_CALL > saved:
                    self.state[key] = False

    def _guarded(self, key: Any, call: Any) -> Any:
        """``call(item)`` (one tasklet) with the handler in force.

        A callback that numpy calls while an exception of its own is
        pending (a C error path freeing an array) cannot hand it back: a
        Python callback never returns with an exception set. The callback
        takes it over (``lost``) instead; the tasklet, which saw numpy fail
        without an exception, then runs again with numpy's own handler, so
        its result or error is what it would have been, and the function
        keeps numpy's handler from then on."""
        set_handler, capsule, lost = self._set, self._capsule, self.lost

        def guarded(item: Any) -> Any:
            if self.state.get(key) is not True:   # turned off in this batch
                return call(item)
            set_handler(capsule)
            try:
                value = call(item)
            except BaseException:
                if not lost:
                    raise
                value = None
            finally:
                set_handler(None)
            if lost:
                lost.clear()
                self.state[key] = False
                return call(item)
            return value
        return guarded

    def handover(self, answer: tuple) -> frozenset:
        """The addresses of the arrays among the results of ``answer`` (a
        batch's, and the items of a tuple or list result) that lie in a
        segment of the pool and that nothing else refers to: they go to
        the parent without a copy (:meth:`imap.shm.Pool.write`). Called
        once the answer is pickled, only if it holds large buffers."""
        np = sys.modules.get("numpy")
        if np is None:
            return frozenset()
        ndarray = np.ndarray
        found: set = set()
        for value in answer[0]:
            kind = type(value)
            if kind is ndarray:
                if sys.getrefcount(value) == SOLE:
                    self._consider(value, found)
            elif (kind is tuple or kind is list) and sys.getrefcount(value) == SOLE_CONTAINER:
                for item in value:
                    if type(item) is ndarray and sys.getrefcount(item) == SOLE:
                        self._consider(item, found)
        return frozenset(found)

    def _consider(self, array: Any, found: set) -> None:
        if array.nbytes < MIN_BYTES or array.dtype.hasobject:
            return
        flags = array.flags
        if not flags.owndata or not (flags.c_contiguous or flags.f_contiguous):
            return
        address = array.__array_interface__["data"][0]
        if self.pool.holds(address):
            found.add(address)
        elif self.key not in self.state:   # a function seen to return large arrays
            self.state[self.key] = True

    def _install(self) -> bool:
        if self._set is None:
            if "numpy" not in sys.modules:
                return False   # not yet: the handler is numpy's
            try:
                self._set, self._capsule = _handler(self.pool, self.calls, self.lost)
            except Exception:   # no numpy handler API here: copies, as before
                self._set = False
        return self._set is not False


def _large_arrays(refs: tuple, data: Any) -> bool:
    """Whether a batch's items hold a buffer of :data:`MIN_BYTES` or more
    and numpy arrays (numpy is imported here then: unpickling them will)."""
    if not any(length >= MIN_BYTES for _, _, length in refs):
        return False
    if type(data) is not bytes or b"numpy" not in data:
        return False
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def _handler(pool: shm.Pool, calls: list, lost: list) -> tuple:
    """numpy's memory handler for ``pool``: ``(set, capsule)``, ``set(capsule)``
    putting it in force in this context and ``set(None)`` numpy's own."""
    np = sys.modules["numpy"]
    if not hasattr(np, "lib") or np.lib.NumpyVersion(np.__version__) < "1.22.0":
        raise RuntimeError("numpy 1.22 or later has the memory handler API")
    umath = (sys.modules.get("numpy._core._multiarray_umath")
             or sys.modules.get("numpy.core._multiarray_umath"))
    api = ctypes.pythonapi
    get_pointer = api.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    table = ctypes.cast(get_pointer(umath._ARRAY_API, None), ctypes.POINTER(ctypes.c_void_p))
    set_handler = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object)(table[_SET_HANDLER])
    reset = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p)(table[_SET_HANDLER])

    libc = ctypes.CDLL(None)
    malloc, calloc, realloc, free = libc.malloc, libc.calloc, libc.realloc, libc.free
    for f in (malloc, calloc, realloc):
        f.restype = ctypes.c_void_p
    malloc.argtypes = [ctypes.c_size_t]
    calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    free.restype = None
    free.argtypes = [ctypes.c_void_p]
    memmove = ctypes.memmove

    # A foreign function of the Python API raises the exception pending, if
    # any, once it returns: the callbacks call it first to take over an
    # exception numpy has set (a Python callback cannot return with one set).
    pending = api.Py_IsInitialized
    pending.restype = ctypes.c_int
    pending.argtypes = []

    # Everything a callback uses is bound to it: they may run while the
    # interpreter exits and module globals are gone (an array freed late).
    def enter(calls=calls, pending=pending, lost=lost):
        """A callback's first step: take over an exception numpy has set,
        and count the call."""
        try:
            pending()
        except BaseException as exc:
            lost.append(exc)
        calls[0] += 1

    def lend(size, zero, pool=pool, least=MIN_BYTES):
        """A segment's address for an array of ``size`` bytes (None: numpy's memory)."""
        if size < least:
            return None
        try:
            return pool.allocate(size, zero=zero)
        except Exception:
            return None

    def on_malloc(ctx, size, enter=enter, lend=lend, malloc=malloc):
        enter()
        return lend(size, False) or malloc(size)

    def on_calloc(ctx, count, size, enter=enter, lend=lend, calloc=calloc):
        enter()
        return lend(count * size, True) or calloc(count, size)

    def on_free(ctx, address, size, enter=enter, pool=pool, free=free):
        enter()
        try:
            if pool.holds(address) and pool.unhold(address):
                return
        except Exception:
            return   # the segment is left to the end of the run
        free(address)

    def on_realloc(ctx, address, size, enter=enter, lend=lend, pool=pool, malloc=malloc,
                   realloc=realloc, memmove=memmove):
        enter()
        if not pool.holds(address):
            return realloc(address, size)
        try:
            have = pool.size_at(address)
            if size <= have:
                return address
            moved = lend(size, False) or malloc(size)
            if moved:
                memmove(moved, address, have)
                pool.unhold(address)
            return moved
        except Exception:
            return None

    malloc_t = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    calloc_t = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                ctypes.c_size_t)
    realloc_t = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_size_t)
    free_t = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)

    class Allocator(ctypes.Structure):   # PyDataMemAllocator
        _fields_ = [("ctx", ctypes.c_void_p), ("malloc", malloc_t), ("calloc", calloc_t),
                    ("realloc", realloc_t), ("free", free_t)]

    class Handler(ctypes.Structure):     # PyDataMem_Handler, version 1
        _fields_ = [("name", ctypes.c_char * 127), ("version", ctypes.c_uint8),
                    ("allocator", Allocator)]

    handler = Handler(HANDLER_NAME, 1, Allocator(
        None, malloc_t(on_malloc), calloc_t(on_calloc), realloc_t(on_realloc),
        free_t(on_free)))
    capsule_name = ctypes.c_char_p(b"mem_handler")
    new_capsule = api.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    capsule = new_capsule(ctypes.addressof(handler), capsule_name, None)
    kept = [handler, capsule_name, capsule, on_malloc, on_calloc, on_realloc, on_free]
    _KEPT.append(kept)
    api.Py_IncRef(ctypes.py_object(kept))   # never freed, even at interpreter exit

    def put(capsule: Any) -> None:
        if capsule is None:
            reset(None)
        else:
            set_handler(capsule)
    return put, capsule
