"""papy: a run whose items failed says so (first error per piper, a summary at
the end, counts in stats), and the inbox mistake gets a hint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from papy_funcs import fail_on_3, inc, square
from support import wait_until

import imap
from papy import Piper, Plumber, Worker, WorkerError

pytestmark = pytest.mark.timeout(60)


def item_plus_one(x):   # written for an item, not an inbox: the first mistake
    return x + 1


def run(plumber: Plumber, data) -> None:
    plumber.start([data])
    plumber.run()
    assert plumber.wait(30)
    plumber.stop()


def warnings_of(caplog, level: str = "WARNING") -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "papy" and r.levelname == level]


@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_first_error_of_a_piper_is_logged_once_with_the_worker_traceback(
        caplog, worker_type) -> None:
    m = imap.IMap(worker_type=worker_type, worker_num=2)
    a = Piper(fail_on_3, parallel=m, name="a")
    p = Plumber(pipes=[(a, Piper(inc, name="b"))], keep=True)
    run(p, [3, 1, 3, 3])
    logged = warnings_of(caplog)
    assert len(logged) == 1, logged   # b passes a's errors on: not its own
    assert "piper 'a'" in logged[0] and "three is bad" in logged[0]
    assert "papy_funcs.py" in logged[0] and "raise ValueError" in logged[0]


def test_first_error_is_logged_once_per_run(caplog) -> None:
    p = Plumber(pipes=[(Piper(fail_on_3, name="a"), Piper(inc, name="b"))])
    run(p, [3, 3])
    run(p, [3, 3])
    assert sum("piper 'a'" in m for m in warnings_of(caplog)) == 2


def test_wait_logs_an_error_summary_and_stats_count_failed_outputs(caplog) -> None:
    p = Plumber(pipes=[(Piper(fail_on_3, name="a"), Piper(inc, name="b"))], keep=True)
    p.start([range(6)])
    p.run()
    assert p.wait(30) is True    # finished, and ...
    errors = warnings_of(caplog, "ERROR")
    assert len(errors) == 1 and "'b': 1 of 6 items" in errors[0], errors
    assert "'a'" in errors[0]
    assert p.stats["outputs"] == {"b": {"items": 6, "errors": 1}}
    assert p.wait(30)
    p.stop()
    assert len(warnings_of(caplog, "ERROR")) == 1   # once per run


def test_stop_logs_the_summary_when_wait_was_not_called(caplog) -> None:
    p = Plumber(pipes=[(Piper(fail_on_3, name="a"), Piper(inc, name="b"))], keep=True)
    p.start([range(6)])
    p.run()
    wait_until(lambda: len(p.results["b"]) == 6, 30, "every result")
    p.stop()
    assert any("'b': 1 of 6 items" in m for m in warnings_of(caplog, "ERROR"))


def test_a_clean_run_logs_nothing(caplog) -> None:
    m = imap.IMap(worker_type="thread", worker_num=2)
    p = Plumber(pipes=[(Piper(inc, parallel=m), Piper(square, parallel=m))])
    run(p, range(20))
    assert [r for r in caplog.records if r.levelno >= 30] == []
    assert list(p.stats["outputs"].values()) == [{"items": 20, "errors": 0}]


def test_a_function_written_for_an_item_gets_an_inbox_hint(caplog) -> None:
    m = imap.IMap(worker_type="thread", worker_num=2)
    p = Plumber(pipes=[(Piper(item_plus_one, parallel=m, name="a"),)], keep=True)
    run(p, range(3))
    error = p.results["a"][0].error
    assert isinstance(error, WorkerError) and "inbox[0]" in error.hint
    assert "inbox[0]" in str(error) and "inbox[0]" in warnings_of(caplog)[0]


def test_no_inbox_hint_for_other_errors() -> None:
    def wrong_type(inbox):
        return inbox[0] + "s"

    assert Worker(wrong_type)((1,)).hint == ""                  # not about a tuple
    assert Worker(fail_on_3)((3,)).hint == ""                   # not a TypeError
    second = Worker((inc, item_plus_one))((1,))   # a later function gets (2,):
    assert "inbox[0]" in second.hint              # the same convention
    assert Worker(item_plus_one, arguments=[()])((1,)).hint != ""


UNGUARDED = '''
from imap import IMap
from papy import Piper, Plumber

def inc(inbox):
    return inbox[0] + 1

pool = IMap(worker_type="process", worker_num=1, start_method="forkserver")
plumber = Plumber(pipes=[(Piper(inc, parallel=pool, name="a"),)], keep=True)
plumber.start([range(2)])
plumber.run()
plumber.wait()
plumber.stop()
'''


def test_an_unguarded_script_is_refused_with_one_clear_error(tmp_path) -> None:
    # No `if __name__ == "__main__":`: each worker process would re-run the
    # script. The IMap refuses to start, saying what to add, instead of a run
    # whose every item fails.
    script = tmp_path / "tutorial.py"
    script.write_text(UNGUARDED)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=50, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1
    assert 'if __name__ == "__main__":' in proc.stderr
    assert proc.stderr.count("Traceback") == 1
