"""Worker pools behind one interface (:class:`~.base.Backend`), and
:func:`make`, the one place that builds them from an IMap's options."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Backend, Deliver, Lost

if TYPE_CHECKING:  # pragma: no cover
    from ..options import Options

__all__ = ["Backend", "make"]


def make(options: Options, deliver: Deliver, lost: Lost) -> Backend:
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
        if options.worker_type == "thread":
            from .thread import ThreadBackend
            return ThreadBackend(local, d, lo, options.initializer, options.initargs)
        from .process import ProcessBackend
        return ProcessBackend(local, d, lo, options.resolved_start_method,
                              options.initializer, options.initargs, options.worker_logs)

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
