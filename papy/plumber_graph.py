"""A Plumber's graph: its Dagger's graph methods as its own, and save/load.

:class:`PlumberGraph` is a base class of :class:`~papy.plumber.Plumber`. A
Plumber runs a :class:`~papy.dagger.Dagger` (its ``dagger``); it offers that
Dagger's graph methods (``add_piper``, ``add_pipe``, ``upstream``,
``connect``, ``draw``, ...) as its own, as PaPy 1.x's Plumber did: each is
forwarded to the Dagger and has the Dagger's docstring. :meth:`PlumberGraph.save`
and :meth:`PlumberGraph.load` write the graph as a readable Python file and
read it back (:mod:`papy.save`). Running the pipeline is :mod:`papy.plumber`.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from .dagger import Dagger
from .errors import PlumberError
from .save import load_pipeline, save_pipeline, write_atomically

# what load() returns: the Plumber it was called on
_Self = TypeVar("_Self", bound="PlumberGraph")


def _forward(name: str) -> Any:
    """A Plumber method that is its Dagger's method ``name``."""
    method = getattr(Dagger, name)

    @functools.wraps(method)
    def forwarded(self: PlumberGraph, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.dagger, name)(*args, **kwargs)
    return forwarded


def _forward_property(name: str) -> property:
    return property(lambda self: getattr(self.dagger, name),
                    doc=getattr(Dagger, name).__doc__ if hasattr(Dagger, name) else None)


class PlumberGraph:
    """The graph of a :class:`~papy.plumber.Plumber` (a base class of Plumber).

    Reads the Plumber's ``dagger`` (set by ``Plumber.__init__``).
    """

    dagger: Dagger

    # -- the Dagger's graph, as the Plumber's own --------------------------------------

    graph = _forward_property("graph")
    xtras = _forward_property("xtras")
    pipers = _forward_property("pipers")
    imaps = _forward_property("imaps")
    add_piper = _forward("add_piper")
    add_pipers = _forward("add_pipers")
    del_piper = _forward("del_piper")
    del_pipers = _forward("del_pipers")
    children_after_parents = _forward("children_after_parents")
    resolve = _forward("resolve")
    add_pipe = _forward("add_pipe")
    add_pipes = _forward("add_pipes")
    del_pipe = _forward("del_pipe")
    del_pipes = _forward("del_pipes")
    upstream = _forward("upstream")
    downstream = _forward("downstream")
    get_inputs = _forward("get_inputs")
    get_outputs = _forward("get_outputs")
    postorder = _forward("postorder")
    topological = _forward("topological")
    connect_inputs = _forward("connect_inputs")
    connect = _forward("connect")
    disconnect = _forward("disconnect")
    to_dot = _forward("to_dot")
    draw = _forward("draw")
    __contains__ = _forward("__contains__")
    __len__ = _forward("__len__")

    # -- save / load -----------------------------------------------------------------------

    def save(self, path: str) -> None:
        """Write a readable Python file that rebuilds this pipeline (see papy.save).

        The file is written whole or not at all: a pipeline that cannot be
        saved (a lambda, an argument that is not a literal) raises
        PlumberError and leaves no file behind (nor changes an existing one).
        """
        write_atomically(path, save_pipeline(self))

    def load(self: _Self, path: str) -> _Self:
        """Add the pipers and pipes saved in ``path`` to this (empty) Plumber."""
        if self.graph:
            raise PlumberError("load() into an empty Plumber")
        pipers, pipes = load_pipeline(path)
        for piper in pipers:
            self.add_piper(piper)
        for pipe in pipes:
            self.add_pipe([self.resolve(name) for name in pipe])
        return self
