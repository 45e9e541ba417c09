"""Progress bars end when the last result is taken, in the consumer's thread,
are not drawn again at stop(), and log records are written above them."""

from __future__ import annotations

import io
import logging

import pytest
import tqdm
from papy_funcs import inc

import imap
from papy import Piper, Plumber

pytestmark = pytest.mark.timeout(60)

CLOSED: list = []


class Recorded(tqdm.std.tqdm):
    """A tqdm bar on a StringIO that notes its closing (no monitor thread)."""

    monitor_interval = 0

    def __init__(self, *args, **kwargs):
        kwargs["file"] = io.StringIO()
        super().__init__(*args, **kwargs)

    def close(self):
        if not self.disable:
            CLOSED.append((self.desc, self.n))
        super().close()


@pytest.fixture(autouse=True)
def _fresh():
    CLOSED.clear()
    yield


def test_imap_bars_close_before_list_returns():
    with imap.IMap(worker_type="thread", worker_num=2, progress=Recorded) as m:
        out = m.add_task(lambda x: x, range(50))
        m.start()
        assert len(list(out)) == 50
        assert [n for _, n in CLOSED] == [50]   # closed already, by list()'s thread
    assert len(CLOSED) == 1                     # stop() drew nothing again


def test_dropped_items_count_as_done_on_the_bar():
    with imap.IMap(worker_type="thread", worker_num=2, progress=Recorded) as m:
        out = m.add_task(lambda x: imap.DROP if x % 2 else x, range(20))
        m.start()
        assert list(out) == list(range(0, 20, 2))
        assert [n for _, n in CLOSED] == [20]


def test_plumber_bars_close_before_wait_returns():
    p = Plumber(pipes=[(Piper(inc, name="a"), Piper(inc, name="b"))])
    p.start([range(30)])
    p.run(progress=Recorded)
    assert p.wait(60)
    assert CLOSED == [("b", 30)]
    p.stop()
    assert CLOSED == [("b", 30)]


def test_log_records_are_written_above_open_bars(capsys):
    root = logging.getLogger()
    before = list(root.handlers)
    handler = logging.StreamHandler()   # a console handler, as basicConfig makes
    root.addHandler(handler)
    try:
        with imap.IMap(worker_type="thread", worker_num=1, progress=Recorded) as m:
            out = m.add_task(lambda x: x, range(3))
            m.start()
            redirected = [type(h).__name__ for h in root.handlers]
            assert handler not in root.handlers   # tqdm's handler stands in for it
            assert "_TqdmLoggingHandler" in redirected
            list(out)
        assert handler in root.handlers           # given back once the bars closed
    finally:
        root.removeHandler(handler)
    assert root.handlers == before
