"""Worker pools behind one interface: threads, local processes, remote hosts."""

from .base import Backend, Batch

__all__ = ["Backend", "Batch"]
