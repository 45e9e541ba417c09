"""papy: ``Piper(retries=n)`` lets a pipeline ride out the loss of a worker
without losing the item the worker held."""

from __future__ import annotations

from pathlib import Path

import pytest
from papy_funcs import dbl, exit_on_first_attempt, inc
from support import run_piper as run

import imap
from papy import Piper, PiperError, Plumber, Worker

pytestmark = pytest.mark.timeout(90)

VICTIM = 3


def killer(marker: Path) -> Worker:
    """A worker whose process dies at the first attempt at item VICTIM."""
    return Worker(exit_on_first_attempt, arguments=[(VICTIM, str(marker))])


def process_imap() -> imap.IMap:
    # One tasklet a batch: the death costs exactly the item that caused it.
    return imap.IMap(worker_type="process", worker_num=2, chunksize=1)


@pytest.mark.parametrize("spawn", [1, 2])
def test_retries_run_the_item_of_a_dead_worker_again(tmp_path, spawn):
    with process_imap() as m:
        out = run(Piper(killer(tmp_path / "died"), parallel=m, retries=1, spawn=spawn),
                  range(8))
    assert out == [2 * x for x in range(8)]
    assert (tmp_path / "died").exists()  # made just before the first attempt's os._exit


def test_without_retries_the_item_of_a_dead_worker_is_a_piper_error(tmp_path):
    with process_imap() as m:
        out = run(Piper(killer(tmp_path / "died"), parallel=m, name="k", retries=0), range(8))
    assert len(out) == 8
    assert [out[i] for i in range(8) if i != VICTIM] == [2 * x for x in range(8) if x != VICTIM]
    error = out[VICTIM]
    assert isinstance(error, PiperError) and error.piper == "k"
    assert isinstance(error.error, imap.WorkerLostError)


def test_a_plumber_keeps_every_item_through_a_worker_loss(tmp_path):
    m = process_imap()
    first = Piper(killer(tmp_path / "died"), parallel=m, retries=1, name="first")
    p = Plumber(pipes=[(first, Piper(inc, parallel=m, name="second"))], keep=True)
    p.start([range(10)])
    p.run()
    assert p.wait(60) is True
    p.stop()
    assert p.results == {"second": [2 * x + 1 for x in range(10)]}
    assert p.stats["pipers"]["first"]["errors"] == 0


# --- the option itself ---------------------------------------------------------------


@pytest.mark.parametrize("retries", [-1, 1.5, "1", True])
def test_retries_must_be_an_int_of_at_least_zero(retries):
    m = imap.IMap(worker_type="thread", worker_num=1)
    with pytest.raises(PiperError, match=r"retries must be an int >= 0, got " + repr(retries)):
        Piper(inc, parallel=m, retries=retries)


def test_an_inline_piper_with_retries_is_refused():
    with pytest.raises(PiperError, match=r"retries=2 needs parallel=IMap"):
        Piper(inc, retries=2)
    assert Piper(inc, retries=0).retries == 0


def test_repr_shows_retries_only_when_not_the_default():
    m = imap.IMap(worker_type="thread", worker_num=1, name="pool")
    assert repr(Piper(inc, parallel=m, name="a", retries=0)) == "Piper('a', pool, retries=0)"
    assert repr(Piper(inc, parallel=m, name="b")) == "Piper('b', pool)"


def test_a_piper_on_an_imap_retries_twice_by_default_and_an_inline_one_never():
    m = imap.IMap(worker_type="thread", worker_num=1)
    assert Piper(inc, parallel=m).retries == 2
    assert Piper(inc).retries == 0


def test_save_and_load_keep_retries(tmp_path):
    m = imap.IMap(worker_type="thread", worker_num=2)
    p = Plumber(pipes=[(Piper(inc, parallel=m, name="a", retries=0),
                        Piper(dbl, parallel=m, name="b"))])
    path = tmp_path / "saved.py"
    p.save(str(path))
    lines = path.read_text().splitlines()
    assert [line for line in lines if "retries" in line] == [
        line for line in lines if "name='a'" in line]
    q = Plumber().load(str(path))
    assert q.resolve("a").retries == 0 and q.resolve("b").retries == 2


def test_at_defaults_a_piper_loses_no_item_to_a_worker_lost_once(tmp_path):
    with process_imap() as m:
        out = run(Piper(killer(tmp_path / "died"), parallel=m, name="k"), range(8))
    assert out == [2 * x for x in range(8)]
    assert (tmp_path / "died").exists()   # the worker did die, at the first attempt
