"""The journal: a run killed part-way resumes, replaying what its consumer took.

The SIGKILL tests run a real program (``journal_child.py``) in a child
interpreter, kill it with SIGKILL at a random point past 30 %, run it again
with the same journal and compare its output with an uninterrupted run's;
the functions' ledger (one line per call, appended with O_APPEND) shows
that the items recorded before the kill were not computed again. The other
tests abandon a run in-process (stop taking results, stop the IMap) and
resume it.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import journal_child
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import kill_group, script_env, wait_until

from imap import IMap
from imap.journal import COMMIT_ROWS, JournalError

N = 10_000


# -- helpers ---------------------------------------------------------------------------


def committed_keys(path: Path, output: str) -> set:
    """The keys committed to the journal at ``path`` for ``output``."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT keys FROM results WHERE output=?", (output,)).fetchall()
    except sqlite3.OperationalError:   # not created yet
        rows = []
    finally:
        conn.close()
    return {key for (keys,) in rows for key in pickle.loads(keys)}


def ledger_items(path: Path) -> dict[str, Counter]:
    """Per function, how often it was called for each item."""
    calls: dict[str, Counter] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            stage, x = line.split()
            calls.setdefault(stage, Counter())[int(x)] += 1
    return calls


def child(kind: str, journal: Path, ledger: Path, out: Path, backend: str,
          stop_at: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import sys, journal_child; journal_child.main(sys.argv[1:])",
         kind, str(journal), str(ledger), str(out), str(N), backend, str(stop_at)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=script_env(), start_new_session=True)


def kill_at_random_point(kind: str, tmp_path: Path, backend: str) -> tuple:
    """Run the program, SIGKILL it once it has taken a random number of results
    past 30 %; return (the number taken, the keys committed, the first ledger)."""
    stop_at = random.randrange(int(0.3 * N) + 1, int(0.9 * N))
    output = "task 2" if kind == "imap" else "w"
    journal, ledger = tmp_path / "journal.sqlite", tmp_path / "ledger-1"
    proc = child(kind, journal, ledger, tmp_path / "out-1", backend, stop_at)
    try:
        line = proc.stdout.readline()   # blocks until the kill point (or the end)
        assert line == f"stopped at {stop_at}\n", (line, proc.stderr.read())
        # the first commit is made by now (one every COMMIT_ROWS results): the
        # kill must find something recorded to show it is not computed again
        wait_until(lambda: committed_keys(journal, output), 30, "a first commit")
    finally:
        kill_group(proc)   # SIGKILL, the program and its workers
        proc.stdout.close()
        proc.stderr.close()
        proc.stdin.close()
    print(f"killed at {stop_at} results taken, {len(committed_keys(journal, output))} "
          f"committed")
    return stop_at, committed_keys(journal, output), ledger_items(ledger)


def run_again(kind: str, tmp_path: Path, backend: str) -> tuple[str, dict]:
    proc = child(kind, tmp_path / "journal.sqlite", tmp_path / "ledger-2",
                 tmp_path / "out-2", backend, -1)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, err
    return out, ledger_items(tmp_path / "ledger-2")


def check_resumed(stop_at: int, committed: set, first: dict, second: dict,
                  stages: tuple, last: str, out: str) -> None:
    # Whatever was committed was taken before the kill: a prefix of the output.
    assert committed == set(range(len(committed))), "the journal has a gap"
    assert len(committed) <= stop_at
    # The window a crash may lose: what was taken but not committed (at most
    # the batch being committed and the one queued), and what the workers had
    # computed and not handed out (the buffer).
    assert stop_at - len(committed) <= 2 * COMMIT_ROWS
    for stage in stages:
        assert not committed & set(second.get(stage, ())), \
            f"{stage}: items recorded before the kill were computed again"
        # every item not recorded is computed by the second run, once
        assert set(second[stage]) == set(range(N)) - committed
        assert max(second[stage].values()) == 1
    redone = set(first[last]) & set(second[last])
    assert len(redone) <= 2 * COMMIT_ROWS + journal_child.BUFFER
    assert f"replayed {len(committed)} computed {N - len(committed)}" in out


# -- killed and run again --------------------------------------------------------------


@pytest.mark.timeout(240)
def test_sigkilled_chain_resumes_without_computing_recorded_items(tmp_path):
    stop_at, committed, first = kill_at_random_point("imap", tmp_path, "process")
    out, second = run_again("imap", tmp_path, "process")
    results = json.loads((tmp_path / "out-2").read_text())
    assert [tuple(r) for r in results] == journal_child.expected_imap(N)
    check_resumed(stop_at, committed, first, second, ("first", "second", "third"),
                  "third", out)


@pytest.mark.timeout(240)
def test_sigkilled_pipeline_resumes_and_writes_the_same_file(tmp_path):
    stop_at, committed, first = kill_at_random_point("papy", tmp_path, "process")
    out, second = run_again("papy", tmp_path, "process")
    assert (tmp_path / "out-2").read_text() == journal_child.expected_file(N)
    check_resumed(stop_at, committed, first, second, ("a", "b", "c"), "b", out)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["imap", "papy"])
def test_sigkilled_run_on_a_remote_server_resumes(tmp_path, kind):
    from imap.embedded import local

    with local(2) as remote:
        backend = f"remote={remote[0][0]}"
        stop_at, committed, first = kill_at_random_point(kind, tmp_path, backend)
        out, second = run_again(kind, tmp_path, backend)
    if kind == "imap":
        results = json.loads((tmp_path / "out-2").read_text())
        assert [tuple(r) for r in results] == journal_child.expected_imap(N)
        check_resumed(stop_at, committed, first, second, ("first", "second", "third"),
                      "third", out)
    else:
        assert (tmp_path / "out-2").read_text() == journal_child.expected_file(N)
        check_resumed(stop_at, committed, first, second, ("a", "b", "c"), "b", out)


# -- abandoned in-process and resumed ----------------------------------------------------


class Ledger:
    """Items each function was called with (thread workers)."""

    def __init__(self) -> None:
        self.calls: list = []
        self.lock = threading.Lock()

    def note(self, x):
        with self.lock:
            self.calls.append(x)
        return x


def chain_run(path, data, take=None, ordered=True, key=None, ledger=None, fn=None,
              worker_type="thread", chunksize=None, reuse=False):
    """Run ``note -> square`` over ``data`` with a journal; take ``take``
    results (all if None) and abandon the rest (a forced stop)."""
    ledger = ledger or Ledger()
    m = IMap(worker_type=worker_type, worker_num=2, journal=path, ordered=ordered,
             chunksize=chunksize, journal_reuse=reuse)
    first = m.add_task(ledger.note, data, key=key)
    second = m.add_task(fn or square, first)
    m.start()
    try:
        out = list(itertools.islice(second, take))
        status = m.status().tasks[1]
    finally:
        m.stop(forced=True)
    return out, status, ledger


def square(x):
    return x * x


def negate(x):
    return -x


def test_resumed_ordered_output_is_the_uninterrupted_one(tmp_path):
    path = tmp_path / "j"
    first, _, _ = chain_run(path, range(50), take=20)
    assert first == [x * x for x in range(20)]
    out, status, ledger = chain_run(path, range(50))
    assert out == [x * x for x in range(50)]
    assert sorted(ledger.calls) == list(range(20, 50))   # 0..19 drawn no more
    assert (status.replayed, status.consumed) == (20, 30)


def test_unordered_output_replays_in_the_order_recorded(tmp_path):
    path = tmp_path / "j"
    first, _, _ = chain_run(path, range(60), take=25, ordered=False)
    out, status, ledger = chain_run(path, range(60), ordered=False)
    assert out[:25] == first
    assert sorted(out) == sorted(x * x for x in range(60))
    assert sorted(ledger.calls) == sorted(set(range(60)) - {int(v ** 0.5) for v in first})
    assert status.replayed == 25


def test_key_finds_results_when_the_input_order_changes(tmp_path):
    path = tmp_path / "j"
    words = [f"w{i:02d}" for i in range(40)]
    chain_run(path, words, take=15, key=str, fn=len)
    shuffled = words[::-1]
    out, status, ledger = chain_run(path, shuffled, key=str, fn=len)
    assert out == [len(w) for w in shuffled]
    assert sorted(ledger.calls) == sorted(words[15:])
    assert status.replayed == 15


def test_a_run_resumed_twice_gives_the_uninterrupted_output(tmp_path):
    path = tmp_path / "j"
    chain_run(path, range(30), take=7)
    chain_run(path, range(30), take=9)    # 7 replayed, 2 computed
    out, status, ledger = chain_run(path, range(30))
    assert out == [x * x for x in range(30)]
    assert sorted(ledger.calls) == list(range(9, 30))
    assert status.replayed == 9


def test_a_changed_chain_is_refused_saying_how_to_start_afresh(tmp_path):
    path = tmp_path / "j"
    chain_run(path, range(10), take=5)
    with pytest.raises(JournalError, match="journal_reuse=True") as info:
        chain_run(path, range(10), fn=negate)
    assert "delete" in str(info.value) and "negate" in str(info.value)
    out, status, _ = chain_run(path, range(10), fn=negate, reuse=True)
    assert out == [x * x for x in range(5)] + [-x for x in range(5, 10)]


def test_an_error_is_not_recorded_and_is_computed_again(tmp_path):
    path = tmp_path / "j"
    failing = {3}

    def flaky(x):
        if x in failing:
            raise ValueError(f"{x} failed")
        return x * x

    m = IMap(worker_type="thread", worker_num=2, journal=path)
    it = m.add_task(flaky, m.add_task(Ledger().note, range(8)))
    m.start()
    seen = []
    for _ in range(8):
        try:
            seen.append(next(it))
        except ValueError:
            seen.append("error")
    m.stop()
    assert seen == [0, 1, 4, "error", 16, 25, 36, 49]
    failing.clear()
    ledger = Ledger()
    out, status, _ = chain_run(path, range(8), ledger=ledger, fn=flaky)
    assert out == [x * x for x in range(8)]
    assert ledger.calls == [3]
    assert status.replayed == 7


def test_a_key_given_to_two_inputs_is_an_error(tmp_path):
    m = IMap(worker_type="thread", worker_num=1, journal=tmp_path / "j")
    it = m.add_task(square, [1, 2, 2, 3], key=lambda x: x)
    m.start()
    values = []
    with pytest.raises(JournalError, match="unique"):
        for value in it:
            values.append(value)
    m.stop()
    assert values == [1, 4]


def test_key_needs_a_journal_and_the_first_task(tmp_path):
    with pytest.raises(ValueError, match="journal"):
        IMap(worker_type="thread", worker_num=1).add_task(square, [1], key=str)
    m = IMap(worker_type="thread", worker_num=1, journal=tmp_path / "j")
    first = m.add_task(square, [1])
    with pytest.raises(ValueError, match="first task of a chain"):
        m.add_task(square, first, key=str)
    with pytest.raises(TypeError, match="journal must be a file path"):
        IMap(worker_type="thread", worker_num=1, journal=3)


def test_status_progress_and_report_count_replayed_results(tmp_path):
    path = tmp_path / "j"
    chain_run(path, range(40), take=10)
    seen = []
    m = IMap(worker_type="thread", worker_num=2, journal=path,
             progress=lambda label, done, total: seen.append((label, done, total)))
    first = m.add_task(Ledger().note, range(40))
    second = m.add_task(square, first)
    m.start()
    assert list(second) == [x * x for x in range(40)]
    m.stop()
    report = m.report()
    assert any("10 results replayed from the journal, 30 computed" in n for n in report.notes)
    final = [done for label, done, total in seen if label.endswith("(square)")]
    assert final[-1] == 40


def test_next_of_the_imap_reads_a_journaled_output(tmp_path):
    path = tmp_path / "j"
    chain_run(path, range(6), take=2)
    m = IMap(worker_type="thread", worker_num=1, journal=path)
    first = m.add_task(Ledger().note, range(6))
    m.add_task(square, first)
    m.start()
    assert [m.next(task=1) for _ in range(6)] == [x * x for x in range(6)]
    with pytest.raises(StopIteration):
        m.next(task=1)
    m.stop()


# -- property: resumed output == uninterrupted output ------------------------------------


def _note_to_file(x, ledger):
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{x!r}\n".encode())
    finally:
        os.close(fd)
    return x


def _plus_one(x):
    return x + 1


def _by_string(x):
    return f"k{x}"


@settings(max_examples=30)
@given(
    n=st.integers(0, 40),
    kills=st.lists(st.floats(0, 1), min_size=1, max_size=2),
    chunksize=st.sampled_from([None, 1, 3]),
    ordered=st.booleans(),
    key=st.sampled_from([None, _by_string]),
    worker_type=st.sampled_from(["thread", "thread", "process"]),
)
def test_resumed_output_equals_the_uninterrupted_output(n, kills, chunksize, ordered, key,
                                                        worker_type):
    expected = [x + 1 for x in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        path, ledger = Path(tmp, "j"), Path(tmp, "ledger")
        taken: list = []
        for fraction in kills:   # each run taken a while and abandoned (forced stop)
            m = IMap(worker_type=worker_type, worker_num=2, journal=path, ordered=ordered,
                     chunksize=chunksize)
            first = m.add_task(_note_to_file, range(n), (str(ledger),), key=key)
            out = m.add_task(_plus_one, first)
            m.start()
            got = list(itertools.islice(out, int(fraction * n)))
            m.stop(forced=True)
            common = min(len(got), len(taken))
            assert got[:common] == taken[:common]   # the replays, as recorded
            taken = got if len(got) > len(taken) else taken
        ledger.unlink(missing_ok=True)
        m = IMap(worker_type=worker_type, worker_num=2, journal=path, ordered=ordered,
                 chunksize=chunksize)
        first = m.add_task(_note_to_file, range(n), (str(ledger),), key=key)
        out = m.add_task(_plus_one, first)
        m.start()
        resumed = list(out)
        m.stop()
        assert resumed == expected if ordered else sorted(resumed) == expected
        assert resumed[:len(taken)] == taken   # replayed first, as recorded
        computed = [int(line) for line in
                    (ledger.read_text().split() if ledger.exists() else [])]
        recorded = {v - 1 for v in taken}
        assert sorted(computed) == sorted(set(range(n)) - recorded)
