"""What a Dagger's life cycle does to each of its pipers and IMaps.

:class:`~papy.dagger.Dagger` keeps the state of a run (its inputs and taps,
whether it runs, its drain threads) and the order of the steps of its
``connect()``, ``stop()`` and ``disconnect()``; the steps that go over every
piper or IMap are here, each a function of the Dagger:

- :func:`connect_pipers`: each piper, inputs first, connected to its sources
  (a tap, or a branch of each upstream piper), chained to its upstream piper
  inside their IMap where it can be, given a relay, a guard or branches; on
  a failure the pipers connected so far are disconnected again.
- :func:`drainers`, :func:`wait_dry`, :func:`join_drainers`: a graceful stop
  runs the pipeline dry by reading its outputs in threads of its own, until
  every output has ended or an input blocks for too long.
- :func:`stop_pipers`, :func:`disconnect_pipers`: what ``stop()`` and
  ``disconnect()`` do to the pipers and IMaps.

Nothing here imports :mod:`papy.dagger`; the Dagger is passed in.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from imap.run.waiting import Flag

from . import checks
from .errors import DaggerError, PiperError

if TYPE_CHECKING:
    from .piper import Piper
    from .streams import Tap

log = logging.getLogger("papy")


def connect_pipers(dagger: Any, data: dict) -> None:
    """Connect every piper of ``dagger``, inputs first (see :meth:`Dagger.connect
    <papy.dagger.Dagger.connect>`); ``data``: input piper -> the tap it draws.

    A piper refused by ``Piper.connect`` is a DaggerError, once the pipers
    connected before it are disconnected again.
    """
    relayed = checks.relayed(dagger)
    lag_floor = checks.lag_floor(dagger)
    branches: dict = {}
    chains = {p: up for p in dagger.graph if (up := checks.chained_to(dagger, p)) is not None}
    feeding = set(chains.values())
    done: list[Piper] = []
    gate = threading.Event()   # opened once every IMap has started
    try:
        for piper in dagger.topological():
            if piper in data:
                sources = [data[piper]]
            else:
                sources = [branches[up].pop(0) for up in dagger.upstream(piper)]
            if piper in chains:
                piper.connect(sources, gate, chained=chains[piper])
            else:
                if dagger.pipes_hook is not None:
                    sources = dagger.pipes_hook(piper, sources)
                piper.connect(sources, gate, feeds=piper in feeding)
            done.append(piper)
            if piper in relayed:
                piper.relay()
            children = dagger.downstream(piper)
            if not children and dagger.guard_outputs:
                piper.guard()   # stop() may drain it while the caller reads it
            if children:
                branches[piper] = piper.branch_out(
                    len(children), max(piper.branch_lag, lag_floor))
                # each child takes its branch in the child's own order of upstreams
                branches[piper] = list(branches[piper])
    except PiperError as exc:
        for piper in done:
            piper.disconnect()
        raise DaggerError(f"cannot connect: {exc}") from exc


def drainers(outputs: list[Piper]) -> tuple[list[threading.Thread], Flag, list]:
    """Threads, not started, that read ``outputs`` dry and discard what they yield.

    Returns the threads, a Flag set once every output has ended, and the list
    of the exceptions the outputs raised (filled as they raise).
    """
    left = [len(outputs)]
    failed: list = []
    lock = threading.Lock()
    dry = Flag()

    def drain(piper: Piper) -> None:
        try:
            for _ in piper.outbox:   # guarded: the caller may still read it
                pass
        except BaseException as exc:   # e.g. a debug=True piper raised
            failed.append(exc)
        with lock:
            left[0] -= 1
            if not left[0]:
                dry.set()

    threads = [threading.Thread(target=drain, args=(p,), daemon=True,
                                name=f"papy-drain-{p.name}") for p in outputs]
    return threads, dry, failed


def wait_dry(dagger: Any, dry: Flag, taps: list[Tap], grace: float) -> bool:
    """Wait for ``dry``; False once an input (one of ``taps``) has blocked for
    ``grace`` seconds (logged for ``dagger``)."""
    while not dry.wait(0.05):
        for tap in taps:
            if tap.blocked_for() > grace:
                log.warning("%r: an input has blocked in next() for %.0f s", dagger,
                            tap.blocked_for())
                return False
    return True


def join_drainers(threads: list[threading.Thread], timeout: float) -> None:
    """Join the threads of :func:`drainers`; one still blocked is left (logged)."""
    for thread in threads:
        thread.join(timeout)
        if thread.is_alive():
            log.warning("%s is blocked in an inline piper; left as a daemon thread",
                        thread.name)


def stop_pipers(dagger: Any, forced: bool) -> None:
    """End the relays and branches of every piper, stop every running IMap
    (``forced``: at once), then join the relays."""
    for piper in dagger.graph:
        piper.close_streams()
    for m in dagger.imaps:
        if m.running:
            m.stop(forced=forced)
    for piper in dagger.graph:
        piper.join_relay()


def disconnect_pipers(dagger: Any) -> None:
    """Disconnect every connected piper, outputs first, and take the tasks
    left on IMaps that do not run off them."""
    for piper in dagger.postorder():
        if piper.connected:
            piper.disconnect()
    for m in dagger.imaps:
        if m.task_count and not m.running:
            m.pop_task(True)
