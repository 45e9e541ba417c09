"""Functions decorated with ``@imports``; this module itself imports neither
``math`` nor ``json``, so the names exist only through the decorator."""

from __future__ import annotations

from imap import imports


@imports(["math", "nonexistent_mod_xyz,json"])
def encoded_root(x):
    return json.dumps(math.sqrt(x))  # noqa: F821 - bound by @imports


@imports(["os.path"])
def joined(x):
    return os.path.join("a", str(x))  # noqa: F821 - bound by @imports
