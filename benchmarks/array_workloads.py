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


def warm(x):
    """A warm-up task: nothing."""
    return None
