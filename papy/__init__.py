"""papy: flow-based pipelines on top of :mod:`imap`.

``item`` (a function of the item, not of the inbox), ``Worker`` (composed
functions, errors caught), ``Piper`` (a node, inline or
on an IMap), ``Dagger`` (the graph of pipers), ``Plumber`` (run, pause, stop,
statistics, save/load). See ``doc/pipelines.rst``.
"""

from .dagger import Dagger
from .errors import DaggerError, PiperError, PlumberError, WorkerError
from .graph import DictGraph
from .piper import Piper
from .plumber import Plumber
from .worker import Worker, item

__all__ = ["item", "Worker", "Piper", "Dagger", "Plumber", "DictGraph", "WorkerError",
           "PiperError", "DaggerError", "PlumberError"]
