"""The arrays section's stages (numpy is imported where they run)."""


def double(x):
    """Stage 1: ``x * 2`` (a new array)."""
    return x * 2


def plus_one(x):
    """Stage 2: ``x + 1`` (a new array)."""
    return x + 1


def both(x):
    """The two stages in one call, for systems without chained maps."""
    return x * 2 + 1


def warm(x=None):
    """A warm-up task: import numpy in the worker (a forked worker has it
    already), so that no system's timed run pays for the import."""
    import numpy  # noqa: F401
    return None


def ready(port):
    """imap's worker initializer: warm up (:func:`warm`), then wait at the
    start line (``gate.hold``)."""
    from gate import hold
    warm()
    hold(port)
