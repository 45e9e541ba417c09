"""Fixtures of the engine's test suite.

Every test is checked for threads and worker processes left running after it
(an IMap must join everything it started); a test that owns that check itself
is marked ``allow_leftovers``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import settings

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:  # the helper modules, whatever pytest's import mode
    sys.path.insert(0, TESTS)

# The kinds of pool of the backend-wide suites (contract, soundness).
from backend_fixtures import backend, remote_address  # noqa: E402, F401
from support import describe_leftovers, snapshot, wait_until  # noqa: E402

settings.register_profile("imap", deadline=None, database=None, print_blob=True)
settings.load_profile("imap")

# Long enough for worker shutdown that is in progress, short enough to fail fast.
LEFTOVER_GRACE = 5.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_leftovers: the test checks leftover threads/processes itself"
    )


@pytest.fixture(autouse=True)
def _nothing_left_running(request: pytest.FixtureRequest):
    """Fail a test that leaves threads or child processes running."""
    if request.node.get_closest_marker("allow_leftovers"):
        yield
        return
    before = snapshot()
    yield
    try:
        wait_until(lambda: not describe_leftovers(before), LEFTOVER_GRACE)
    except AssertionError:
        pytest.fail(
            f"left running {LEFTOVER_GRACE} s after the test: {describe_leftovers(before)}",
            pytrace=False,
        )


@pytest.fixture(params=["thread", "process"])
def worker_type(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once on thread and once on process workers."""
    return request.param


@pytest.fixture(scope="module")
def dask_client():
    """A Client of a real Dask LocalCluster: 2 worker processes of 1 thread
    each on 127.0.0.1, one per test module (tests using it are marked
    ``allow_leftovers``: Dask keeps threads of its own between tests)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            yield client
