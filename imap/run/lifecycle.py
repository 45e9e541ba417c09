"""A run's life: the wiring of :meth:`IMap.start <imap.IMap.start>` and
:meth:`~imap.IMap.stop`, and the stop of every running IMap when the
interpreter exits.

``start_run`` puts the parts of a run together, in this order: the tasks'
inputs, the journal, the flow's plan (:mod:`imap.flow.plan`), the backend
(its workers), the Feeder, the progress display. ``stop_run`` takes them
apart: a graceful stop drains the tasklets in flight (bounded, see
:meth:`Engine.drain <imap.run.engine.Engine.drain>`), then stops the Feeder and
the backend; a forced one (or a graceful one that cannot finish) goes
through :func:`shutdown`, which is also the IMap's finalizer and what runs
at exit. Nothing here keeps a reference to an IMap beyond a weak one.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util  # noqa: F401 - its exit handler first (see _running)
import signal
import threading
import weakref
from typing import Any

from .. import backends
from ..flow.plan import plan
from ..transport import byvalue
from . import replay
from .engine import Engine
from .feeder import Feeder
from .progress import imap_progress

__all__ = ["forget", "shutdown", "start_run", "stop_run"]

log = logging.getLogger("imap")

JOIN_TIMEOUT = 10.0
FORCED_JOIN_TIMEOUT = 2.0


def _stop_progress(state: dict) -> None:
    """Close the progress bars (with their final counts) and join their thread."""
    display = state.pop("progress", None)
    if display is not None:
        display.stop()


# IMaps started and not stopped, stopped at once when the interpreter exits:
# before multiprocessing's own exit handler ends the worker processes (whose
# deaths the Router would otherwise see, and replace, during the exit). This
# module imports multiprocessing.util first, and the handler is registered at
# the first start(), so it runs before multiprocessing's (and before the
# IMaps' own finalizers).
_running: weakref.WeakSet = weakref.WeakSet()
_exit_handler: list = []


def _stop_running() -> None:
    """At exit: stop every IMap still running, a second Ctrl-C held back
    meanwhile (the process is exiting: the stop is short and bounded)."""
    if not _running:
        return
    if threading.current_thread() is threading.main_thread() and hasattr(
            signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    for m in list(_running):
        m._finalizer.detach()
        for _ in range(3):
            try:
                shutdown(m._state)
                break
            except KeyboardInterrupt:   # pressed before the mask: go on stopping
                continue
            except Exception:  # pragma: no cover - best effort at exit
                log.exception("stopping %r at exit failed", m)
                break


def _stop_at_exit(m: Any) -> None:
    _running.add(m)
    if not _exit_handler:
        _exit_handler.append(_stop_running)
        atexit.register(_stop_running)


def _close_journal(state: dict) -> None:
    """Commit what the consumers took and close the journal (if any)."""
    store = state.pop("journal", None)
    if store is not None:
        store.close()


def shutdown(state: dict) -> None:
    """Stop threads and processes at once (finalizer; holds no IMap reference)."""
    _stop_progress(state)
    _close_journal(state)
    engine: Engine = state["engine"]
    feeder = state.get("feeder")
    backend = engine.backend
    if backend is None and feeder is None:
        return
    engine.force()
    if backend is not None:
        try:
            backend.stop(forced=True)
        except Exception:  # pragma: no cover - best effort at exit
            log.exception("stopping the workers failed")
    if feeder is not None and feeder.is_alive():
        feeder.join(FORCED_JOIN_TIMEOUT)  # it may be blocked in a user's iterator
    state["feeder"] = None
    engine.detach()


def forget(m: Any) -> None:
    """``m`` stopped: nothing to stop for it at exit."""
    _running.discard(m)


def start_run(m: Any) -> None:
    """Start the run of the IMap ``m`` (checked: not started, has tasks)."""
    options, policy, engine, state = m._options, m._policy, m._engine, m._state
    for task in engine.tasks:
        if task.upstream is None:
            try:
                task.source = iter(task.iterable)
            except TypeError as exc:
                raise TypeError(f"the input of task {task.id} is not iterable: {exc}") from exc
    if options.journal is not None:
        state["journal"] = replay.attach(options.journal, options.journal_reuse,
                                         engine.tasks, options.ordered)
    state["last"] = None
    if options.worker_remote:   # the user's own modules travel by value
        for task in engine.tasks:
            byvalue.send_by_value((task.func, task.args, task.kwargs))
        byvalue.send_by_value((options.initializer, options.initargs))
    policy.start(engine.tasks)
    run = plan(policy, engine.tasks, options.skip)
    engine.begin_run(impatient=run.impatient)
    backend = backends.make(options, engine.deliver, engine.lost)
    backend.configure(depth_order=run.depth_order, group_limit=run.group_limit,
                      prefetch=run.prefetch, on_crash=engine.thread_died)
    engine.attach(backend)
    backend.start()
    policy.fit_backend(backend.alive if options.executor is not None else None,
                       backend.batch_work)
    feeder = Feeder(engine)
    state["feeder"] = feeder
    _stop_at_exit(m)
    engine.running()
    feeder.start()
    if options.progress:
        try:
            state["progress"] = imap_progress(options.progress, engine, options.name)
        except BaseException:   # e.g. a bar class refusing tqdm's keywords
            m.stop(forced=True)
            raise


def stop_run(m: Any, ends: list | None, forced: bool, timeout: float | None) -> None:
    """Stop the run of the IMap ``m`` (see :meth:`IMap.stop <imap.IMap.stop>`;
    ``ends``: the tasks whose results are drained, None for its outputs)."""
    state, engine = m._state, m._engine
    if engine.started:
        if ends is None:
            ends = [t for t in engine.tasks if t.consumer is None]
        if not forced:
            engine.request_stop()
            why = engine.drain(ends, timeout)
            if why is not None:
                log.warning("%r cannot finish gracefully (%s); stopping it at once",
                            m, why)
                forced = True
        if forced:
            shutdown(state)
        else:
            feeder = state["feeder"]
            if feeder is not None:
                feeder.join(JOIN_TIMEOUT)
                if feeder.is_alive():
                    log.warning("%r: the feeder is blocked on an input; forcing", m)
                    shutdown(state)
            backend = engine.detach()
            if backend is not None:
                backend.stop(forced=False)
            state["feeder"] = None
    _stop_progress(state)   # before the tasks go: the final counts
    _close_journal(state)
    last = engine.end_run()
    if last is not None:
        state["last"] = last   # for report() after the run
