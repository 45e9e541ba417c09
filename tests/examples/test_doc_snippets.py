"""Every Python snippet of README.md and doc/*.rst runs, so the docs stay true.

Snippets of one file run in order in one namespace (``__name__ ==
"__main__"``), after a short prelude that defines the example names the
prose uses without defining (``f``, ``data``, ...). A snippet with ``>>>``
lines is a doctest: its printed output must match. Any other snippet is
executed and must not raise; what it prints must match its ``# prints: ...``
comments, in order (``...`` matches anything). Shell and text blocks (``sh``, ``text``,
``console``) are not Python and are not run. The few snippets that cannot
run here are listed in ``NOT_RUN`` with the reason.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import re
import textwrap
from pathlib import Path

import pytest

import imap
from papy import Dagger, Plumber

ROOT = Path(__file__).resolve().parents[2]
FILES = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "doc").glob("*.rst"))

PRELUDE = '''
import math
from math import degrees, radians
from multiprocessing.pool import ThreadPool
from imap import IMap

def f(x, *args, **kwargs):
    return x * x

def checked(x):
    if x == 3:
        raise ValueError("three")
    return x

f0 = f1 = f2 = func = fetch = f
item = 1
data = data_a = data_b = a = b = items = urls = huge_iterable = iterable = list(range(20))
pool = _threads = ThreadPool(1)                      # the multiprocessing pool of the intro
m = IMap(worker_type="thread", worker_num=1)         # an IMap before the text makes one
_errors = IMap(worker_type="thread", worker_num=1)
results = _errors.add_task(checked, items)           # an output with a failing item
_errors.start()
'''

# (file, the snippet's first line) -> why it is not run
NOT_RUN = {
    ("doc/engine.rst", "# job.py"):
        "a job the prose kills and runs again (examples/resume.py does that, run by "
        "tests/test_examples.py)",
    ("doc/remote.rst", "import cloudpickle, mymodule"):
        "stands for the reader's own module (there is no 'mymodule')",
    ("doc/scaling.rst", "from distributed import Client"):
        "needs a Dask scheduler at that address (examples/dask_cluster.py runs one)",
    ("doc/scaling.rst", "import dask"):
        "needs that Dask client and a worker with a GPU resource "
        "(tests/test_executor.py places tasks by annotation)",
}

pytestmark = pytest.mark.timeout(120)


def markdown_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def rst_blocks(text: str) -> list[str]:
    """Literal blocks after ``::`` and ``.. code-block:: python`` directives."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = re.match(r"\s*\.\. code-block::\s*(\S+)", line)
        literal = line.rstrip().endswith("::") and not line.lstrip().startswith("..")
        if (directive and directive.group(1) in ("python", "pycon")) or literal:
            indent = len(line) - len(line.lstrip())
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip()
                                      or len(lines[i]) - len(lines[i].lstrip()) > indent):
                body.append(lines[i])
                i += 1
            code = textwrap.dedent("\n".join(body)).strip("\n")
            if code and not code.startswith(":"):   # directive options are not code
                blocks.append(code + "\n")
            continue
        i += 1
    return blocks


def snippets(name: str) -> list[str]:
    text = (ROOT / name).read_text()
    return markdown_blocks(text) if name.endswith(".md") else rst_blocks(text)


def first_line(code: str) -> str:
    return code.strip().splitlines()[0].strip()


@pytest.mark.parametrize("name", FILES)
def test_snippets_run(name: str) -> None:
    namespace: dict = {"__name__": "__main__"}
    exec(PRELUDE, namespace)
    started: list = []   # what snippets start, stopped at the end (names get rebound)
    for code in snippets(name):
        started += [v for v in namespace.values()
                    if isinstance(v, (imap.IMap, Dagger, Plumber))]
        if (name, first_line(code)) in NOT_RUN:
            continue
        if ">>>" in code:
            test = doctest.DocTestParser().get_doctest(code, namespace, name, name, 0)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
            runner.run(test, clear_globs=False)
            assert not runner.failures, f"{name}: the output of\n{code}\ndiffers (above)"
        else:
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed):
                    exec(compile(code, f"<{name}: {first_line(code)}>", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"{name}: this snippet raised {exc!r}:\n{code}") from exc
            promised = re.findall(r"#\s*prints:\s*(.*?)\s*$", code, re.M)
            if promised:
                want, got = "\n".join(promised) + "\n", printed.getvalue()
                assert doctest.OutputChecker().check_output(want, got, doctest.ELLIPSIS), (
                    f"{name}: the snippet promises\n{want}but prints\n{got}\n{code}")
    for value in started + list(namespace.values()):   # stop what is left running
        if isinstance(value, imap.IMap) and value.running:
            value.stop(forced=True)
        elif isinstance(value, (Dagger, Plumber)):
            value.stop(forced=True)
    namespace["_threads"].terminate()
    namespace["_threads"].join()


def test_not_run_entries_exist() -> None:
    for name, line in NOT_RUN:
        assert line in [first_line(c) for c in snippets(name)], (name, line)
