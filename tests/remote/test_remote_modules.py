"""The user's own modules reach remote workers by value: a helper module
outside the servers' path, used by a task, by its arguments and by the
classes of its items and results."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
from remote_helpers import collect, server

from imap import IMap, UnsendableError
from imap.transport.byvalue import is_user_module

pytestmark = pytest.mark.timeout(90)

MYLIB = '''
import math

class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm(self):
        return math.hypot(self.x, self.y)

def _weight(p):
    return 2

def score(p, offset=0):
    return Point(p.x * _weight(p) + offset, p.y)

def square(x):
    return x * x
'''


@pytest.fixture
def mylib(tmp_path, monkeypatch):
    name = f"mylib_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MYLIB))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


def test_user_modules_are_told_from_installed_ones(mylib):
    assert is_user_module(mylib.__name__)
    assert not is_user_module("json")             # the standard library
    assert not is_user_module("cloudpickle")      # installed in site-packages
    assert not is_user_module("imap.core")        # takes care of itself


@pytest.mark.parametrize("kind", ["imap", "classic"])
def test_a_task_from_a_module_the_host_lacks_runs_remotely(mylib, kind):
    points = [mylib.Point(x, -x) for x in range(20)]
    with server(kind) as (addr, _):
        with IMap(worker_num=0, worker_remote=[(addr, 2)]) as m:
            plain = m.add_task(mylib.square, range(20))
            scored = m.add_task(mylib.score, points, kwargs={"offset": 1})
            m.start()
            assert list(plain) == [x * x for x in range(20)]
            got = collect(scored)
    assert all(isinstance(p, mylib.Point) for p in got), got[:2]   # the parent's class
    assert [(p.x, p.y) for p in got] == [(2 * x + 1, -x) for x in range(20)]


def test_a_module_sent_by_reference_that_the_host_lacks_is_named(mylib, tmp_path,
                                                                  monkeypatch):
    # As if mylib were an installed package: it is sent by reference, and the
    # host, which does not have it, says which module to install.
    from imap.transport import byvalue

    monkeypatch.setattr(byvalue, "_installed_prefixes", lambda: (f"{tmp_path}/",))
    with server("classic") as (addr, _):
        with IMap(worker_num=0, worker_remote=[(addr, 1)]) as m:
            task = m.add_task(mylib.square, [3])
            m.start()
            with pytest.raises(UnsendableError, match=f"module '{mylib.__name__}' is not "
                                                      f"installed there"):
                next(task)
