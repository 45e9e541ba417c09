"""An ``imap-server``'s connection processes end with its main process, however
the main process ends: none is left computing for nobody."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle
import pytest
import remote_helpers as h
from remote_helpers import children_of, collect, server
from support import kill_group, pid_alive, script_env, wait_until

from imap import IMap, WorkerLostError

cloudpickle.register_pickle_by_value(h)

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_connection_processes_end_with_the_main_process(signum, tmp_path):
    with server("imap") as (address, proc):
        m = IMap(worker_num=0, worker_remote=[(address, 2)], stride=2, chunksize=1)
        task = m.add_task(h.hold_on_remote, range(6), args=(str(tmp_path),))
        m.start()
        wait_until(lambda: len(list(tmp_path.glob("held-*"))) == 2, 30,
                   "both connections to be running an item")
        busy = children_of(proc.pid)
        assert len(busy) == 2  # one process a connection
        os.kill(proc.pid, signum)
        assert proc.wait(timeout=20) == (0 if signum == signal.SIGTERM else -signum)
        wait_until(lambda: not any(pid_alive(pid) for pid in busy), 10,
                   f"the connection processes {sorted(busy)} to end")
        # The client sees its connections lost: every item fails, nothing hangs.
        results = collect(iter(task))
        m.stop()
    assert len(results) == 6
    assert all(isinstance(r, WorkerLostError) for r in results), results


# The same guarantee for one forked process, with or without the kernel's help
# (``kernel=False`` is the watcher thread used where prctl is missing).
ORPHAN = textwrap.dedent("""
    import os, sys, threading, time
    from imap.server import end_with_parent

    kernel, late, marker = sys.argv[1] == "kernel", sys.argv[2] == "late", sys.argv[3]
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        if late:  # the parent ends before the child sets anything up
            while os.getppid() == parent:
                time.sleep(0.005)
        end_with_parent(parent, kernel=kernel)
        open(marker, "w").close()
        threading.Event().wait()
    print(pid, flush=True)
    if late:
        os._exit(0)
    os.wait()  # until killed
""")


@pytest.mark.parametrize("kernel", ["kernel", "watcher"])
@pytest.mark.parametrize("late", ["early", "late"])
def test_a_forked_process_ends_with_its_parent(kernel, late, tmp_path):
    marker = tmp_path / "set-up"
    proc = subprocess.Popen([sys.executable, "-c", ORPHAN, kernel, late, str(marker)],
                            stdout=subprocess.PIPE, env=script_env(), start_new_session=True)
    try:
        child = int(proc.stdout.readline())
        if late == "early":
            wait_until(marker.exists, 10, "the child to be set up")
            assert pid_alive(child)
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_until(lambda: not pid_alive(child), 10, f"the child {child} to end")
        # A parent gone before the set-up: the child ends there and then.
        assert marker.exists() == (late == "early")
    finally:
        kill_group(proc)
        proc.stdout.close()
