"""Log records emitted in process workers arrive in the parent's loggers."""

from __future__ import annotations

import logging
import os

import pytest
import worker_funcs as wf
from support import collecting

import imap

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def collected():
    with collecting() as handler:
        yield handler


@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_records_from_process_workers_reach_the_parent_handlers(collected, start_method):
    with imap.IMap(worker_type="process", worker_num=2, start_method=start_method) as m:
        task = m.add_task(wf.log_and_return, range(10))
        m.start()
        assert list(task) == list(range(10))
    infos = sorted(r.getMessage() for r in collected.records if r.levelno == logging.INFO)
    assert infos == sorted(f"item {x}" for x in range(10))   # INFO is not dropped
    warnings = [r for r in collected.records if r.levelno == logging.WARNING]
    assert len(warnings) == 5
    for record in collected.records:
        assert record.name == "imap_test.worker"
        assert record.process != os.getpid()
        assert record.worker == f"process {record.process}"
    assert all("ValueError: odd" in r.exc_text for r in warnings)
    # formatted by the parent's formatter, traceback included
    text = logging.Formatter("%(worker)s %(message)s").format(warnings[0])
    assert text.startswith("process ") and "Traceback" in text


def test_the_parent_level_filters_worker_records(collected):
    logging.getLogger("imap_test.worker").setLevel(logging.WARNING)
    with imap.IMap(worker_type="process", worker_num=2) as m:
        task = m.add_task(wf.log_and_return, range(10))
        m.start()
        assert list(task) == list(range(10))
    assert {r.levelno for r in collected.records} == {logging.WARNING}


def test_worker_logs_false_leaves_worker_logging_alone(collected):
    with imap.IMap(worker_type="process", worker_num=2, worker_logs=False) as m:
        task = m.add_task(wf.log_and_return, range(10))
        m.start()
        assert list(task) == list(range(10))
    assert collected.records == []
    with pytest.raises(TypeError, match="worker_logs"):
        imap.IMap(worker_logs="yes")


def log_remotely(x):
    """Travels by value (the servers have nothing of this source tree)."""
    import logging

    logging.getLogger("imap_test.worker").info("remote item %d", x)
    return x


def log_in_initializer():
    import logging

    logging.getLogger("imap_test.worker").warning("initializer ran")


@pytest.mark.parametrize("kind", ["imap", "classic"])
def test_records_from_remote_workers_reach_the_parent_handlers(collected, kind):
    import cloudpickle
    from remote_helpers import server

    cloudpickle.register_pickle_by_value(__import__(__name__))
    try:
        with server(kind) as (addr, _):
            with imap.IMap(worker_type="thread", worker_num=0, worker_remote=[(addr, 2)],
                           initializer=log_in_initializer) as m:
                task = m.add_task(log_remotely, range(10))
                m.start()
                assert list(task) == list(range(10))
    finally:
        cloudpickle.unregister_pickle_by_value(__import__(__name__))
    infos = sorted(r.getMessage() for r in collected.records if r.levelno == logging.INFO)
    assert infos == sorted(f"remote item {x}" for x in range(10))
    inits = [r for r in collected.records if r.getMessage() == "initializer ran"]
    assert len(inits) == 2   # once per connection
    for record in collected.records:
        assert record.worker.startswith(f"remote {addr}#")


def test_unreadable_worker_records_are_reported_not_raised(caplog):
    from imap.transport import wire

    with collecting() as handler, caplog.at_level(logging.WARNING, logger="imap"):
        wire.relay_logs(b"not a pickle", "process 1")   # the answer it came with goes on
    assert handler.records == []
    assert "log records from process 1 could not be read here" in caplog.text
