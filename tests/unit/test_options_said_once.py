"""The options are said once: the Options record is the list.

IMap's signature, its docstring, ``IMap.options`` and the README's table of
options are held to :class:`imap.options.Options`: a new option is one new
field there, and these tests say what else must name it.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

from imap import IMap
from imap.options import Options

README = Path(__file__).resolve().parents[2] / "README.md"
TASK_ARGS = ("func", "iterable", "args", "kwargs")
FIELDS = [f.name for f in dataclasses.fields(Options)]


def _parameters() -> dict:
    params = dict(inspect.signature(IMap.__init__).parameters)
    params.pop("self")
    return params


def test_imap_takes_its_first_task_then_every_option_in_the_records_order():
    names = list(_parameters())
    assert names[:len(TASK_ARGS)] == list(TASK_ARGS)
    assert names[len(TASK_ARGS):] == FIELDS


def test_imaps_defaults_make_the_records_defaults():
    params = _parameters()
    given = {name: params[name].default for name in FIELDS}
    assert Options(**given) == Options()


def test_every_option_is_documented_in_the_imap_docstring():
    doc = IMap.__doc__ or ""
    missing = [name for name in FIELDS if not re.search(rf"^\s+{name}: ", doc, re.M)]
    assert not missing, f"IMap's docstring does not describe {missing}"


def test_every_option_is_in_the_readmes_table():
    text = README.read_text().split("### Options", 1)[1]
    table = "\n".join(line for line in text.splitlines() if line.startswith("| `"))
    missing = [name for name in FIELDS if f"`{name}`" not in table]
    assert not missing, f"README.md's table of options does not name {missing}"


def test_options_gives_back_every_field_and_remakes_the_imap():
    m = IMap(worker_type="thread", worker_num=1, stride=3, buffer=9, ordered=False)
    kwargs = m.options
    assert set(kwargs) == set(FIELDS)
    assert IMap(**kwargs).options == kwargs
