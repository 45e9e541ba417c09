"""Refuse, at ``start()``, a script whose worker processes could not start.

Worker processes started by ``"spawn"`` or ``"forkserver"`` import the main
module first (multiprocessing does, so that what the script defines exists
there too). Two kinds of script break that, and each would otherwise print
multiprocessing's long traceback once per worker, then fail every item:

* a script that starts an IMap at import time, without
  ``if __name__ == "__main__":`` around it: importing it in a worker would
  start another IMap there;
* a script read from standard input (``python - < script.py``): there is no
  file to import.

:func:`check_main_module` sees both in the parent, before any worker starts,
and raises one :class:`RuntimeError` that says what to change. It is silent
wherever it cannot be sure (no source, an interactive session, ``-c``).
"""

from __future__ import annotations

import ast
import os
import sys
from types import FrameType

_FIX = ("put the code that starts it under `if __name__ == \"__main__\":` (see the "
        "README), or use IMap(..., start_method=\"fork\")")


def check_main_module(start_method: str) -> None:
    """Raise RuntimeError if worker processes started by ``start_method``
    cannot import the main module (see the module docstring)."""
    if start_method == "fork":
        return
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None:  # interactive, or python -c: workers do not import it
        return
    if not os.path.exists(path):
        raise RuntimeError(
            f"worker processes started by {start_method!r} import the main module, but "
            f"this script has no file ({path}): save it to a file and run that, or use "
            f"IMap(..., start_method=\"fork\")")
    frame = _main_frame(main.__dict__)
    if frame is None:
        return
    if not _guarded(frame.f_code.co_filename, frame.f_lineno):
        raise RuntimeError(
            f"{os.path.basename(frame.f_code.co_filename)} line {frame.f_lineno} starts "
            f"worker processes while the script is being run, outside "
            f"`if __name__ == \"__main__\":`. Workers started by {start_method!r} import "
            f"the script again, which would start more workers there: {_FIX}")


def _main_frame(namespace: dict) -> FrameType | None:
    """The frame running the main module's top-level code, if on the stack."""
    frame: FrameType | None = sys._getframe()
    while frame is not None:
        if frame.f_globals is namespace and frame.f_code.co_name == "<module>":
            return frame
        frame = frame.f_back
    return None


def _guarded(filename: str, line: int) -> bool:
    """Whether ``line`` of ``filename`` lies inside ``if __name__ == "__main__":``.

    True (nothing to report) when the source cannot be read or parsed.
    """
    try:
        with open(filename, encoding="utf-8") as source:
            tree = ast.parse(source.read(), filename)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test):
            last = node.body[-1].end_lineno or node.body[-1].lineno
            if node.body[0].lineno <= line <= last:
                return True
    return False


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round), alone or within an ``and``."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return any(_is_main_test(value) for value in test.values)
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = {_text(test.left), _text(test.comparators[0])}
    return sides == {"name", "main"}


def _text(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name) and node.id == "__name__":
        return "name"
    if isinstance(node, ast.Constant) and node.value == "__main__":
        return "main"
    return None
