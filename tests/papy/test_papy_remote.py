"""papy pipelines with pipers on remote workers (a real imap-server on 127.0.0.1)."""

from __future__ import annotations

import cloudpickle
import papy_funcs
import pytest
from papy_funcs import add, dbl, fail_on_3, inc, neg
from remote_helpers import server

from imap import IMap
from papy import Piper, PiperError, Plumber

# The server has this source tree (papy included) but not the tests' functions.
cloudpickle.register_pickle_by_value(papy_funcs)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def address():
    with server("imap") as (addr, _):
        yield addr


def test_diamond_with_a_remote_branch_equals_composition(address) -> None:
    local = IMap(worker_type="thread", worker_num=2, stride=4)
    remote = IMap(worker_type="thread", worker_num=0, worker_remote=[(address, 2)], stride=8)
    src = Piper(inc, parallel=local, name="src")
    near = Piper(dbl, parallel=local, name="near", branch=0)
    far = Piper(neg, parallel=remote, name="far", branch=1)
    merge = Piper(add, name="merge")
    p = Plumber(pipes=[(src, near, merge), (src, far, merge)], keep=True)
    p.start([range(200)])
    p.run()
    try:
        assert p.wait(60)
    finally:
        p.stop()
    assert p.results == {"merge": [2 * (x + 1) - (x + 1) for x in range(200)]}
    far = p.stats["pipers"]["far"]
    assert {key: far[key] for key in ("in", "out", "errors")} == {"in": 200, "out": 200,
                                                                   "errors": 0}
    assert far["busy"] > 0   # timed by the remote workers


def test_remote_worker_error_is_a_piper_error_in_place(address) -> None:
    remote = IMap(worker_type="thread", worker_num=0, worker_remote=[(address, 2)])
    bad = Piper(fail_on_3, parallel=remote, name="bad")
    after = Piper(inc, name="after")
    p = Plumber(pipes=[(bad, after)], keep=True)
    p.start([range(6)])
    p.run()
    try:
        assert p.wait(60)
    finally:
        p.stop()
    out = p.results["after"]
    assert [x for i, x in enumerate(out) if i != 3] == [1, 2, 3, 5, 6]
    assert isinstance(out[3], PiperError) and out[3].piper == "bad"
    assert "three is bad" in str(out[3].error)


@pytest.mark.parametrize("retries", [0, 2])
def test_a_pipeline_keeps_its_item_count_through_a_host_loss(retries) -> None:
    import os
    import signal

    from papy_funcs import sleepy

    with server("imap") as (addr, proc):
        m = IMap(worker_type="thread", worker_num=1, worker_remote=[(addr, 2)],
                 remote_options={"liveness": 2.0, "reconnect": False})
        work = Piper(sleepy, parallel=m, name="work", retries=retries)
        p = Plumber(pipes=[(work,)], keep=True)
        p.start([range(300)])
        p.run()
        try:
            from support import wait_until
            wait_until(lambda: p.stats["outputs"]["work"]["items"] >= 30, 30)
            os.killpg(proc.pid, signal.SIGKILL)
            assert p.wait(60)
        finally:
            p.stop()
    results = p.results["work"]
    assert len(results) == 300   # every item accounted for
    errors = [r for r in results if isinstance(r, PiperError)]
    assert p.stats["pipers"]["work"]["errors"] == len(errors)
    assert p.stats["outputs"]["work"] == {"items": 300, "errors": len(errors)}
    if retries:
        assert not errors and results == list(range(300))
    else:
        assert all(r == x for x, r in enumerate(results) if not isinstance(r, PiperError))
