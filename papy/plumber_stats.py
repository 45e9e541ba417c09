"""What a Plumber's run did: its ``stats`` and its ``report()``.

:class:`PlumberStats` is a base class of :class:`~papy.plumber.Plumber`. It
reads the counters the Plumber's pullers keep per output, the pipers'
``stats`` and the times their IMaps' workers measured
(:func:`papy.report.pipeline_report`); it changes nothing. Running the
pipeline, and the counters it keeps, is :mod:`papy.plumber`.
"""

from __future__ import annotations

import time

from imap.run.stats import Report

from .report import pipeline_report


def _output_counts(pulled: int, errors: int, dropped: int) -> dict:
    """An output's entry of ``Plumber.stats["outputs"]``."""
    counts = {"items": pulled - dropped, "errors": errors}
    if dropped:
        counts["dropped"] = dropped
    return counts


def _by_task(tracked: list, spawn: int) -> list[dict]:
    """The results of a piper's ``spawn`` tasks, merged round-robin in ``tracked``,
    as one ``{index in the task: result}`` dict per task (PaPy 1.x's shape)."""
    tasks: list[dict] = [{} for _ in range(spawn)]
    for k, value in enumerate(tracked):
        tasks[k % spawn][k // spawn] = value
    return tasks


class PlumberStats:
    """The statistics of a :class:`~papy.plumber.Plumber` (a base class of Plumber).

    Reads the fields the Plumber sets (``dagger``, ``_counts``, ``_start_time``,
    ``_end_time``, ``_journal``, ``_replayed``) and its ``graph`` and
    ``resolve`` (:class:`~papy.plumber_graph.PlumberGraph`).
    """

    # -- statistics ---------------------------------------------------------------------

    @property
    def stats(self) -> dict:
        """The counters of the current (or last) run.

        ``start_time`` (epoch s), ``run_time`` (s), ``pipers``: name ->
        ``{"in", "out", "errors"}`` (inboxes drawn, items handed on, of which
        errors, whether they arose there or upstream) and, for pipers on an
        IMap, the times its workers measured: ``busy`` (s), ``share`` (of
        its IMap's workers' time), ``rate`` (items/s, recent), ``tasklet``
        and ``peak`` (mean and longest seconds per item), ``input_wait`` and
        ``result_wait`` (s; see :meth:`report`); ``outputs``: output name ->
        ``{"items", "errors"}`` (items pulled, of which PiperErrors) and,
        once items were dropped upstream (``imap.DROP``), ``dropped`` (those
        are not counted in ``items``); a run with a journal adds
        ``"replayed"`` (of the items, those replayed from it); a piper's
        counters gain ``dropped`` the same way;
        ``pipers_tracked`` (PaPy 1.x): per piper made with ``track=True``,
        the Piper -> a list with one dict per spawned task, mapping the
        task's result index to the result (``[{0: r0, 1: r1}]`` when
        ``spawn=1``; the results are those of :attr:`Piper.tracked`).
        """
        run_time = None
        if self._start_time is not None:
            run_time = (self._end_time or time.time()) - self._start_time
        return {
            "start_time": self._start_time,
            "run_time": run_time,
            "pipers": self._piper_stats(),
            "outputs": {name: self._output_stats(name, counts)
                        for name, counts in self._counts.items()},
            "pipers_tracked": {p: _by_task(p.tracked, p.spawn) for p in self.graph
                               if p.track},
        }

    def _output_stats(self, name: str, counts: list) -> dict:
        """An output's counters; with a journal, the items replayed from it too."""
        stats = _output_counts(*counts)
        if self._journal is not None:
            stats["replayed"] = self._journal.counts(self.resolve(name))[0]
        elif name in self._replayed:
            stats["replayed"] = self._replayed[name]
        return stats

    def _piper_stats(self) -> dict:
        pipers = {p.name: dict(p.stats) for p in self.graph}
        if self._start_time is None:
            return pipers
        for row in pipeline_report(self.dagger, None).rows:
            if not row["inline"]:
                pipers[row["name"]].update(
                    {key: row[key] for key in ("busy", "share", "rate", "tasklet", "peak",
                                               "input_wait", "result_wait")})
        return pipers

    def report(self) -> Report:
        """What the current (or last) run did and what limits it: per piper,
        items, errors, the workers' time it took and what it waited on, and
        a verdict naming the bottleneck — the piper whose work fills its
        IMap's workers, the input, the consumer (an inline piper or whoever
        reads the outputs), or messaging overhead — with the usual remedy.
        ``print(plumber.report())`` shows a table; ``.as_dict()`` gives the
        figures. Inline pipers are not timed (they run in the pulling
        thread)."""
        return pipeline_report(self.dagger,
                               self.stats["run_time"] if self._start_time else None)
