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
    assert func.spasser((1, 2)) == (1, 2)


def test_spasser_keeps_the_inbox_order_as_papy1() -> None:
    assert func.spasser((1, 2, 3), [2, 0]) == (1, 3)


def test_sjoiner_joins_in_the_inbox_order() -> None:
    assert func.sjoiner(("a", "b", "c"), [2, 0], "-") == "a-c"


def test_plugger_returns_nothing() -> None:
    assert func.plugger((1,)) is None


def test_nzipper_gives_the_items_of_a_consumed_group() -> None:
    assert func.nzipper(([1], [2], [3])) == (1, 2, 3)
    assert func.nzipper(([1], [2], [3]), 2) == (1, 2)


def test_nzipper_of_nothing_says_so() -> None:
    with pytest.raises(ValueError, match="nothing to zip"):
        func.nzipper(())


def test_szipper_zips_the_chosen_elements_in_inbox_order() -> None:
    assert func.szipper(((1, 2), "xy", ("a", "b")), [2, 0]) == [(1, "a"), (2, "b")]
    assert func.szipper(((1, 2), "xy")) == [(1, "x"), (2, "y")]


def test_pickle_stream_round_trip() -> None:
    stream = io.BytesIO()
    items = [{"a": 1}, [2, 3], None]
    assert [func.dump_pickle_stream((x,), stream) for x in items] == items
    stream.seek(0)
    assert list(func.load_pickle_stream(stream)) == items


def test_load_item_mmap_maps_a_raw_item(tmp_path) -> None:
    path = func.dump_item((b"large payload",), str(tmp_path), raw=True)
    mapped = func.load_item((path,), remove=True, type="mmap")
    assert mapped[:] == b"large payload" and not Path(path).exists()
    mapped.close()


def test_load_item_bytes_and_object(tmp_path) -> None:
    raw = func.dump_item(("text",), str(tmp_path), raw=True)
    assert func.load_item((raw,), type="bytes") == b"text"
    pickled = func.dump_item(({"k": [1]},), str(tmp_path))
    assert func.load_item((pickled,)) == {"k": [1]}


def test_dump_item_raw_refuses_an_object(tmp_path) -> None:
    with pytest.raises(TypeError, match="leave raw=False"):
        func.dump_item(({"k": 1},), str(tmp_path), raw=True)


def test_load_item_refuses_an_unknown_type(tmp_path) -> None:
    with pytest.raises(ValueError, match="'object', 'bytes' or 'mmap'"):
        func.load_item(("x",), type="string")


def test_zipper_and_unzipper() -> None:
    assert func.zipper(((1, 2), ("a", "b"))) == ((1, "a"), (2, "b"))
    assert func.unzipper((((1, "a"), (2, "b")),)) == ((1, 2), ("a", "b"))


def test_joiners() -> None:
    assert func.sjoiner(("a", "b", "c"), (2, 0), "-") == "a-c"   # inbox order, as PaPy 1.x
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
