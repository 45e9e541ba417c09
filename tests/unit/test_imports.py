"""``@imports``: import statements that travel with a function."""

from __future__ import annotations

import imports_helper
import pytest

import imap
from imap import imports

ROOTS = [f"{x ** 0.5!r}" for x in range(6)]


def test_imported_names_are_bound_where_the_function_runs(worker_type):
    with imap.IMap(worker_type=worker_type, worker_num=2) as m:
        m.add_task(imports_helper.encoded_root, range(6))
        m.start()
        assert list(m) == ROOTS


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_imports_run_in_fresh_worker_processes(start_method):
    with imap.IMap(worker_type="process", worker_num=2, start_method=start_method) as m:
        first = m.add_task(imports_helper.encoded_root, range(6))
        second = m.add_task(imports_helper.joined, first)
        m.start()
        assert list(second) == [f"a/{root}" for root in ROOTS]


def test_decorated_function_defined_in_a_test_travels_by_value(worker_type):
    # This module does not import json or math itself.
    @imports(["json", "math"])
    def encoded_floor(x):
        return json.dumps(math.floor(x / 2))  # noqa: F821 - bound by @imports

    with imap.IMap(worker_type=worker_type, worker_num=2) as m:
        m.add_task(encoded_floor, range(5))
        m.start()
        assert list(m) == ["0", "0", "1", "1", "2"]


def test_decorated_function_still_runs_locally():
    assert imports_helper.encoded_root(9) == "3.0"


def test_decorator_keeps_the_function_name():
    assert imports_helper.encoded_root.__name__ == "encoded_root"


def test_no_importable_alternative_is_an_import_error():
    with pytest.raises(ImportError, match="nonexistent_mod_xyz"):

        @imports(["nonexistent_mod_xyz,nonexistent_mod_abc"])
        def uses_nothing(x):
            return x

        uses_nothing(1)
