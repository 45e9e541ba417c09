"""Mistakes of a user's first hour, each answered by a clear error or a
result that keeps its promise (regressions of the first-contact issue)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import worker_funcs as wf

import imap
from imap import IMap

# --- the imap() helper goes on after an error -------------------------------------------


def test_imap_helper_yields_every_result_after_an_error(worker_type):
    results = imap.imap(wf.fail_on, range(5), args=(1,), worker_type=worker_type,
                        worker_num=2)
    got = []
    for _ in range(5):
        try:
            got.append(next(results))
        except ValueError as exc:
            got.append(exc)
    assert got[0] == 0 and got[2:] == [20, 30, 40]
    assert isinstance(got[1], ValueError)
    with pytest.raises(StopIteration):
        next(results)
    assert results.imap.stopped


def test_imap_helper_closed_early_stops_its_pool():
    results = imap.imap(wf.double, range(1000), worker_type="thread", worker_num=2)
    assert next(results) == 0
    results.close()
    assert not results.imap.running


def test_imap_helper_as_context_manager():
    with imap.imap(wf.double, range(10), worker_type="thread", worker_num=2) as results:
        assert list(results) == [2 * x for x in range(10)]


# --- a task consumed by another task of the same IMap ------------------------------------


def test_reading_a_task_that_another_task_consumes_is_refused():
    with IMap(worker_type="thread", worker_num=2) as m:
        a = m.add_task(wf.add_one, range(20))
        b = m.add_task(wf.double, a)
        m.start()
        with pytest.raises(RuntimeError, match="input of task 1 .*read task 1 instead"):
            next(a)
        assert list(b) == [2 * (x + 1) for x in range(20)]


# --- a tasklet that never returns, with skip=True ------------------------------------------


@pytest.mark.timeout(90)
def test_skip_replaces_a_worker_stuck_in_an_abandoned_tasklet(worker_type, tmp_path):
    release = tmp_path / "release"
    try:
        m = IMap(worker_type=worker_type, worker_num=2, skip=True)
        task = m.add_task(wf.hold_until_released, range(20), args=({1, 2}, str(release)),
                          timeout=2)
        m.start()
        got = []
        for _ in range(20):
            try:
                got.append(task.next())
            except imap.TimeoutError:
                got.append(None)
        assert got[1] is None and got[2] is None
        assert all(v is None or v == 10 * x for x, v in enumerate(got))
        # Before, the items queued behind the two stuck ones timed out too.
        assert sum(v is not None for v in got) >= 16, got
        m.stop()  # graceful: returns although two tasklets never end
        assert m.stopped
    finally:
        release.touch()  # lets a stuck thread end


# --- scripts whose worker processes could not start ------------------------------------------

_UNGUARDED = """
    from imap import IMap
    m = IMap(worker_num=2{extra})
    t = m.add_task(abs, [-1, -2])
    m.start()
    print(list(t))
    m.stop()
"""

_GUARDED = """
    from imap import IMap

    def main():
        with IMap(worker_num=2) as m:
            t = m.add_task(abs, [-1, -2])
            m.start()
            print(list(t))

    if __name__ == "__main__":
        main()
"""


def _run(tmp_path, source, stdin=False):
    source = textwrap.dedent(source)
    if stdin:
        return subprocess.run([sys.executable, "-"], input=source, capture_output=True,
                              text=True, timeout=60, cwd=tmp_path)
    script = tmp_path / "script.py"
    script.write_text(source)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_script_without_main_guard_gets_one_clear_error(tmp_path, method):
    done = _run(tmp_path, _UNGUARDED.format(extra=f", start_method={method!r}"))
    assert done.returncode == 1
    assert 'if __name__ == "__main__":' in done.stderr
    assert "script.py line 5" in done.stderr
    assert done.stderr.count("Traceback") == 1, done.stderr


def test_script_with_main_guard_runs(tmp_path):
    done = _run(tmp_path, _GUARDED)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1, 2]"


def test_script_without_main_guard_runs_with_fork(tmp_path):
    done = _run(tmp_path, _UNGUARDED.format(extra=", start_method='fork'"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1, 2]"


def test_script_from_standard_input_gets_one_clear_error(tmp_path):
    done = _run(tmp_path, _GUARDED, stdin=True)
    assert done.returncode == 1
    assert "save it to a file" in done.stderr and "start_method" in done.stderr
    assert "FileNotFoundError" not in done.stderr
