"""papy.Plumber: start/run/wait/pause/stop, stats, save/load."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from papy_funcs import add, dbl, fail_on_3, identity, inc, neg
from support import wait_until

import imap
from papy import Piper, Plumber, PlumberError, Worker
from papy.util.func import ipasser

pytestmark = pytest.mark.timeout(60)


def branched(m) -> Plumber:
    a = Piper(inc, parallel=m, name="a")
    b = Piper(dbl, parallel=m, name="b")
    c = Piper(neg, parallel=m, name="c")
    d = Piper(add, name="d")
    return Plumber(pipes=[(a, b, d), (a, c, d)], keep=True)


def expected(data) -> list:
    return [(x + 1) * 2 - (x + 1) for x in data]


def test_start_run_wait_stop() -> None:
    m = imap.IMap(worker_type="thread", worker_num=2)
    p = branched(m)
    p.start([range(50)])
    p.run()
    assert p.wait(30) is True and p.finished
    p.stop()
    assert p.results == {"d": expected(range(50))}


def test_run_before_start_is_an_error() -> None:
    with pytest.raises(PlumberError, match="start"):
        Plumber(pipes=[(Piper(inc), Piper(dbl))]).run()


def test_start_twice_is_an_error() -> None:
    p = Plumber(pipes=[(Piper(inc), Piper(dbl))])
    p.start([range(3)])
    with pytest.raises(PlumberError, match="started already"):
        p.start([range(3)])
    p.stop()


def test_pause_and_resume_lose_and_duplicate_nothing() -> None:
    gate = threading.Semaphore(0)

    def gated():
        for i in range(40):
            gate.acquire()
            yield i

    m = imap.IMap(worker_type="thread", worker_num=2, stride=2)
    p = branched(m)
    p.start([gated()])
    p.run()
    for _ in range(10):
        gate.release()
    p.pause()
    for _ in range(30):
        gate.release()
    p.run()
    assert p.wait(30)
    p.stop()
    assert p.results["d"] == expected(range(40))


def test_pause_and_run_in_quick_succession_lose_and_duplicate_nothing() -> None:
    # A puller sees a pause without taking the lock: a run() just after it must
    # leave each output exactly one puller, never none (wait would time out).
    n = 20_000
    p = Plumber(pipes=[(Piper(inc, name="a"), Piper(dbl, name="b"))], keep=True)
    p.start([range(n)])
    for _ in range(300):
        p.run()
        p.pause()
    p.run()
    assert p.wait(60)
    p.stop()
    assert p.results["b"] == [(x + 1) * 2 for x in range(n)]
    assert p.stats["outputs"]["b"] == {"items": n, "errors": 0}
    assert p.stats["pipers"]["a"] == {"in": n, "out": n, "errors": 0}


def test_wait_timeout_returns_false_and_stop_ends_unfinished_pipeline() -> None:
    release = threading.Event()

    def endless():
        yield from range(5)
        release.wait(30)   # the input stalls until the test ends
        yield from range(5, 10)

    m = imap.IMap(worker_type="thread", worker_num=2)
    p = Plumber(pipes=[(Piper(inc, parallel=m), Piper(dbl, parallel=m))], keep=True)
    p.start([endless()])
    p.run()
    assert p.wait(0.2) is False
    release.set()
    p.stop()
    out = list(p.results.values())[0]
    assert out == [2 * (x + 1) for x in range(len(out))]


def test_stats_count_items_and_errors() -> None:
    a = Piper(fail_on_3, name="a")
    b = Piper(inc, name="b")
    p = Plumber(pipes=[(a, b)])
    p.start([range(6)])
    p.run()
    p.wait(30)
    p.stop()
    stats = p.stats
    assert stats["start_time"] <= time.time() and stats["run_time"] >= 0
    assert stats["pipers"]["a"] == {"in": 6, "out": 6, "errors": 1}
    assert stats["pipers"]["b"] == {"in": 6, "out": 6, "errors": 1}


def test_debug_error_surfaces_in_wait() -> None:
    p = Plumber(pipes=[(Piper(fail_on_3, debug=True), Piper(inc))])
    p.start([range(6)])
    p.run()
    with pytest.raises(PlumberError, match="three is bad"):
        p.wait(30)
    p.stop()


def test_save_load_round_trip_of_branched_pipeline(tmp_path: Path) -> None:
    m = imap.IMap(worker_type="thread", worker_num=2, stride=3)
    p = branched(m)
    p.add_pipe((p.resolve("d"), Piper(Worker(ipasser, [(0,)]), name="e")))
    path = tmp_path / "pipeline.py"
    p.save(str(path))
    text = path.read_text()
    assert "papy_funcs.inc" in text and "papy.util.func.ipasser" in text
    q = Plumber(keep=True).load(str(path))
    assert [x.name for x in q.pipers] == [x.name for x in p.pipers]
    for plumber in (p, q):
        plumber.start([range(20)])
        plumber.run()
        plumber.wait(30)
        plumber.stop()
    assert p.results == q.results == {"e": expected(range(20))}


def test_save_rejects_lambdas(tmp_path: Path) -> None:
    p = Plumber(pipes=[(Piper(lambda inbox: inbox[0]), Piper(inc))])
    with pytest.raises(PlumberError, match="lambda"):
        p.save(str(tmp_path / "x.py"))


SCRIPT = '''
from papy import Piper, Plumber
import imap

def triple(inbox):
    return inbox[0] * 3

if __name__ == "__main__":
    m = imap.IMap(worker_type="thread", worker_num=2)
    p = Plumber(pipes=[(Piper(triple, parallel=m, name="t"), Piper(triple, name="u"))])
    p.save(PATH)
'''


def test_save_functions_of_main_by_source(tmp_path: Path) -> None:
    path = tmp_path / "saved.py"
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.replace("PATH", repr(str(path))))
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, str(script)], check=True, timeout=60,
                   env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert "def triple(inbox):" in path.read_text()
    q = Plumber(keep=True).load(str(path))
    q.start([range(4)])
    q.run()
    q.wait(30)
    q.stop()
    assert q.results == {"u": [0, 9, 18, 27]}


def test_process_imap_pipeline() -> None:
    m = imap.IMap(worker_type="process", worker_num=2)
    p = branched(m)
    p.start([range(30)])
    p.run()
    p.wait(60)
    p.stop()
    assert p.results["d"] == expected(range(30))


def test_forgotten_stop_still_exits() -> None:
    code = (
        "import imap\nfrom papy import Piper, Plumber\n"
        "def inc(inbox):\n    return inbox[0] + 1\n"
        "if __name__ == '__main__':\n"
        "    m = imap.IMap(worker_type='process', worker_num=2)\n"
        "    p = Plumber(pipes=[(Piper(inc, parallel=m), Piper(inc, parallel=m))])\n"
        "    p.start([range(10**6)])\n    p.run()\n    print('bye')\n")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True,
                          text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert "bye" in proc.stdout


def test_outputs_are_pulled_independently() -> None:
    # Two outputs of one fork pulled at different rates (an IMap of stride 8 and
    # an inline piper) with a small branch lag: each output has its own puller,
    # so neither waits for the other's turn and no lag error is raised.
    m = imap.IMap(worker_type="thread", worker_num=2, stride=8)
    src = Piper(inc, name="src")
    src.branch_lag = 2
    fast = Piper(dbl, parallel=m, name="fast")
    slow = Piper(neg, name="slow")
    p = Plumber(pipes=[(src, fast), (src, slow)], keep=True)
    p.start([range(300)])
    p.run()
    assert p.wait(30)
    p.stop()
    assert p.results == {"fast": [2 * (x + 1) for x in range(300)],
                         "slow": [-(x + 1) for x in range(300)]}


def test_pause_returns_while_an_output_waits_for_input() -> None:
    gate = threading.Semaphore(0)

    def gated():
        for i in range(6):
            gate.acquire()
            yield i

    m = imap.IMap(worker_type="thread", worker_num=1, stride=1)
    p = Plumber(pipes=[(Piper(inc, parallel=m, name="a"), Piper(dbl, name="b"))], keep=True)
    p.start([gated()])
    p.run()
    gate.release()
    wait_until(lambda: p.results["b"] == [2], 10)
    p.pause()                        # the puller is waiting for item 1: returns at once
    for _ in range(5):
        gate.release()
    p.run()
    assert p.wait(30)
    p.stop()
    assert p.results["b"] == [2 * (x + 1) for x in range(6)]


def test_save_keeps_imap_options(tmp_path: Path) -> None:
    m = imap.IMap(worker_type="thread", worker_num=3, stride=5, buffer=12, ordered=False,
                  skip=True, chunksize=2, stall_grace=None, name="pool")
    a = Piper(inc, parallel=m, timeout=5.0, name="a")
    p = Plumber(pipes=[(a, Piper(dbl, name="b"))])
    path = tmp_path / "saved.py"
    p.save(str(path))
    q = Plumber().load(str(path))
    loaded = q.resolve("a").imap
    assert loaded is not m and loaded.options == m.options
    assert q.resolve("a").timeout == 5.0


class Transient(OSError):
    """A transient error of these tests' own (saved by reference to this module)."""


def test_save_keeps_retries_and_retry_on(tmp_path: Path) -> None:
    m = imap.IMap(worker_type="thread", worker_num=2)
    a = Piper(inc, parallel=m, retries=4, retry_on=(ConnectionError, Transient), name="a")
    p = Plumber(pipes=[(a, Piper(dbl, name="b"))])
    path = tmp_path / "saved.py"
    p.save(str(path))
    loaded = Plumber().load(str(path)).resolve("a")
    assert loaded.retries == 4
    assert loaded.retry_on == (ConnectionError, Transient)


def test_save_that_fails_leaves_no_file_behind(tmp_path: Path) -> None:
    p = Plumber(pipes=[(Piper(lambda inbox: inbox[0]), Piper(inc))])
    with pytest.raises(PlumberError, match="lambda"):
        p.save(str(tmp_path / "x.py"))
    assert list(tmp_path.iterdir()) == []
    old = tmp_path / "old.py"
    old.write_text("# an earlier save\n")
    with pytest.raises(PlumberError):
        p.save(str(old))
    assert old.read_text() == "# an earlier save\n" and list(tmp_path.iterdir()) == [old]


# One value per IMap option, none of them the default. A new IMap option makes
# the first test below fail until it is added here, so it cannot go unsaved.
NON_DEFAULT_IMAP_OPTIONS = {
    "worker_type": "thread", "worker_num": 3, "worker_remote": [("localhost:18861", 2)],
    "stride": 5, "buffer": 12, "ordered": False, "skip": True, "name": "pool",
    "start_method": "spawn", "chunksize": 2, "initializer": identity, "initargs": ((1,),),
    "stall_grace": None, "remote_options": {"secret": "s3cret", "connect_timeout": 3.0},
    "buffer_bytes": 1 << 20, "worker_logs": False,
    "progress": True, "journal": "run.journal", "journal_reuse": True,
}


# executor= excludes worker_remote= (and a live Client is not a literal to
# save); tests/test_executor.py covers it.
NOT_COMBINED = {"executor"}


def test_every_imap_option_is_covered_and_not_its_default() -> None:
    defaults = imap.IMap().options
    assert set(NON_DEFAULT_IMAP_OPTIONS) | NOT_COMBINED == set(defaults)
    m = imap.IMap(**NON_DEFAULT_IMAP_OPTIONS)
    for key, value in m.options.items():
        if key not in NOT_COMBINED:
            assert value != defaults[key], key


def test_save_round_trips_every_imap_option(tmp_path: Path) -> None:
    m = imap.IMap(**NON_DEFAULT_IMAP_OPTIONS)
    p = Plumber(pipes=[(Piper(inc, parallel=m, name="a"), Piper(dbl, name="b"))])
    path = tmp_path / "saved.py"
    p.save(str(path))
    assert "papy_funcs.identity" in path.read_text()
    loaded = Plumber().load(str(path)).resolve("a").imap
    assert loaded.options == m.options


def test_save_writes_default_imap_options_briefly(tmp_path: Path) -> None:
    m = imap.IMap(worker_type="thread", worker_num=2)
    p = Plumber(pipes=[(Piper(inc, parallel=m, name="a"),)])
    path = tmp_path / "saved.py"
    p.save(str(path))
    line = [x for x in path.read_text().splitlines() if x.strip().startswith("IMap(")][0]
    assert "ordered" not in line and "stall_grace" not in line and "worker_remote" not in line
    assert Plumber().load(str(path)).resolve("a").imap.options == m.options


def test_save_takes_imap_defaults_from_the_options_record() -> None:
    # papy.save makes no IMap to learn the defaults: Options (the one list of
    # options) gives them, in the form IMap.options has.
    from papy.save import _imap_defaults
    made = imap.IMap().options
    made.pop("name")
    saved = _imap_defaults()
    assert saved.pop("name") is None   # an IMap's name is always written
    assert saved == made
    created = []
    original = imap.IMap.__init__

    def counting(self, *args, **kwargs):
        created.append(self)
        original(self, *args, **kwargs)

    imap.IMap.__init__ = counting
    try:
        _imap_defaults()
    finally:
        imap.IMap.__init__ = original
    assert created == []
