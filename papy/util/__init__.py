"""Ready-made worker functions: see :mod:`papy.util.func`."""
