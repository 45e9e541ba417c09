"""Every script in examples/ runs to completion and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

# Text that each example must print. An example not listed here only has to
# exit with status 0 and print something.
EXPECTED = {
    "dask_cluster.py": ["Dask cluster with 2 worker threads", "as expected: True"],
    "remote_workers.py": [
        "2 remote workers", "computed in process remote", "done: 10 results, as expected: True",
    ],
    "pipeline_demo.py": [
        "2 branches on one IMap of 2 worker processes, 1 on remote workers",
        "merge   in= 60 out= 60 errors=0",
        "progress: 60/60 records",
        "done: 60 records written",
        "verdict: ",
        "pipeline drawn: ",
    ],
    "arrays.py": [
        "60 images of 512 x 512 through blur, then normalise, on 2 worker processes",
        "results are read-only: True",
        "writing into one: ValueError: assignment destination is read-only",
        "a copy can be edited: True",
        "identical to the serial computation: True",
    ],
    "chained_tasks.py": [
        "3 chained tasks on 2 worker processes",
        "record   0:",
        "record  39:",
        "progress: 40/40 results",
        "done: 40 results, identical to the serial computation: True",
    ],
    "unlike_hosts.py": [
        "scene 0 rendered by host gpu",
        "scene 5 rendered by host gpu",
        "anneal: ImpossibleDependency, refused by 3 workers",
        "render may run on ['127.0.0.1:",
    ],
    "resume.py": [
        "first run: taken 1200, then killed with SIGKILL",
        "results replayed from the journal,",
        "done: 2000 results, the uninterrupted output: True",
    ],
    "fasta_gc.py": [
        "pipeline: ['parse', 'gc', 'length', 'rich', 'merge', 'write']",
        "300 records parsed, 151 dropped below GC 0.5, 149 written to fasta_gc_out",
        "identical to the serial computation: True",
    ],
    "unordered_timeouts.py": [
        "arrival order:",
        "every item came back exactly once: True",
        "a: value of a",
        "slow: no answer within 0.5 s, skipped",
        "d: value of d",
        "results skipped: 1",
        "not ready after 0.5 s",
        "slow: value of slow",
    ],
}


def test_every_example_has_expectations() -> None:
    names = {path.name for path in EXAMPLES}
    assert set(EXPECTED) <= names, f"examples missing: {sorted(set(EXPECTED) - names)}"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("script", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    env = dict(os.environ)
    # Import the package from this source tree even when it is not installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert proc.returncode == 0, f"{script.name} exited with {proc.returncode}\n{output}"
    assert proc.stdout.strip(), f"{script.name} printed nothing\n{output}"
    for text in EXPECTED.get(script.name, []):
        assert text in proc.stdout, f"{script.name} did not print {text!r}\n{output}"
