"""PaPy 1.x's ``papy.core``, kept so that old imports work: use ``papy``.

Importing it warns (DeprecationWarning) and gives the same names as
:mod:`papy` (``Worker``, ``Piper``, ``Dagger``, ``Plumber``, the errors);
see ``doc/migrating.rst``.
"""

from __future__ import annotations

import warnings

from . import *  # noqa: F403 - the same names as papy
from . import __all__  # noqa: F401

warnings.warn("papy.core is PaPy 1.x's module: import from papy instead "
              "(from papy import Worker, Piper, Dagger, Plumber)",
              DeprecationWarning, stacklevel=2)
