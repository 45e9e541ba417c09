"""Progress display: a thin consumer of the statistics.

A :class:`Progress` shows one bar per counter (a task of an IMap, an output
of a papy Plumber). It never touches the engine's hot path: its own daemon
thread polls a *snapshot* function every :data:`POLL_INTERVAL` seconds and
moves each bar by what its count grew since the last poll::

  snapshot() --> [(count, finished), ...] --> Progress thread --> bar.update(delta)
                                                              \\-> callback(label, count, total)

* The **Progress thread** reads only the snapshot (for an IMap,
  ``Engine.status()``, taken under the engine's lock) and writes only its
  own bars. It ends once every counter is finished.
* :meth:`Progress.poke`, called by the consumer that takes the last result
  (a task iterator that ends, the Plumber's last output puller), brings the
  bars to their counts in that thread and, once every counter is final,
  closes them there: the bars are done before the consumer's next line runs
  (``print(m.report())`` after ``list(out)`` prints below them).
* While bars are shown, log records that would go to a console handler of
  the root logger are written above the bars (``tqdm.write``, by
  ``tqdm.contrib.logging.logging_redirect_tqdm``; shared by every open
  display, undone when the last one closes), so worker log records do not
  break a bar line.
* :meth:`Progress.stop`, called by the owner (``IMap.stop``, ``Plumber.wait``
  and ``Plumber.stop``), stops and joins that thread, then brings every bar
  to its final count and closes it, in the caller's thread. So once ``stop``
  has returned, the bars show exact counts and no thread is left. Bars closed
  already (by ``poke`` or by the thread) are not drawn again.

What ``progress=`` may be (:func:`check`): ``False``/``None`` (off: no
thread, no bar, ``tqdm`` is not even imported), ``True`` (``tqdm.auto``:
a text bar on stderr, a widget in a notebook), a bar class (``tqdm`` or a
subclass, or a class with tqdm's keywords and ``update``/``close``; a
``functools.partial`` of one is taken as the class), or a callback
``f(label, done, total)`` for users with their own display.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .taskiter import TaskIterator

__all__ = ["Progress", "check", "imap_progress", "POLL_INTERVAL"]

log = logging.getLogger("imap")

POLL_INTERVAL = 0.1   # seconds between two polls of the snapshot
JOIN_TIMEOUT = 5.0    # seconds stop() waits for the Progress thread
LOCK_TIMEOUT = 1.0    # seconds a snapshot waits for an IMap's lock

Snapshot = Callable[[], Sequence[tuple[int, bool]]]

ACCEPTED = ("False or None (off), True (tqdm.auto bars), a tqdm class (or a "
            "functools.partial of one), or a callback f(label, done, total)")


def _bar_class(value: Any) -> Any:
    """The class a bar factory makes (``value`` itself, or a partial's class), or None."""
    target = value.func if isinstance(value, functools.partial) else value
    return target if isinstance(target, type) else None


def check(progress: Any) -> None:
    """Raise TypeError unless ``progress`` is a value ``progress=`` accepts."""
    if progress is None or isinstance(progress, bool):
        return
    cls = _bar_class(progress)
    if cls is not None:
        missing = [name for name in ("update", "close") if not hasattr(cls, name)]
        if missing:
            raise TypeError(
                f"progress={progress!r}: a bar class needs update() and close() like "
                f"tqdm's (missing: {', '.join(missing)}); give {ACCEPTED}")
        return
    if not callable(progress):
        raise TypeError(f"progress must be {ACCEPTED}; got {progress!r}")


_redirect_lock = threading.Lock()
_redirect: list = [0, None]   # open displays with bars, the redirection in force


def _redirect_logs(bar_class: Any) -> None:
    """Send console log records through ``tqdm.write`` while bars are shown."""
    with _redirect_lock:
        if _redirect[0] == 0:
            try:
                from tqdm.contrib.logging import logging_redirect_tqdm

                cm = logging_redirect_tqdm(tqdm_class=bar_class)
                cm.__enter__()
            except Exception:   # a bar class that is no tqdm: leave logging alone
                log.debug("log records are not redirected around the bars", exc_info=True)
                cm = None
            _redirect[1] = cm
        _redirect[0] += 1


def _restore_logs() -> None:
    with _redirect_lock:
        _redirect[0] -= 1
        if _redirect[0] == 0 and _redirect[1] is not None:
            cm, _redirect[1] = _redirect[1], None
            cm.__exit__(None, None, None)


@functools.cache
def _default_bar() -> type:
    """``tqdm.auto.tqdm`` without tqdm's monitor thread.

    Our own thread calls ``update`` at every poll, so the monitor (which
    refreshes bars left idle) is not needed, and it would outlive the IMap.
    """
    from tqdm.auto import tqdm

    return type("ProgressBar", (tqdm,), {"monitor_interval": 0})


class Progress:
    """Bars (or callback calls) following counters that a snapshot function reads.

    Args:
        progress: the value of ``progress=`` (not False; see :func:`check`).
        snapshot: returns, per bar, ``(count, finished)``: the count to show
            and whether it is final. Called from the Progress thread.
        labels: one label per bar (the bar's description).
        totals: per bar, the count expected at the end, or None if unknown.
        name: the name of the Progress thread.
        unit: what is counted (tqdm's ``unit``).
    """

    def __init__(self, progress: Any, snapshot: Snapshot, labels: Sequence[str],
                 totals: Sequence[int | None], name: str, unit: str = "item") -> None:
        check(progress)
        self._snapshot = snapshot
        self._labels = list(labels)
        self._totals = list(totals)
        self._shown = [0] * len(self._labels)   # the count each bar shows
        self._callback: Callable[[str, int, int | None], Any] | None = None
        self._bars: list = []
        if _bar_class(progress) is None and progress is not True:
            self._callback = progress
        else:
            factory = _default_bar() if progress is True else progress
            # Created here, in the owner's thread, in order: they stack in
            # that order. miniters=1: show every update (they come at most
            # once per poll).
            for label, total in zip(self._labels, self._totals, strict=True):
                self._bars.append(factory(total=total, desc=label, unit=unit, miniters=1))
        self._redirected = False
        if self._bars:
            bar_class = _bar_class(factory)
            if bar_class is not None and _is_tqdm(bar_class):
                _redirect_logs(bar_class)
                self._redirected = True
        self._lock = threading.RLock()   # one thread at a time shows or closes
        self._closed = False
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """The Progress thread: poll until stopped or until every counter is final."""
        while not self._halt.wait(POLL_INTERVAL):
            with self._lock:
                if self._show(final=False):
                    self._close()
                    return

    def poke(self) -> None:
        """Bring the bars to the counts now, in the caller's thread; close them
        once every counter is final (called when a consumer takes the last
        result of a counter)."""
        with self._lock:
            if self._show(final=False):
                self._close()
        if self._closed:
            self._halt.set()   # the thread has nothing left to do

    def _show(self, final: bool) -> bool:
        """Bring the bars to the snapshot's counts; True once every count is final.

        A display that fails (a callback raising, a closed stream) is logged
        and switched off: it must not break the IMap it watches.
        """
        if self._closed:
            return True
        try:
            counts = self._snapshot()
            if len(counts) != len(self._shown):   # the owner was reset meanwhile
                return False
            for i, (count, _) in enumerate(counts):
                if count == self._shown[i] and not final:
                    continue
                if self._callback is not None:
                    self._callback(self._labels[i], count, self._totals[i])
                elif count > self._shown[i]:
                    self._bars[i].update(count - self._shown[i])
                self._shown[i] = count
            return all(done for _, done in counts)
        except Exception:
            log.exception("the progress display failed; it is switched off")
            self._closed = True
            if self._redirected:
                self._redirected = False
                _restore_logs()
            return True

    def _close(self) -> None:
        """Send the final counts (a last callback call per counter) and close the bars."""
        with self._lock:
            if self._closed:
                return
            self._show(final=True)
            self._closed = True
            for bar in self._bars:
                try:
                    bar.close()
                except Exception:
                    log.exception("closing a progress bar failed")
            if self._redirected:
                self._redirected = False
                _restore_logs()

    def stop(self) -> None:
        """Stop and join the Progress thread, then show the final counts and close."""
        self._halt.set()
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT)
            if self._thread.is_alive():   # stuck in a callback or a bar: leave it
                log.warning("the progress display does not stop; left as a daemon thread")
                return
        self._close()


def _is_tqdm(cls: type) -> bool:
    try:
        from tqdm import tqdm
    except ImportError:
        return False
    return issubclass(cls, tqdm)


# -- an IMap's bars ------------------------------------------------------------------


def _task_total(task: Any) -> int | None:
    """The number of items of a task's input, if its input has a ``len()``.

    A chained task has as many items as the task it consumes (that of the
    same IMap, or the task of another IMap whose iterator it was given).
    """
    while True:
        if task.upstream is not None:
            task = task.upstream
        elif isinstance(task.iterable, TaskIterator):
            task = task.iterable._record
        else:
            try:
                return len(task.iterable)
            except Exception:   # no len(): a generator, an iterator, ...
                return None


def imap_progress(progress: Any, engine: Any, prefix: str | None = None) -> Progress:
    """Show one bar per task of a started IMap, counting its results as they arrive.

    A task's bar counts ``done`` (results arrived, values and errors alike)
    out of the length of its input when it has one; it is labelled
    ``task <id> (<task name>)``, after ``prefix: `` when given.
    """
    tasks = list(engine.tasks)
    lead = f"{prefix}: " if prefix else ""
    labels = [f"{lead}task {t.id} ({t.name})" for t in tasks]

    def snapshot() -> list[tuple[int, bool]]:
        # A forced stop must not hang on a lock that an interrupted thread
        # left held (see Engine.force): give up on the display instead.
        if not engine.lock.acquire(timeout=LOCK_TIMEOUT):
            raise TimeoutError("the IMap's lock is held; no progress snapshot")
        engine.lock.release()
        return [(t.done + t.replayed, t.finished) for t in engine.status().tasks]

    return Progress(progress, snapshot, labels, [_task_total(t) for t in tasks],
                    name=f"imap-progress-{prefix or hex(id(engine))}")
