"""Helpers shared by the engine's tests (not fixtures: plain functions)."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


# --- waiting for a condition ----------------------------------------------------------


class Collect(logging.Handler):
    """A handler that keeps the records it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def collecting(name: str = "imap_test.worker", level: int = logging.INFO) -> Iterator[Collect]:
    """The records that logger ``name`` (set to ``level`` meanwhile) handles in the block."""
    logger = logging.getLogger(name)
    handler, old = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds.

    This waits *for a condition*; it never assumes that something happened
    because time passed.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {what or predicate}")
        time.sleep(0.005)


def read_when_written(path: Path, timeout: float = 30.0) -> str:
    """The contents of ``path`` once a worker has written it (atomically)."""
    wait_until(path.exists, timeout, f"{path} to be written")
    return path.read_text()


# --- threads and processes left behind ------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    threads: frozenset[threading.Thread]
    children: frozenset[int]


def snapshot() -> Snapshot:
    """The threads of this process and its multiprocessing children, now."""
    return Snapshot(
        frozenset(threading.enumerate()),
        frozenset(p.pid for p in multiprocessing.active_children()),
    )


def leftovers(before: Snapshot) -> tuple[list[threading.Thread], list[int]]:
    """Threads and child processes alive now that were not alive ``before``."""
    threads = [t for t in threading.enumerate() if t not in before.threads and t.is_alive()]
    children = [p.pid for p in multiprocessing.active_children() if p.pid not in before.children]
    return threads, children


def describe_leftovers(before: Snapshot) -> str:
    threads, children = leftovers(before)
    parts = []
    if threads:
        parts.append("threads " + ", ".join(repr(t.name) for t in threads))
    if children:
        parts.append("child processes " + ", ".join(map(str, children)))
    return "; ".join(parts)


def assert_no_leftovers(before: Snapshot, grace: float = 0.0) -> None:
    """No thread or child process started since ``before`` is still alive.

    ``grace`` = 0 checks at once (what ``stop()`` promises); a positive grace
    polls that long for things that shut down on their own.
    """
    deadline = time.monotonic() + grace
    while True:
        threads, children = leftovers(before)
        if not threads and not children:
            return
        if time.monotonic() >= deadline:
            raise AssertionError("left running: " + describe_leftovers(before))
        time.sleep(0.01)


def new_worker_pids(before: Snapshot) -> set[int]:
    """Pids of multiprocessing children started since ``before``."""
    return {p.pid for p in multiprocessing.active_children() if p.pid not in before.children}


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


# --- the weave and the legal way to consume several ends ------------------------------


def weave_order(counts: Sequence[int], stride: int) -> list[int]:
    """Task ids in the order their tasklets are drawn.

    ``counts[k]`` is the number of items of task k. Each round gives every
    unfinished task up to ``stride`` tasklets, in task order; a task whose input
    is exhausted drops out.
    """
    remaining = list(counts)
    active = [k for k, n in enumerate(remaining) if n > 0]
    order: list[int] = []
    while active:
        for k in list(active):
            take = min(stride, remaining[k])
            order.extend([k] * take)
            remaining[k] -= take
            if remaining[k] == 0:
                active.remove(k)
    return order


def consume_round_robin(ends: Sequence, stride: int, timeout: float | None = 30.0) -> list[list]:
    """Take every result of the task iterators ``ends`` the seed's legal way.

    Round-robin over the ends in task order, at most ``stride`` results from
    one end at a time, so result n of end k comes before result n of end k+1.
    An exhausted end drops out.
    """
    results: list[list] = [[] for _ in ends]
    active = list(range(len(ends)))
    while active:
        for k in list(active):
            for _ in range(stride):
                try:
                    results[k].append(ends[k].next(timeout=timeout))
                except StopIteration:
                    active.remove(k)
                    break
    return results


# --- scripts run in a fresh interpreter -----------------------------------------------


def script_env() -> dict[str, str]:
    """Environment for a child interpreter that imports ``imap`` from this tree
    and the helper modules of ``tests/``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), str(TESTS), env.get("PYTHONPATH")])
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def kill_group(proc: subprocess.Popen) -> None:
    """Kill a process started with ``start_new_session=True`` and all it started;
    reap it.

    Its pipes stay open, so the caller can still collect what it wrote
    (``communicate()`` after a timeout). ``imap.embedded.kill_group`` closes
    them instead: ``local()`` reads nothing after the kill.
    """
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# A program whose IMap's two worker processes are both inside a long call;
# it says "running" once they are, then ends as ``ending`` says.
HELD_WORKERS = """
import os, sys, time
sys.path[:0] = [{tests!r}, {root!r}]
import worker_funcs as wf
from imap import IMap

if __name__ == "__main__":
    m = IMap(worker_num=2, start_method={method!r})
    task = m.add_task(wf.pid_file_and_hold, range(2), args=(60, {directory!r}))
    m.start()
    while len([n for n in os.listdir({directory!r}) if n.startswith("pid-")]) < 2:
        time.sleep(0.02)
    print("running", flush=True)
    {ending}
"""


@contextlib.contextmanager
def held_workers(directory: Path, method: str,
                 ending: str = "time.sleep(120)") -> Iterator[tuple[subprocess.Popen, list[int]]]:
    """Run :data:`HELD_WORKERS` (start method ``method``; its workers write
    their pids into ``directory``) in a session of its own; yield the
    process and its two workers' pids once both are inside their call.
    The whole session is killed on the way out."""
    code = HELD_WORKERS.format(tests=str(TESTS), root=str(ROOT), method=method,
                               directory=str(directory), ending=ending)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            env=script_env(), start_new_session=True)
    try:
        line = proc.stdout.readline().strip()
        assert line == b"running", f"the program did not start its workers: {line!r}"
        workers = [int((directory / n).read_text()) for n in os.listdir(directory)
                   if n.startswith("pid-")]
        assert len(workers) == 2, workers
        yield proc, workers
    finally:
        kill_group(proc)
        proc.stdout.close()


def run_command(
    command: Sequence[str], timeout: float = 10.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``command`` in a new session; fail (killing its whole process group)
    if it has not exited within ``timeout`` seconds."""
    proc = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env if env is not None else script_env(),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(
            f"{' '.join(command)} did not exit within {timeout} s\n"
            f"stdout:\n{out}\nstderr:\n{err}"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_script(
    path: Path, args: Sequence[str] = (), timeout: float = 10.0, extra_flags: Sequence[str] = ()
) -> subprocess.CompletedProcess:
    """Run ``path`` with this interpreter (see :func:`run_command`)."""
    return run_command([sys.executable, *extra_flags, str(path), *args], timeout)


def run_sampled(m, consume) -> tuple:
    """Run ``consume()`` while another thread takes ``m.status()`` snapshots;
    return its result and the snapshots (each taken under the engine's lock)."""
    snapshots: list = []
    done = threading.Event()

    def sample() -> None:
        # A snapshot every half millisecond or so: often enough to catch the
        # bound at work, without starving the IMap's threads of the GIL.
        while True:
            snapshots.append(m.status())
            if done.wait(0.0005):
                return

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        return consume(), snapshots
    finally:
        done.set()
        sampler.join()


def run_piper(piper: object, data: object) -> list:
    """Connect a lone papy piper to ``data``, run it and return its outputs."""
    piper.connect([data])
    piper.start()
    try:
        return list(piper)
    finally:
        piper.stop()
        piper.disconnect()


# --- reading a task with skip=True ------------------------------------------------------


def take_skipping(task) -> tuple[list, int, int]:
    """Every result of ``task`` (iterated under its own timeout), how many
    timed out (with ``skip=True``, each a result given up) and how many were
    lost with their worker."""
    from imap import TimeoutError, WorkerLostError

    got, timed_out, lost = [], 0, 0
    it = iter(task)
    while True:
        try:
            got.append(next(it))
        except TimeoutError:
            timed_out += 1
        except WorkerLostError:
            lost += 1
        except StopIteration:
            return got, timed_out, lost


# --- threads of IMaps -----------------------------------------------------------------------


def imap_threads() -> set:
    """The threads an IMap (or its backend) started that are alive now."""
    return {t for t in threading.enumerate() if t.name.startswith("imap")}


def buffer_items(sizes: Sequence[int]) -> list:
    """Items of every kind that pickles buffers, one per size in ``sizes``
    (bytes): float64 arrays, bytearrays, bytes and strided (non-contiguous)
    int32 views, in turn. Below and above 64 KiB they take the pickle stream
    or go out of band. Needs numpy (the test extra installs it)."""
    import numpy as np

    items: list = []
    for i, n in enumerate(sizes):
        kind = i % 4
        if kind == 0:
            items.append(np.arange(n // 8, dtype=np.float64) + i)
        elif kind == 1:
            items.append(bytearray(bytes([i % 256]) * n))
        elif kind == 2:
            items.append(bytes([i % 256]) * n)
        else:
            items.append(np.arange(n // 8 * 2, dtype=np.int32).reshape(-1, 2)[:, ::2])
    return items
