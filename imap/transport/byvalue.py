"""Sending the user's own modules to remote workers by value.

A remote host has Python, rpyc and cloudpickle, and whatever packages were
installed there; it does not have the modules of the user's project (a
``mylib.py`` beside the script, a package on ``PYTHONPATH``, an editable
install). Functions and classes pickled *by reference* (``mylib.score``)
fail to unpickle there. cloudpickle can pickle a module's functions and
classes *by value* instead, once the module is registered
(``cloudpickle.register_pickle_by_value``).

:func:`send_by_value` finds, by a dry run of cloudpickle over an object (a
task's function with its arguments, or a batch of items), every module whose
functions or classes it refers to by reference, and registers those that are
**the user's own**: not part of the standard library, not installed in a
``site-packages`` (third-party packages stay by reference: they must be
installed on the remote host, as they would be on a cluster), and not
``imap`` or ``papy`` (which take care of themselves). The decision is made
locally, from where each module's file lives; a user module that the remote
host could import is sent by value all the same (harmless, a little larger).

Registration is process-wide (cloudpickle keeps one registry); local worker
processes still get functions by reference wherever plain pickle can carry
them (:func:`imap.transport.pickling.dumps_local`), so that an initializer and a task's
function of one module share its globals there.
Classes sent by value keep their identity on the way back: an instance that
a remote worker returns unpickles as an instance of the parent's class
(cloudpickle tracks the classes it sent).
"""

from __future__ import annotations

import io
import os
import site
import sys
import sysconfig
import threading
import types
from functools import cache
from typing import Any

import cloudpickle

__all__ = ["is_user_module", "send_by_value"]

_OWN = ("imap", "papy")
_lock = threading.Lock()
_registered: set[str] = set()


@cache
def _installed_prefixes() -> tuple[str, ...]:
    """Directories that hold installed packages (and the standard library)."""
    paths = set()
    for key in ("purelib", "platlib", "stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            paths.add(path)
    try:
        paths.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - some virtualenv builds
        pass
    user = site.getusersitepackages()
    if isinstance(user, str):
        paths.add(user)
    return tuple(os.path.realpath(p) + os.sep for p in paths)


def is_user_module(name: str) -> bool:
    """Whether module ``name`` is the user's own (see the module docstring)."""
    root = name.partition(".")[0]
    if name in ("__main__", "builtins") or root in _OWN or root in sys.stdlib_module_names:
        return False
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if not path:  # built in, frozen or a namespace package: nothing to send
        return False
    path = os.path.realpath(path)
    return not path.startswith(_installed_prefixes())


class _Recorder(cloudpickle.Pickler):
    """A cloudpickle pickler that notes the modules of the functions and
    classes it meets, and the modules it meets as objects (``import mylib``
    then ``mylib.score(x)``: the module is a global of the function), so
    that a user module used either way travels by value (it writes to a
    throwaway buffer)."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO())
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.ModuleType):
            # cloudpickle sends a module registered by value as its contents,
            # any other one by name (imported again where it is unpickled)
            self.modules.add(obj.__name__)
        elif isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
            module = getattr(obj, "__module__", None)
            if isinstance(module, str):
                self.modules.add(module)
        return super().reducer_override(obj)


def send_by_value(obj: Any) -> set[str]:
    """Register for pickling by value the user modules ``obj`` refers to;
    return the user modules it refers to (registered now or before). An
    ``obj`` that does not pickle is left alone (its error is reported where
    it is sent).

    A module registered now changes how ``obj`` pickles (its functions
    travel by value, so what they refer to is seen too: a function of
    another user module used by a function of this one), so the dry run is
    made again until it finds no new module.
    """
    found: set[str] = set()
    while True:
        recorder = _Recorder()
        try:
            recorder.dump(obj)
        except Exception:
            return found
        new = False
        with _lock:
            for name in sorted(recorder.modules):
                if name in _registered:
                    found.add(name)
                elif is_user_module(name):
                    cloudpickle.register_pickle_by_value(sys.modules[name])
                    _registered.add(name)
                    found.add(name)
                    new = True
        if not new:
            return found
