"""Functions that tests send to worker processes.

This module is deliberately light (standard library only, no pytest, no imap):
process workers import it when they unpickle a function defined here, and a
heavy import would slow every worker start-up.

Blocking functions never wait for ever: they wait for a file to appear, up to
``HOLD_LIMIT`` seconds, so that a worker left behind by a failing test ends on
its own.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import imap

HOLD_LIMIT = 60.0


# --- pure functions -------------------------------------------------------------------


def add_one(x):
    return x + 1


def drop_odd(x):
    """Drops an odd item (imap.DROP), keeps an even one."""
    return imap.DROP if x % 2 else x


def double(x):
    return 2 * x


def minus_three(x):
    return x - 3


def square(x):
    return x * x


def ident(x):
    return x


def power(x, exponent=2, offset=0):
    return x**exponent + offset


def worker_pid(x):
    """The pid of the process that evaluated the tasklet."""
    return os.getpid()


# --- failing functions ----------------------------------------------------------------


def fail_on(x, bad):
    """Raise ``ValueError`` for item ``bad``; otherwise ``10 * x``."""
    if x == bad:
        raise ValueError(f"bad item {x}")
    return 10 * x


class UnpicklableError(Exception):
    """An exception that cannot travel between processes (it holds a lock)."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


def raise_unpicklable_on(x, bad):
    if x == bad:
        raise UnpicklableError(f"unpicklable failure on {x}")
    return 10 * x


def return_lock_on(x, bad):
    """Return an unpicklable result (a lock) for item ``bad``."""
    if x == bad:
        return threading.Lock()
    return 10 * x


# --- waiting on files -----------------------------------------------------------------


def wait_for_path(path, limit=HOLD_LIMIT):
    """Block until ``path`` exists (or ``limit`` seconds pass); True if it does."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def write_atomically(path, text):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def hold_until_released(x, held, release_path):
    """``10 * x``; items in ``held`` first wait for ``release_path`` to exist."""
    if x in held:
        wait_for_path(release_path)
    return 10 * x


def report_pid_and_hold(x, victim, directory):
    """For item ``victim``: write this process's pid to ``directory/pid`` and
    block (until ``directory/release`` exists). Other items: ``2 * x``."""
    if x == victim:
        write_atomically(os.path.join(directory, "pid"), str(os.getpid()))
        wait_for_path(os.path.join(directory, "release"))
    return 2 * x


def report_pid_and_hold_first_attempt(x, victim, directory):
    """Like :func:`report_pid_and_hold`, but only the first attempt at item
    ``victim`` blocks; a retry returns ``2 * x`` at once."""
    if x == victim:
        marker = os.path.join(directory, "attempted")
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return 2 * x
        write_atomically(os.path.join(directory, "pid"), str(os.getpid()))
        wait_for_path(os.path.join(directory, "release"))
    return 2 * x


# --- dying workers --------------------------------------------------------------------


def exit_on(x, victim):
    """The worker process exits (``os._exit(1)``) at item ``victim``."""
    if x == victim:
        os._exit(1)
    return 2 * x


def segfault_on(x, victim):
    """The worker process dies of SIGSEGV at item ``victim``."""
    if x == victim:
        os.kill(os.getpid(), signal.SIGSEGV)
    return 2 * x


def exit_on_first_attempt(x, victim, marker):
    """Exit the worker at the first attempt at item ``victim`` only."""
    if x == victim:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return 2 * x
        os._exit(1)
    return 2 * x


def exit_on_every_attempt(x, victim, log):
    """Exit the worker at every attempt at item ``victim``, appending a line to
    ``log`` per attempt."""
    if x == victim:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        os._exit(1)
    return 2 * x


# --- initializers ---------------------------------------------------------------------

_INIT_VALUE = None


def set_init_value(value):
    global _INIT_VALUE
    _INIT_VALUE = value


def read_init_value(x):
    return (x, _INIT_VALUE)


def record_init(directory):
    """Create ``directory/init.<pid>``; fails if this process already did."""
    path = os.path.join(directory, f"init.{os.getpid()}")
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))


def was_initialized(x, directory):
    return os.path.exists(os.path.join(directory, f"init.{os.getpid()}"))


# --- counting how often a function travels --------------------------------------------


def _append_line(path, line):
    fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def log_start(x, stage, log_path, pause):
    """Append ``"<stage> <x>"`` to ``log_path`` as it starts, sleep ``pause``
    seconds (the work), return ``x``."""
    _append_line(log_path, f"{stage} {x}")
    time.sleep(pause)
    return x


class CountingAdder:
    """A callable (``x + 1``) that logs every pickling and unpickling of itself.

    Each line of the log is ``"pickle <pid>"`` or ``"unpickle <pid>"``.
    """

    def __init__(self, log_path):
        self.log_path = log_path

    def __reduce__(self):
        _append_line(self.log_path, f"pickle {os.getpid()}")
        return (_rebuild_counting_adder, (self.log_path,))

    def __call__(self, x):
        return x + 1


def _rebuild_counting_adder(log_path):
    _append_line(log_path, f"unpickle {os.getpid()}")
    return CountingAdder(log_path)


def raise_local_class_on(x, bad):
    """Raise, for ``bad``, an exception of a class defined in this call:
    ``pickle`` cannot carry it (a local class), cloudpickle can."""
    if x == bad:
        class LocalError(Exception):
            pass

        raise LocalError(f"local failure on {x}")
    return x


def sleep_and_return(pair):
    """``(value, seconds)``: sleep that long, return the value."""
    value, seconds = pair
    time.sleep(seconds)
    return value


def sleep_and_return_value(x):
    """``x``, after a short sleep for one item in seven (uneven tasklet times)."""
    if x % 7 == 0:
        time.sleep(0.0005)
    return x


def record_and_exit_on(x, victim, log, pause=0.0):
    """Append ``x`` to ``log`` (one line per call), sleep ``pause`` seconds,
    then exit the worker at item ``victim`` or return ``2 * x``."""
    _append_line(log, str(x))
    if pause:
        time.sleep(pause)
    if x == victim:
        os._exit(1)
    return 2 * x


def record_and_exit_on_any(x, victims, log):
    """:func:`record_and_exit_on` with several victims."""
    _append_line(log, str(x))
    if x in victims:
        os._exit(1)
    return 2 * x


def log_and_return(x):
    """Log ``x`` at INFO and, for odd ``x``, a WARNING with an exception."""
    import logging

    logger = logging.getLogger("imap_test.worker")
    logger.info("item %d", x)
    if x % 2:
        try:
            raise ValueError(f"odd {x}")
        except ValueError:
            logger.warning("odd item %d", x, exc_info=True)
    return x


def log_initializer():
    """An initializer that logs a WARNING."""
    import logging

    logging.getLogger("imap_test.worker").warning("initializer ran")


# --- answers the parent cannot read -------------------------------------------------------


class ArgsMismatch(Exception):
    """An exception whose ``__init__`` does not take its ``args``: it pickles
    but does not unpickle (a common mistake in user code)."""

    def __init__(self, a, b):
        super().__init__(a)


def return_args_mismatch_on(x, bad):
    """``x``; for ``bad``, an ArgsMismatch returned as a value."""
    return ArgsMismatch("v", 1) if x == bad else x


def _only_in(pid):
    if os.getpid() != pid:
        raise RuntimeError("this object unpickles only in the process that made it")
    return "unreadable"


class OnlyHere:
    """Pickles anywhere; unpickles only in the process that pickled it."""

    def __reduce__(self):
        return _only_in, (os.getpid(),)


def return_unreadable_on(x, bad):
    """``x``; for ``bad``, an object the parent cannot unpickle."""
    return OnlyHere() if x == bad else x


# -- functional dependencies (imap.require / imap.depend) -------------------------------

CAPABLE = False   # set in one worker process by claim_capability


def claim_capability(directory):
    """Initializer: the first worker process to claim the marker file in
    ``directory`` is the capable one (CAPABLE), the others are not."""
    global CAPABLE
    try:
        fd = os.open(os.path.join(directory, "capable"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    CAPABLE = True


def is_capable():
    return CAPABLE


def never():
    return False


@imap.depend(is_capable)
def pid_if_capable(x):
    """Runs only where is_capable() (the pid, to see where)."""
    return (x, os.getpid())


@imap.require("module_nowhere_to_be_found_xyz")
def needs_missing_module(x):
    return x


@imap.depend(never)
def runs_nowhere(x):
    return x


def refuse_unless_capable(x):
    """Raises UnmetDependency by hand where not CAPABLE (tasklet by tasklet)."""
    if not CAPABLE:
        raise imap.UnmetDependency(f"item {x}: not the capable worker")
    return (x, os.getpid())


def refuse_always_on(x, bad):
    if x == bad:
        raise imap.UnmetDependency(f"item {x} refused here")
    return x


def by_kind(pair):
    """(i, pid) for ``(i, kind)``: "plain" runs anywhere, "capable" only
    where CAPABLE (else UnmetDependency), "nowhere" is refused everywhere."""
    i, kind = pair
    if kind == "nowhere" or (kind == "capable" and not CAPABLE):
        raise imap.UnmetDependency(f"item {i} ({kind}) not here")
    return (i, os.getpid())


def on_dask_worker(address):
    import distributed
    return distributed.get_worker().address == address


def dask_where(x):
    import distributed
    return (x, distributed.get_worker().address)


# -- arrays (numpy objects are passed in; this module does not import numpy) -------------

def array_double(x):
    return x * 2


class Holder:
    """An item of a class from the user's modules (sent by value to remote hosts)."""

    def __init__(self, array):
        self.array = array


def holder_double(h):
    return h.array * 2


def array_writeable(x):
    return bool(x.flags.writeable)


def array_plus_one(x):
    return x + 1


def array_write_in_place(x):
    x += 1   # what arrives from shared memory is read-only: a ValueError that says so
    return x


KEPT = []


def array_keep_and_sum_kept(x):
    """Keep ``x`` past the call; the sum of the first element of every kept array."""
    KEPT.append(x)
    return sum(float(k[0]) for k in KEPT)


def array_report_pid_and_hold(x, victim, directory):
    """``x``; for the array whose values are ``victim``, write the pid and hold until killed."""
    if float(x[0]) == victim:
        write_atomically(os.path.join(directory, "pid"), str(os.getpid()))
        while True:
            time.sleep(0.05)
    return x


# -- results made in many ways (arrays out of band) ---------------------------------------


KEPT_RESULTS: list = []


def array_op(spec):
    """One of several ways of making a result array (the property test of
    results out of band): ``spec`` is ``(kind, bytes, seed)``."""
    import numpy
    kind, size, seed = spec
    x = numpy.full(max(size // 8, 1), float(seed))
    if kind == "fresh":
        return x * 2
    if kind == "view":
        return (x * 2)[1:]
    if kind == "pair":
        return seed, x * 3
    if kind == "kept":
        y = x * 2
        KEPT_RESULTS.append(y)
        if len(KEPT_RESULTS) > 1:
            KEPT_RESULTS[-2][:] = -1.0
        del KEPT_RESULTS[:-2]
        return y
    if kind == "held":   # kept, never written over
        y = x * 2
        KEPT_RESULTS.append(y)
        del KEPT_RESULTS[:-2]
        return y
    if kind == "zeros":
        temporary = x + 1.0
        del temporary
        return numpy.zeros(x.shape)
    if kind == "grown":
        x.resize(2 * x.size, refcheck=False)
        return x
    small = numpy.ones(2)   # "small": many small allocations
    for _ in range(50):
        small = small + 1.0
    return x - small[0]


def array_plus_mismatched(x):
    """``x`` plus an array one longer: numpy's broadcasting ValueError."""
    import numpy
    return x + numpy.ones(x.size + 1)


# -- what a function can rely on (test_soundness) ------------------------------------------

def ledger_write(path, key):
    """Append ``key`` as one line to the ledger ``path`` (one write of a
    line with O_APPEND: lines of concurrent callers never mix)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{key}\n".encode())
    finally:
        os.close(fd)


def _bad(x):
    """Raise ValueError for every third item (a check that fails)."""
    if int(x if not hasattr(x, "shape") else x[0]) % 3 == 0:
        raise ValueError(f"item {int(x if not hasattr(x, 'shape') else x[0])} is bad")
    return 0.0


LEDGER_KEPT: list = []


def ledger_call(x, path, mode):
    """One call of a function the soundness suite records: ``x`` is an int,
    or a float64 array whose first value is the item's number; the call is
    written to the ledger ``path`` first, then it behaves as ``mode`` says.

    * ``return``: ``2 * x``;
    * ``raise``: ValueError for every third item, else ``2 * x``;
    * ``raise_after_temporaries``: ``(x * 2) + _bad(x)`` on a 1 MiB array
      (an unnamed large temporary, then the exception);
    * ``catch``: the same inside try/except ValueError, which returns None;
    * ``large_result``: a 1 MiB array of the item's number;
    * ``keep``: that array, kept in a module global as well.
    """
    import numpy
    key = int(x if not hasattr(x, "shape") else x[0])
    ledger_write(path, key)
    if mode == "return":
        return 2 * key
    if mode == "raise":
        _bad(key)
        return 2 * key
    array = x if hasattr(x, "shape") else numpy.full(2 ** 17, float(key))
    if mode == "raise_after_temporaries":
        return float(((array * 2) + _bad(array))[0])
    if mode == "catch":
        try:
            return float(((array * 2) + _bad(array))[0])
        except ValueError:
            return None
    result = numpy.full(2 ** 17, float(key))
    if mode == "keep":
        LEDGER_KEPT.append(result)
        del LEDGER_KEPT[:-4]
    return result


def count_in_global(x, token):
    """``(pid, n)``: this call is the n-th of ``token`` in this process (a
    counter in a process-wide global, under a lock for thread workers; kept
    in a module of ``sys.modules`` so that a function sent by value finds
    the same state at every call)."""
    import sys
    import types
    state = sys.modules.get("_soundness_counts")
    if state is None:
        fresh = types.ModuleType("_soundness_counts")
        fresh.lock = threading.Lock()
        fresh.counts = {}
        state = sys.modules.setdefault("_soundness_counts", fresh)
    with state.lock:
        state.counts[token] = state.counts.get(token, 0) + 1
        return os.getpid(), state.counts[token]


def sum_in_a_thread(x):
    """``sum(range(x))`` computed by a thread the function starts and joins."""
    out = []
    worker = threading.Thread(target=lambda: out.append(sum(range(x))))
    worker.start()
    worker.join()
    return out[0]


def square_in_a_child(x):
    """``x * x`` computed in a child process made with os.fork(), read back
    through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: answer, then end without running anything else
        try:
            os.write(w, str(x * x).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        data = b""
        while chunk := os.read(r, 64):
            data += chunk
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return int(data)


def make_closure(offset):
    """A closure over ``offset`` whose body uses a generator."""
    def shifted_squares(x):
        return sum(i * i + offset for i in range(x))
    return shifted_squares


def pid_file_and_hold(x, seconds, directory):
    """Write this process's pid to ``directory/pid-<x>``, then sleep
    ``seconds`` (a long call the test ends by killing or stopping)."""
    write_atomically(os.path.join(directory, f"pid-{x}"), str(os.getpid()))
    time.sleep(seconds)
    return x


def hang_on_some(x, hung):
    """``2 * x``; the items in ``hung`` first sleep for an hour."""
    if x in hung:
        time.sleep(3600)
    return 2 * x
