"""papy.util.func: the ready worker functions."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from papy import Piper
from papy.util import func

pytestmark = pytest.mark.timeout(30)


def test_passers() -> None:
    assert func.ipasser((1, 2, 3), 1) == 2
    assert func.npasser((1, 2, 3), 2) == (1, 2)
    assert func.spasser((1, 2, 3), (2, 0)) == (3, 1)
    assert func.spasser((1, 2)) == (1, 2)


def test_zipper_and_unzipper() -> None:
    assert func.zipper(((1, 2), ("a", "b"))) == ((1, "a"), (2, "b"))
    assert func.unzipper((((1, "a"), (2, "b")),)) == ((1, 2), ("a", "b"))


def test_joiners() -> None:
    assert func.sjoiner(("a", "b", "c"), (2, 0), "-") == "c-a"
    assert func.njoiner(("a", "b", "c"), 2) == "ab"


def test_print_passes_the_item(capsys) -> None:
    assert func.print_((5,), "item ") == 5
    assert capsys.readouterr().out == "item 5\n"


def test_pickle_and_json_round_trips() -> None:
    assert func.pickle_loads((func.pickle_dumps(({"a": 1},)),)) == {"a": 1}
    assert func.json_loads((func.json_dumps(([1, "x"],)),)) == [1, "x"]


def test_dump_and_load_item(tmp_path: Path) -> None:
    path = func.dump_item(([1, 2],), str(tmp_path))
    assert Path(path).parent == tmp_path
    assert func.load_item((path,), remove=True) == [1, 2]
    assert not Path(path).exists()


def test_stream_dump_and_load() -> None:
    handle = io.StringIO()
    for item in ({"a": 1}, [2], "x"):
        func.dump_stream((item,), handle)
    handle.seek(0)
    assert list(func.load_stream(handle)) == [{"a": 1}, [2], "x"]


def test_write_line_and_make_lines(tmp_path: Path) -> None:
    path = str(tmp_path / "out.txt")
    for x in (1, 2):
        func.write_line((x,), path, "str")
    with open(path) as handle:
        assert list(func.make_lines(handle)) == ["1", "2"]


def test_functions_work_as_pipers() -> None:
    from papy import Worker

    p = Piper(Worker((func.json_dumps, func.json_loads)))
    p.connect([[{"k": 1}, [3]]])
    assert list(p) == [{"k": 1}, [3]]
