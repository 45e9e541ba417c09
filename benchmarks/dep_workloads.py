"""Workloads with a functional dependency (``imap.require``), apart from
:mod:`workloads` so that the peers' workers, which import that module, do
not import ``imap``."""

import imap


@imap.require("math")
def inc_required(x):
    """The tiny task, ``x + 1``, with a dependency every worker meets."""
    return x + 1
