"""PaPy 1.x's imports work, with a DeprecationWarning naming the new import."""

from __future__ import annotations

import subprocess
import sys

from support import script_env


def run(code: str) -> subprocess.CompletedProcess:
    # a fresh interpreter: the warning is given when the module is first imported
    return subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code],
                          env=script_env(), capture_output=True, text=True, timeout=120)


def test_numap_warns_and_names_imap():
    done = run("from numap import NuMap")
    assert done.returncode != 0
    assert "DeprecationWarning" in done.stderr and "from imap import IMap" in done.stderr


def test_numap_is_imap():
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c",
         "import imap; from numap import NuMap, imports; "
         "assert NuMap is imap.IMap and imports is imap.imports; print('same')"],
        env=script_env(), capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "same", done.stderr


def test_papy_core_warns_and_gives_papys_names():
    done = run("import papy.core")
    assert "DeprecationWarning" in done.stderr and "import from papy" in done.stderr
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c",
         "import papy, papy.core as c; "
         "assert (c.Piper, c.Worker, c.Dagger, c.Plumber) == "
         "(papy.Piper, papy.Worker, papy.Dagger, papy.Plumber); print('same')"],
        env=script_env(), capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "same", done.stderr
