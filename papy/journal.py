"""Resuming a crashed pipeline: ``Plumber(journal=path)``.

A pipeline's *item* is a position in its inputs: item k is the k-th item of
each input iterable, and (every piper consuming and producing one item at a
time) the k-th item of every piper. The journal (an :class:`imap.journal.Journal`,
one SQLite file) records, for each output piper, the **inbox** of item k (the
values its upstream pipes handed it) once the output's result for k has been
taken by the Plumber and is not an error.

Run the same pipeline again with the same journal, and:

* an item whose inbox is recorded for **every** output piper is *replayed*: it
  is not drawn from the inputs, so no piper upstream of the outputs computes it;
* the output pipers are fed the recorded inboxes in their place, in order, and
  run again: an output piper that writes a file (opened afresh by the run)
  writes the same file as an uninterrupted run, and the outputs hand on the
  same values. Put the costly work upstream of the output pipers; keep output
  pipers to writing (the usual PaPy shape).

Data flow::

  datas --> InputFilter (skips replayed k) --> pipers ... --> ReplayedPipe --+
                                                (one per pipe of an output)  |
                              recorded inbox k, for a replayed k ------------+
                                                                             v
                              output piper --> Plumber's puller --> recorded()
                                                                      | inbox of k
                                                                      v
                                                                    Journal

What a crash can lose is what :mod:`imap.journal` says: the items taken since
the last commit run again (at least once to the output pipers; never a gap,
never twice in one run).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from imap.journal import Journal, restore

from .errors import PiperError, PlumberError

__all__ = ["PipelineJournal"]


def _shape(dagger: Any) -> str:
    """The pipeline's shape as the journal stores it (JSON): each piper's name
    and functions, and its upstream pipers."""
    pipers = []
    for piper in dagger.topological():
        funcs = [f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}"
                 for f in piper.worker.functions]
        pipers.append({"name": piper.name, "funcs": funcs,
                       "upstream": [up.name for up in dagger.upstream(piper)]})
    return json.dumps({"format": 1, "pipeline": pipers}, sort_keys=True)


class _Output:
    """One output piper's side of the journal."""

    def __init__(self, piper: Any, recorded: dict, pipes: int) -> None:
        self.piper = piper
        self.recorded = recorded          # item -> pickled inbox (this or an earlier run)
        self.pipes = pipes
        self.inboxes: dict = {}           # item -> its inbox so far (one value per pipe)
        self.replayed = 0
        self.computed = 0


class PipelineJournal:
    """The journal of one Plumber run (see the module docstring).

    Args:
        path: the SQLite file.
        dagger: the pipeline (its pipers and pipes as connected by this run).
        reuse: take the journal of a pipeline of another shape.

    Raises:
        PlumberError: a piper consumes or produces more than one item at a
            time (items would not match positions), or the journal was
            written by another pipeline (and not ``reuse``).
    """

    def __init__(self, path: str, dagger: Any, reuse: bool = False) -> None:
        for piper in dagger.graph:
            if piper.consume != 1 or piper.produce != 1:
                raise PlumberError(
                    f"a journal needs every piper to consume and produce one item at a "
                    f"time (items are matched by position); piper {piper.name!r} has "
                    f"consume={piper.consume}, produce={piper.produce}")
        try:
            self.store = Journal(path, _shape(dagger), reuse)
        except ValueError as exc:
            raise PlumberError(str(exc).replace("journal_reuse=True",
                                                "journal_reuse=True to the Plumber")) from exc
        self._outputs: dict = {}
        for piper in dagger.get_outputs():
            pipes = max(1, len(dagger.upstream(piper)))
            self._outputs[piper] = _Output(piper, self.store.load(piper.name), pipes)
        keys = [set(o.recorded) for o in self._outputs.values()]
        self.replays: frozenset = frozenset(set.intersection(*keys) if keys else ())
        self._lock = threading.Lock()

    # -- the inputs -----------------------------------------------------------------

    def inputs(self, datas: Iterable[Iterable[Any]]) -> list:
        """The input iterables, skipping the replayed items."""
        if not self.replays:
            return list(datas)
        return [self._skipping(data) for data in datas]

    def _skipping(self, data: Iterable[Any]) -> Iterator[Any]:
        replays = self.replays
        for k, item in enumerate(data):
            if k not in replays:
                yield item

    # -- the output pipers' pipes ----------------------------------------------------

    def sources(self, piper: Any, sources: list) -> list:
        """The pipes of ``piper`` as it will draw them: for an output piper,
        each pipe gives the recorded value of a replayed item in its place
        and notes what it gives (the inbox recorded once the output is taken)."""
        output = self._outputs.get(piper)
        if output is None:
            return sources
        return [self._pipe(output, i, iter(source)) for i, source in enumerate(sources)]

    def _pipe(self, output: _Output, pipe: int, source: Iterator[Any]) -> Iterator[Any]:
        replays, recorded, inboxes, pipes = self.replays, output.recorded, output.inboxes, \
            output.pipes
        k = 0
        while True:
            if k in replays:
                value = restore(recorded[k])[pipe]
            else:
                try:
                    value = next(source)
                except StopIteration:
                    return
            inbox = inboxes.get(k)
            if inbox is None:
                inbox = inboxes.setdefault(k, [None] * pipes)
            inbox[pipe] = value
            yield value
            k += 1

    # -- what the Plumber takes ---------------------------------------------------------

    def taken(self, piper: Any, outbox: Iterator[Any]) -> Iterator[Any]:
        """``outbox`` of output ``piper``, recording each item's inbox as it is taken."""
        output = self._outputs[piper]
        record, replays, inboxes = self.store.record, self.replays, output.inboxes
        name = piper.name
        for k, value in enumerate(outbox):
            inbox = inboxes.pop(k, None)
            if k in replays:
                output.replayed += 1
            elif inbox is not None and not isinstance(value, PiperError):
                record(name, k, tuple(inbox))
                output.computed += 1
            yield value

    def counts(self, piper: Any) -> tuple[int, int]:
        """``(replayed, computed)`` items of output ``piper`` so far."""
        output = self._outputs[piper]
        return output.replayed, output.computed

    def close(self) -> None:
        """Commit what was taken and close the file."""
        self.store.close()
