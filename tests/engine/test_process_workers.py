"""Process workers: start methods, functions by value, initializers, batching,
and the function sent once per task per worker."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path

import pytest
import worker_funcs as wf
from support import run_command, run_script, script_env

import imap

START_METHODS = ["fork", "forkserver", "spawn"]


def triple(x):
    """Defined at module level in the test module: travels by reference."""
    return 3 * x


@pytest.mark.parametrize("start_method", START_METHODS)
def test_every_start_method_runs_module_functions_and_lambdas(start_method):
    with imap.IMap(worker_type="process", worker_num=2, start_method=start_method) as m:
        tripled = m.add_task(triple, range(10))
        shifted = m.add_task(lambda x: x - 1, tripled)
        m.start()
        assert list(shifted) == [3 * x - 1 for x in range(10)]


@pytest.mark.parametrize("start_method", START_METHODS)
def test_every_start_method_evaluates_in_other_processes(start_method):
    with imap.IMap(worker_type="process", worker_num=2, start_method=start_method) as m:
        m.add_task(wf.worker_pid, range(20))
        m.start()
        pids = set(m)
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2


def test_functions_defined_in_main_work_on_every_start_method(tmp_path):
    script = tmp_path / "main_functions.py"
    script.write_text(
        textwrap.dedent(
            """
            import imap

            OFFSET = 5

            def shift(x):
                return x + OFFSET

            if __name__ == "__main__":
                for method in ("fork", "forkserver", "spawn"):
                    with imap.IMap(worker_type="process", worker_num=2,
                                   start_method=method) as m:
                        shifted = m.add_task(shift, range(5))
                        squared = m.add_task(lambda x: x * x, shifted)
                        m.start()
                        print(method, list(squared))
            """
        )
    )
    done = run_script(script, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = [(x + 5) ** 2 for x in range(5)]
    assert done.stdout.split("\n")[:3] == [f"{m} {expected}" for m in START_METHODS]


# --- no fork() DeprecationWarning on Python 3.12+ -------------------------------------

FORK_SCRIPT = """
import imap
import worker_funcs as wf


def main():
    for method in ("fork", "forkserver", "spawn"):
        with imap.IMap(worker_type="process", worker_num=2, start_method=method) as m:
            a = m.add_task(wf.add_one, range(20))
            b = m.add_task(wf.double, a)
            m.start()
            assert list(b) == [2 * (x + 1) for x in range(20)], method

    # A worker that dies is replaced while the engine's threads are running.
    with imap.IMap(worker_type="process", worker_num=2, start_method="fork", chunksize=1) as m:
        t = m.add_task(wf.exit_on, range(6), args=(2,))
        m.start()
        got = []
        for _ in range(6):
            try:
                got.append(t.next(timeout=30))
            except imap.WorkerLostError:
                got.append("lost")
    assert got == [0, 2, "lost", 6, 8, 10], got
    print("ok")


if __name__ == "__main__":
    main()
"""


def _python_version(exe: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True, text=True, timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def interpreters_312_and_later() -> dict[tuple[int, int], str]:
    """One interpreter per Python version >= 3.12 found here (this one included)."""
    found: dict[tuple[int, int], str] = {}
    if sys.version_info >= (3, 12):
        found[sys.version_info[:2]] = sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [str(p) for p in sorted(pyenv.glob("3.*/bin/python3"))]
    for exe in candidates:
        version = _python_version(exe)
        if version and version >= (3, 12) and version not in found:
            found[version] = exe
    return found


def dependency_shim(directory: Path) -> Path:
    """A directory holding links to this interpreter's copies of the engine's
    pure-Python dependencies, for an interpreter that lacks them."""
    import cloudpickle

    directory.mkdir()
    for module in [cloudpickle]:
        (directory / module.__name__).symlink_to(Path(module.__file__).parent)
    return directory


@pytest.mark.timeout(200)
def test_no_fork_deprecation_warning_on_python_312_and_later(tmp_path):
    interpreters = interpreters_312_and_later()
    if not interpreters:
        pytest.skip("no Python >= 3.12 found")
    script = tmp_path / "fork_warning.py"
    script.write_text(FORK_SCRIPT)
    shim = dependency_shim(tmp_path / "shim")
    for version, exe in interpreters.items():
        env = script_env()
        if exe != sys.executable:
            env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(shim)])
        done = run_command([exe, "-W", "always::DeprecationWarning", str(script)], 90, env)
        label = "{}.{} ({})".format(*version, exe)
        assert done.returncode == 0, f"{label}:\n{done.stderr}"
        assert done.stdout.strip() == "ok", label
        fork_warnings = [
            line for line in done.stderr.splitlines()
            if "DeprecationWarning" in line and ("fork" in line or "multi-threaded" in line)
        ]
        assert not fork_warnings, f"{label}:\n{done.stderr}"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the warning exists from Python 3.12")
def test_fork_start_method_warns_nothing_in_this_process():
    import threading

    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if others:
        # Python warns about fork in any multi-threaded process: here the
        # threads are an earlier test's (Dask keeps its own), not the IMap's.
        # test_no_fork_deprecation_warning_on_python_312_and_later checks a
        # fresh interpreter.
        pytest.skip(f"threads of earlier tests are alive: {others[:3]}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with imap.IMap(worker_type="process", worker_num=2, start_method="fork") as m:
            m.add_task(wf.square, range(10))
            m.start()
            assert list(m) == [x * x for x in range(10)]
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("start_method", START_METHODS)
def test_a_graceful_stop_finds_every_worker_quit(start_method, caplog):
    # The Router sees a quitting worker die while stop() waits for it; with
    # "fork" both waited for the child, and the one that lost the race to
    # reap it was told it still ran: a spurious "did not quit", then a
    # signal sent to a reaped pid. Many short runs make the race likely.
    with caplog.at_level("WARNING", logger="imap"):
        for _ in range(20):
            with imap.IMap(worker_type="process", worker_num=2,
                           start_method=start_method) as m:
                m.add_task(wf.square, range(50))
                m.start()
                assert list(m) == [x * x for x in range(50)]
    assert not [r for r in caplog.records if "did not quit" in r.getMessage()]


# --- initializer ----------------------------------------------------------------------


def test_initializer_sets_up_each_process_worker():
    with imap.IMap(
        worker_type="process", worker_num=2,
        initializer=wf.set_init_value, initargs=("ready",),
    ) as m:
        m.add_task(wf.read_init_value, range(10))
        m.start()
        assert list(m) == [(x, "ready") for x in range(10)]


def test_initializer_runs_once_in_every_process_before_any_tasklet(tmp_path):
    with imap.IMap(
        worker_type="process", worker_num=2, chunksize=1,
        initializer=wf.record_init, initargs=(str(tmp_path),),
    ) as m:
        m.add_task(wf.was_initialized, range(20), args=(str(tmp_path),))
        m.start()
        assert list(m) == [True] * 20
    assert 1 <= len(list(tmp_path.glob("init.*"))) <= 2


def test_initializer_runs_once_in_every_thread_before_any_tasklet():
    import threading

    initialized = []

    def init(tag):
        initialized.append((threading.get_ident(), tag))

    def where(x):
        return threading.get_ident()

    with imap.IMap(
        worker_type="thread", worker_num=3, initializer=init, initargs=("t",)
    ) as m:
        m.add_task(where, range(30))
        m.start()
        idents = set(m)
    assert all(tag == "t" for _, tag in initialized)
    init_idents = [ident for ident, _ in initialized]
    assert len(init_idents) == len(set(init_idents)) <= 3
    assert idents <= set(init_idents)


# --- batching -------------------------------------------------------------------------


@pytest.mark.parametrize("chunksize", [1, 3, 64, None])
@pytest.mark.parametrize("ordered", [True, False])
def test_chunksize_does_not_change_results(chunksize, ordered):
    with imap.IMap(
        worker_type="process", worker_num=2, stride=16,
        chunksize=chunksize, ordered=ordered,
    ) as m:
        first = m.add_task(wf.add_one, range(200))
        second = m.add_task(wf.square, first)
        m.start()
        got = list(second)
        assert m.high_water <= m.status().buffer
    expected = [(x + 1) ** 2 for x in range(200)]
    assert got == expected if ordered else sorted(got) == sorted(expected)


def test_chunksize_larger_than_stride_keeps_the_buffer_bound():
    with imap.IMap(worker_type="process", worker_num=2, stride=4, buffer=4, chunksize=100) as m:
        m.add_task(wf.double, range(50))
        m.start()
        assert list(m) == [2 * x for x in range(50)]
        assert m.high_water <= 4


# --- the function travels once per task per worker ------------------------------------


def test_function_is_sent_once_per_task_per_worker_not_per_item(tmp_path):
    log = tmp_path / "pickling.log"
    with imap.IMap(worker_type="process", worker_num=2, stride=2, chunksize=1) as m:
        m.add_task(wf.CountingAdder(str(log)), range(200))
        m.start()
        assert list(m) == [x + 1 for x in range(200)]
    events = [line.split() for line in log.read_text().splitlines()]
    parent = str(os.getpid())
    pickled_here = [pid for kind, pid in events if kind == "pickle" and pid == parent]
    unpickled = collections.Counter(
        pid for kind, pid in events if kind == "unpickle" and pid != parent
    )
    assert 1 <= len(pickled_here) <= 3, f"pickled {len(pickled_here)} times for 200 items"
    assert 1 <= len(unpickled) <= 2
    assert all(count == 1 for count in unpickled.values()), unpickled


def test_each_task_sends_its_own_function(tmp_path):
    with imap.IMap(worker_type="process", worker_num=2) as m:
        a = m.add_task(wf.CountingAdder(str(tmp_path / "a.log")), range(20))
        b = m.add_task(wf.CountingAdder(str(tmp_path / "b.log")), a)
        m.start()
        assert list(b) == [x + 2 for x in range(20)]
    for name in ("a.log", "b.log"):
        kinds = [line.split()[0] for line in (tmp_path / name).read_text().splitlines()]
        assert "unpickle" in kinds


def _read_one(conn):
    conn.recv_bytes()


def test_the_routers_waiter_sees_answers_deaths_and_a_changed_set_of_workers():
    """The Router's wait set, kept between waits: real pipes, a real process."""
    import multiprocessing as mp

    from imap.backends.process_os import Waiter

    ctx = mp.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    go_r, go_w = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_read_one, args=(go_r,))   # ends when told to
    child.start()
    # two "workers": only their identity and log pipe count
    first, second = types.SimpleNamespace(log_conn=None), types.SimpleNamespace(log_conn=None)
    waiter = Waiter()
    assert waiter.changed([first])
    waiter.watch([reader, child.sentinel])
    assert not waiter.changed([first])     # the same workers: nothing rebuilt
    first.log_conn = reader                # a worker's log pipe opened (or closed)
    assert waiter.changed([first])
    assert not waiter.changed([first])
    writer.send_bytes(b"answer")
    assert waiter.wait() == [reader]
    assert reader.recv_bytes() == b"answer"
    go_w.send_bytes(b"end")
    assert waiter.wait() == [child.sentinel]   # blocks until the child ends
    child.join()
    assert waiter.changed([second])          # a replaced worker: rebuilt
    other_r, other_w = ctx.Pipe(duplex=False)
    waiter.watch([other_r])
    other_w.send_bytes(b"x")
    writer.send_bytes(b"ignored")            # no longer watched
    assert waiter.wait() == [other_r]
    for conn in (reader, writer, other_r, other_w, go_r, go_w):
        conn.close()
