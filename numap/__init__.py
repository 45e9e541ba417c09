"""PaPy 1.x's ``numap``, kept so that old imports work: use ``imap``.

Importing it warns (DeprecationWarning). ``NuMap`` is :class:`imap.IMap`
(same arguments: see ``doc/migrating.rst``), ``imports`` is
:func:`imap.imports`.
"""

from __future__ import annotations

import warnings

from imap import IMap as NuMap
from imap import imports

__all__ = ["NuMap", "imports"]

warnings.warn("numap is PaPy 1.x's engine, now imap: use 'from imap import IMap' "
              "(NuMap is IMap, with the same arguments)",
              DeprecationWarning, stacklevel=2)
