"""Worker pools behind one interface (:class:`~.base.Backend`), the kinds of
local pool (:data:`LOCAL`), and :func:`make`, the one place that builds a pool
from an IMap's options (an :class:`~imap.options.Options`)."""

from __future__ import annotations

import importlib
from typing import Any

from .base import Backend, Deliver, Lost
from .kinds import LOCAL

__all__ = ["LOCAL", "Backend", "local_kind", "make"]



def local_kind(worker_type: str) -> Any:
    """The Backend class of local workers of ``worker_type``."""
    module, name = LOCAL[worker_type].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def make(options: Any, deliver: Deliver, lost: Lost) -> Backend:
    """The backend of an IMap with these options: threads, processes,
    remote workers, local and remote workers mixed, or an executor."""
    local = options.local_workers
    if options.executor is not None:
        from .dask import DaskBackend, is_dask
        from .executor import ExecutorBackend
        kind = (DaskBackend if isinstance(options.executor, str) or is_dask(options.executor)
                else ExecutorBackend)
        return kind(options.executor, options.worker_num, deliver, lost,
                    options.initializer, options.initargs, options.worker_logs)

    def make_local(d: Deliver, lo: Lost) -> Backend:
        return local_kind(options.worker_type).from_options(options, local, d, lo)

    if not options.worker_remote:
        return make_local(deliver, lost)

    from .remote import RemoteBackend  # imported only when used

    def make_remote(d: Deliver, lo: Lost) -> Backend:
        return RemoteBackend(list(options.worker_remote), d, lo, options.initializer,
                             options.initargs, dict(options.remote_options),
                             options.worker_logs)

    if local == 0:
        return make_remote(deliver, lost)
    from .mixed import MixedBackend
    return MixedBackend(make_local, make_remote, deliver, lost)
