"""Every example of PaPy 1.0.7's doc/examples, ported, prints what the original printed.

The ports are in ``tests/papy1_examples/`` (see its README): Python 3 mechanics
and a ``__main__`` guard only. ``tests/papy1_examples/expected/`` holds the
output of each original example run under Python 2.7 with PaPy 1.0.7 (grid and
remote against a Python 2 ``rpyc_classic`` on localhost), except
``workflow.out``, derived by reading the example: its ``nubio`` package is not
to be had (the port uses a stand-in), so the original could not run.

Each port runs in its own interpreter, unbuffered as on a terminal. Output
printed by worker processes comes in the order the workers ran, which neither
the original nor this project fixes: for those examples the test compares the
printed records as multisets (each record printed once, none missing), and
what the example's main thread prints (results, section headers) exactly.
Process ids and clock times are compared as placeholders.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from remote_helpers import server

pytestmark = pytest.mark.timeout(240)

HERE = Path(__file__).parent / "papy1_examples"
EXPECTED = HERE / "expected"
RUN_TIMEOUT = 180   # seconds one port may take (most take about one)


def exact(text: str) -> str:
    return text


def records(pattern: str) -> Callable[[str], list]:
    """The records that match ``pattern``, sorted: order-free, count-true."""
    def normal(text: str) -> list:
        return sorted(re.findall(pattern, text))
    return normal


def numbers_as_n(text: str) -> str:
    return re.sub(r"\d+", "N", text)


def buffer_sections(text: str) -> tuple:
    """What is printed before "last 2:" and after, each as a multiset."""
    first, _, last = text.partition("last 2:")
    return (first.startswith("first 6:"), sorted(re.findall(r"[LR]\d", first)),
            sorted(re.findall(r"[LR]\d", last)))


def times_as_t(text: str) -> str:
    return re.sub(r"\d+_\d+_\d+@\d+:\d+:\d+", "<time>", text)


#: How each example's output is compared (see the module's docstring).
COMPARE: dict[str, Callable] = {
    "args": records(r"Hello (?:element: element_\d|args: \(.*?\)|kwargs: \{.*?\})"),
    "branch": records(r"in (?:left|right|root): (?:\('left_\d', 'right_\d'\)|\w+_\d)"),
    "buffer": buffer_sections,
    "chain": records(r"in (?:source|pipe|sink): element_\d"),
    "consume": exact,
    "dagger": exact,
    "dagger_inputs": exact,
    "fork": exact,
    "func": numbers_as_n,
    "ipc": numbers_as_n,
    "join": exact,
    "ordered": exact,
    "parallel_piper": exact,
    "piper": exact,
    "plumber": exact,
    "produce": exact,
    "produce_consume": exact,
    "produce_spawn_consume": exact,
    "skip": exact,
    "stride": records(r"[LR]\d"),
    "worker": exact,
    "workflow": times_as_t,
    "world": records(r"Hello element: element_\d"),
}
REMOTE = {"grid": numbers_as_n, "remote": exact}


def run_port(name: str, cwd: Path, env: dict | None = None) -> str:
    """Run the port ``name`` in its own interpreter; its stdout (it must exit 0)."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(cwd), **(env or {}))
    script = HERE / "script" / f"{name}.py" if name == "script_workflow" else HERE / f"{name}.py"
    done = subprocess.run([sys.executable, str(script)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{name}.py exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def expected(name: str) -> str:
    return (EXPECTED / f"{name}.out").read_text()


def test_every_original_example_has_a_port_and_an_expected_output() -> None:
    ported = set(COMPARE) | set(REMOTE) | {"script_workflow"}
    assert {p.stem for p in EXPECTED.glob("*.out")} == ported
    assert all((HERE / f"{name}.py").exists() for name in set(COMPARE) | set(REMOTE))
    assert len(ported) == 26   # the original ships 25 examples and the script workflow


@pytest.mark.parametrize("name", sorted(COMPARE))
def test_port_prints_what_the_original_printed(name: str, tmp_path: Path) -> None:
    normal = COMPARE[name]
    assert normal(run_port(name, tmp_path)) == normal(expected(name))


@pytest.fixture(scope="module")
def remote_address():
    with server("imap") as (address, _):
        yield address


@pytest.mark.parametrize("name", sorted(REMOTE))
def test_remote_port_prints_what_the_original_printed(name: str, remote_address: str,
                                                      tmp_path: Path) -> None:
    normal = REMOTE[name]
    out = run_port(name, tmp_path, {"PAPY1_REMOTE": remote_address})
    assert normal(out) == normal(expected(name))


def test_script_workflow_port_prints_and_writes_what_the_original_did(
        tmp_path: Path) -> None:
    work = tmp_path / "script"
    shutil.copytree(HERE / "script", work)
    out = run_port("script_workflow", work)
    assert out.replace(str(work), "<dir>") == expected("script_workflow")
    assert (work / "work_moar_sh-greeting.txt").read_text() == "work moar\n"
    assert (work / "nevar_give_up_sh-greeting_py-package.txt").read_text() == (
        "bash says: nevar give up\npython says: happy!")
    assert not list(work.glob("*.json"))   # the scripts' argument files are gone
