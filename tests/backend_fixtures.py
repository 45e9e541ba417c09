"""The kinds of pool every backend-wide suite runs on (the contract suite,
the soundness suite): the fixtures ``backend`` and ``remote_address``, which
conftest.py makes available to every test module.

Each kind has two workers: thread and process workers, remote workers (a
real ``imap-server`` on 127.0.0.1), a mixed pool (one process and one
remote connection), a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor`` and
a Dask ``LocalCluster``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib

import pytest
from remote_helpers import server

BACKENDS = ["thread", "process", "remote", "mixed", "thread-executor", "process-executor",
            "dask"]


@pytest.fixture(scope="module")
def remote_address():
    with server("imap") as (address, _):
        yield address


@pytest.fixture(params=BACKENDS)
def backend(request, remote_address):
    """IMap keyword options for one kind of pool of two workers."""
    kind = request.param
    request.node.backend_kind = kind
    with contextlib.ExitStack() as stack:
        if kind == "thread":
            yield kind, {"worker_type": "thread", "worker_num": 2}
        elif kind == "process":
            yield kind, {"worker_num": 2}
        elif kind == "remote":
            yield kind, {"worker_num": 0, "worker_remote": [(remote_address, 2)]}
        elif kind == "mixed":
            yield kind, {"worker_num": 1, "worker_remote": [(remote_address, 1)]}
        elif kind == "thread-executor":
            pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(2))
            yield kind, {"executor": pool}
        elif kind == "process-executor":
            pool = stack.enter_context(concurrent.futures.ProcessPoolExecutor(2))
            yield kind, {"executor": pool}
        else:
            yield kind, {"executor": request.getfixturevalue("dask_client")}
