"""``Plumber``: a Dagger that runs itself.

``start(datas)`` connects the pipers and starts their IMaps; ``run()``
starts the *puller*, a background thread that pulls the outputs of the
pipeline round-robin — at most a stride (the output piper's IMap stride, 1
inline) from one output before moving to the next, so that one shared IMap
can proceed; ``pause()`` stops the puller at the end of the current stride
(nothing is lost: the next ``run()`` continues where it paused); ``wait()``
waits for the end of the input; ``stop()`` stops the IMaps (gracefully: at a
stride boundary) and joins the puller.

The puller writes only :attr:`Plumber.results` (when ``keep=True``) and the
piper counters; the caller's thread only starts, pauses and joins it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from .dagger import Dagger
from .errors import PlumberError
from .save import load_pipeline, save_pipeline

log = logging.getLogger("papy")


class Plumber(Dagger):
    """A :class:`~papy.dagger.Dagger` with a life cycle, statistics and save/load.

    Args:
        pipers, pipes, xtras: as for :class:`~papy.dagger.Dagger`.
        keep: keep the items pulled from each output piper in
            ``results[piper name]`` (otherwise they are dropped: the output
            pipers are expected to write their results somewhere).
    """

    def __init__(self, pipers: Iterable[Any] = (), pipes: Iterable[Sequence[Any]] = (),
                 xtras: dict | None = None, keep: bool = False) -> None:
        super().__init__(pipers, pipes, xtras)
        self.keep = keep
        self.results: dict[str, list] = {}
        self._thread: threading.Thread | None = None
        self._pause = threading.Event()
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._outputs: list = []
        self._turn = 0
        self._started = False
        self._start_time: float | None = None
        self._end_time: float | None = None

    # -- life cycle ------------------------------------------------------------------

    def start(self, datas: Sequence[Iterable[Any]] | None = None) -> None:  # type: ignore[override]
        """Connect the pipers to ``datas`` (one iterable per input piper) and start."""
        if self._started:
            raise PlumberError("the Plumber is started already; stop() it first")
        if datas is None:
            raise PlumberError("start(datas): give one input iterable per input piper")
        self.connect(datas)
        try:
            super().start()
        except BaseException:
            Dagger.stop(self, forced=True)
            self.disconnect()
            raise
        self._outputs = [(p, iter(p.outbox), p.imap.stride if p.imap else 1)
                         for p in self.get_outputs()]
        self.results = {p.name: [] for p, _, _ in self._outputs}
        self._turn = 0
        self._finished.clear()
        self._error = None
        self._started = True
        self._start_time = time.time()
        self._end_time = None

    def run(self) -> None:
        """Start (or resume after :meth:`pause`) pulling the outputs in the background."""
        if not self._started:
            raise PlumberError("start(datas) the Plumber before run()")
        if self._thread is not None and self._thread.is_alive():
            return
        self._pause.clear()
        self._thread = threading.Thread(target=self._pull, name="papy-plumber", daemon=True)
        self._thread.start()

    def _pull(self) -> None:
        outputs = self._outputs
        try:
            while outputs and not self._pause.is_set():
                piper, outbox, stride = outputs[self._turn % len(outputs)]
                for _ in range(stride):
                    try:
                        value = next(outbox)
                    except StopIteration:
                        outputs.remove((piper, outbox, stride))
                        self._turn -= 1
                        break
                    if self.keep:
                        self.results[piper.name].append(value)
                self._turn += 1
            if not outputs:
                self._end_time = time.time()
                self._finished.set()
        except BaseException as exc:   # debug=True pipers raise here
            self._error = exc
            self._end_time = time.time()
            self._finished.set()

    def _raise(self) -> None:
        if self._error is not None:
            raise PlumberError(f"the pipeline failed: {self._error!r}") from self._error

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every output is exhausted; True if it is, False on timeout.

        Raises PlumberError if an output raised (e.g. a ``debug=True`` piper).
        """
        if not self._started and not self._finished.is_set():
            raise PlumberError("the Plumber is not started")
        done = self._finished.wait(timeout)
        if done and self._thread is not None:
            self._thread.join()
        self._raise()
        return done

    def pause(self) -> None:
        """Stop pulling at the end of the current stride; :meth:`run` resumes."""
        self._pause.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def stop(self, forced: bool = False) -> None:  # type: ignore[override]
        """Stop the IMaps (gracefully unless ``forced``) and join the puller."""
        self._pause.set()
        super().stop(forced=forced)
        if self._thread is not None:
            self._thread.join(30)
            if self._thread.is_alive():
                log.warning("the papy puller is blocked in an inline piper; left as daemon")
            self._thread = None
        if self._started and self._end_time is None:
            self._end_time = time.time()
        self._started = False
        self.disconnect()

    @property
    def finished(self) -> bool:
        """True once every output is exhausted."""
        return self._finished.is_set()

    # -- statistics ---------------------------------------------------------------------

    @property
    def stats(self) -> dict:
        """``start_time`` (epoch s), ``run_time`` (s), ``pipers``: name -> in/out/errors."""
        run_time = None
        if self._start_time is not None:
            run_time = (self._end_time or time.time()) - self._start_time
        return {
            "start_time": self._start_time,
            "run_time": run_time,
            "pipers": {p.name: dict(p.stats) for p in self.graph},
        }

    # -- save / load -----------------------------------------------------------------------

    def save(self, path: str) -> None:
        """Write a readable Python file that rebuilds this pipeline (see papy.save)."""
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(save_pipeline(self))

    def load(self, path: str) -> Plumber:
        """Add the pipers and pipes saved in ``path`` to this (empty) Plumber."""
        if self.graph:
            raise PlumberError("load() into an empty Plumber")
        pipers, pipes = load_pipeline(path)
        for piper in pipers:
            self.add_piper(piper)
        for pipe in pipes:
            self.add_pipe([self.resolve(name) for name in pipe])
        return self
