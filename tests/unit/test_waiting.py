"""A Ctrl-C at the moment a wait takes its lock back (imap.run.waiting).

``Condition.wait`` gives its lock back while it waits and takes it again in a
``finally`` clause. An interrupt that lands at the start of that clause (a
second Ctrl-C while the first is handled) leaves the lock released and the
``with`` block around the wait fails with a RuntimeError that hides the
interrupt. Signals land only between two instructions, so the scripts below
put the interrupt exactly there with a trace function: it raises
KeyboardInterrupt on the line of ``Condition.wait`` that takes the lock back,
the first time the main thread reaches it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import ROOT

PRELUDE = """
import inspect, sys, threading, time
sys.path[:0] = [{root!r}]
from imap import IMap
from imap.run import waiting

_lines, _first = inspect.getsourcelines(threading.Condition.wait)
RESTORE = _first + next(i for i, line in enumerate(_lines) if "_acquire_restore" in line)
WAIT = threading.Condition.wait.__code__
fired = []

def _local(frame, event, arg):
    if event == "line" and frame.f_lineno == RESTORE and not fired:
        fired.append(True)
        raise KeyboardInterrupt("the second Ctrl-C")
    return _local

def _global(frame, event, arg):
    return _local if frame.f_code is WAIT and not fired else None

def interrupt_next_wait():
    sys.settrace(_global)

def wake_later(cond, flag=None):
    # notify once the main thread waits on cond (its waiter is queued)
    def run():
        while not cond._waiters:
            time.sleep(0.001)
        with cond:
            if flag is not None:
                flag._set = True
            cond.notify_all()
    threading.Thread(target=run, daemon=True).start()
"""

BODIES = {
    # controls: the plain Condition.wait, on a Lock and on an RLock
    "plain-lock": """
cond = threading.Condition(threading.Lock())
wake_later(cond)
interrupt_next_wait()
with cond:
    cond.wait()
""",
    "plain-rlock": """
cond = threading.Condition()
wake_later(cond)
interrupt_next_wait()
with cond:
    cond.wait()
""",
    "wait": """
cond = waiting.condition()
wake_later(cond)
interrupt_next_wait()
with cond:
    waiting.wait(cond)
cond.acquire(); cond.release()   # usable afterwards
""",
    "flag": """
flag = waiting.Flag()
wake_later(flag._cond, flag)
interrupt_next_wait()
flag.wait()
""",
    "imap": """
def slow(x):
    time.sleep(0.05)
    return x

if __name__ == "__main__":
    with IMap(worker_num=2) as m:
        task = m.add_task(slow, range(10_000))
        m.start()
        interrupt_next_wait()
        for _ in task:
            pass
""",
    "plumber": """
from papy import Piper, Plumber, Worker

def slow(inbox):
    time.sleep(0.05)
    return inbox[0]

if __name__ == "__main__":
    plumber = Plumber()
    plumber.add_piper(Piper(Worker(slow), parallel=IMap(worker_num=2)))
    plumber.start([range(40)])   # its end wakes the wait below
    plumber.run()
    interrupt_next_wait()
    plumber.wait()   # as PaPy 1.x's scripts: no with-block, no stop()
""",
}


def _run(tmp_path, mode: str) -> str:
    script = tmp_path / "script.py"
    script.write_text(PRELUDE.format(root=str(ROOT)) + BODIES[mode])
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=90)
    return done.stdout + done.stderr


@pytest.mark.parametrize("mode", ["plain-lock", "plain-rlock"])
def test_the_plain_condition_wait_hides_the_interrupt(tmp_path, mode) -> None:
    """What is guarded against (so that the tests below can fail)."""
    out = _run(tmp_path, mode)
    assert "the second Ctrl-C" in out and "RuntimeError" in out, out


@pytest.mark.parametrize("mode", ["wait", "flag", "imap", "plumber"])
def test_an_interrupt_while_taking_the_lock_back_stays_a_keyboardinterrupt(
        tmp_path, mode) -> None:
    out = _run(tmp_path, mode)
    assert "KeyboardInterrupt: the second Ctrl-C" in out, out
    assert "RuntimeError" not in out and "Exception ignored" not in out, out
