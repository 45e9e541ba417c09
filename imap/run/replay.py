"""The run's side of a journal: a source that skips what was recorded and
output logs that replay it and record the rest (see :mod:`imap.journal` for
the whole path of a journaled result; the store is :mod:`imap.run.store`).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .store import ATOMIC, Journal, JournalError, frozen_value, restore, signature

log = logging.getLogger("imap")

__all__ = ["JournalSource", "OutputLog", "attach", "chains"]


class JournalSource:
    """The source of a journaled chain: skips the inputs whose result was
    recorded, and notes, per item drawn, its position and key.

    Attributes:
        entries: the index of an item drawn in its task -> ``(position, key)``
            (popped by the output's :class:`OutputLog`).
        replays: ``(position, key)`` of the inputs skipped, in input order
            (with ordered output; with unordered output every record is
            replayed first and this stays empty).
    """

    def __init__(self, source: Iterator, key: Callable[[Any], Any] | None,
                 recorded: dict, collect: bool) -> None:
        self._source = source
        self._key = key
        self._recorded = recorded
        self._collect = collect
        self._seen: set | None = set() if key is not None else None
        self._pos = 0      # inputs read from the source
        self._drawn = 0    # items handed to the task
        self.entries: dict = {}
        self.replays: collections.deque = collections.deque()
        # another IMap's task that keeps its timed-out results: see feeder._draw
        self.keeps_timeouts = getattr(source, "keeps_timeouts", False)

    def __iter__(self) -> JournalSource:
        return self

    def _note(self, pos: int, key: Any) -> None:
        self.entries[self._drawn] = (pos, key)
        self._drawn += 1

    def __next__(self) -> Any:
        while True:
            pos = self._pos
            try:
                item = next(self._source)
            except StopIteration:
                raise
            except BaseException as exc:
                if not (self.keeps_timeouts and isinstance(exc, TimeoutError)):
                    self._pos = pos + 1   # the error is this position's result
                    self._note(pos, None)
                raise
            self._pos = pos + 1
            key = pos if self._key is None else self._keyed(pos, item)
            if key in self._recorded:
                if self._collect:
                    self.replays.append((pos, key))
                continue
            self._note(pos, key)
            return item

    def _keyed(self, pos: int, item: Any) -> Any:
        try:
            key = self._key(item)
            hash(key)
        except Exception as exc:
            self._note(pos, None)
            raise JournalError(f"the journal's key function failed on input {pos} "
                               f"({item!r:.80}): {exc!r}; a key must be a hashable, "
                               f"picklable value") from exc
        seen = self._seen
        if key in seen:
            self._note(pos, None)
            raise JournalError(f"the journal's key function gave key {key!r:.80} to two "
                               f"inputs (the second at position {pos}); keys must be "
                               f"unique: a replayed result is found by its key")
        seen.add(key)
        return key


_REPLAY, _VALUE, _ERROR = 0, 1, 2
_END = float("inf")   # the position after the last input


class OutputLog:
    """The output end of a journaled chain (one per output task).

    Its :meth:`next` is what the task's iterator returns: replays and
    computed results merged as an uninterrupted run orders them (ordered:
    by input position; unordered: every replay first, in the order
    recorded), each computed result recorded as it is handed out. Readers of
    one output are served one at a time (a lock).

    Attributes:
        replayed: results handed out from the journal.
        computed: results computed by this run and recorded.
    """

    def __init__(self, journal: Journal, chain: list, ordered: bool,
                 recorded: dict, source: JournalSource | None) -> None:
        self._journal = journal
        self._output = chain[-1]
        self.name = f"task {self._output.id}"
        self._links = [] if ordered else [t.results.trail for t in chain[-2::-1]]
        self._trail = self._output.results.trail
        self._handout = self._output.handout
        self._source = source
        self._ordered = ordered
        self._lock = threading.Lock()
        self._ready: collections.deque = collections.deque()
        # Computed results taken from the engine in a group, handed out one
        # by one without the lock (the task iterator pops them itself), and
        # beside them their rows to record, (key, value frozen when taken
        # from the engine): the writer thread records those handed out
        # (handed_out), so a consumer pays nothing per result for the record.
        self.plain: collections.deque = collections.deque()
        self._pending: collections.deque = collections.deque()
        self._fetched = 0   # results ever put in plain
        self._recorded_plain = 0   # ... of which the writer has taken the rows
        self._recorded = recorded
        journal.watch(self)
        self.replayed = 0
        self.computed = 0
        if not ordered:
            self._ready.extend((_REPLAY, key) for key in recorded)

    def next(self, take: Callable[[Any, Any], Any], timeout: Any, block: Any) -> Any:
        """The output's next result; ``take(timeout, block)`` gives the
        engine's next computed one."""
        plain = self.plain
        while True:
            if plain:
                try:
                    return plain.popleft()
                except IndexError:   # another reader took the last one
                    pass
            with self._lock:
                if self._ready:
                    kind, payload = self._ready.popleft()
                    break
                if not plain:
                    self._fetch(take, timeout, block)
        if kind == _REPLAY:
            self.replayed += 1
            self._output.replayed = self.replayed
            return restore(self._recorded[payload])
        if kind == _ERROR:
            raise payload
        key, value = payload
        self._journal.record(self.name, key, value)
        self.computed += 1
        return value

    def _fetch(self, take: Callable[[Any, Any], Any], timeout: Any, block: Any) -> None:
        """Take the engine's next result, with the rest of its group, and put
        them, and the replays that come before them, where :meth:`next` finds
        them (lock held)."""
        ready, trail, handout = self._ready, self._trail, self._handout
        try:
            value = take(timeout, block)
        except StopIteration:
            self._replays_before(_END)
            if not ready:
                raise
            return
        except BaseException as exc:
            if len(trail) <= len(handout):
                raise   # no result was taken (a timeout to ask again, a stall, ...)
            pos, _ = self._locate(trail.popleft())
            self._replays_before(pos)
            ready.append((_ERROR, exc))
            return
        values = [value]
        values.extend(handout)   # the rest of its group, taken from the engine with it
        handout.clear()
        source = self._source
        if source is None and not self._links:   # keys are the indices (the fast way)
            popleft = trail.popleft
            keys = [popleft() for _ in values]
            frozen = (values if all(map(ATOMIC.__contains__, map(type, values)))
                      else [frozen_value(v) for v in values])
            self._pending.append((self.name, keys, frozen))
            self._hand_out(values)
            return
        located = [self._locate(trail.popleft()) for _ in values]
        if source is None or not source.replays or not self._ordered:
            self._pending.append((self.name, [key for _, key in located],
                                  [frozen_value(v) for v in values]))
            self._hand_out(values)
            return
        for (pos, key), v in zip(located, values, strict=True):
            self._replays_before(pos)
            ready.append((_VALUE, (key, v)))

    def _hand_out(self, values: list) -> None:
        """Put computed ``values`` (their rows queued already) in ``plain``."""
        self._fetched += len(values)
        self.computed += len(values)
        self.plain.extend(values)

    def handed_out(self) -> list:
        """The rows of the results handed out from ``plain`` since the last
        call (the writer thread): the consumer pops a value, nothing more,
        and what it popped is what ``plain`` no longer holds."""
        with self._lock:   # nothing is put in plain meanwhile
            handed = self._fetched - len(self.plain)
            n = handed - self._recorded_plain
            self._recorded_plain = handed
            pending = self._pending
            chunks = []
            while n > 0:   # whole chunks, then the part of one that was handed out
                name, keys, values = pending[0]
                if len(keys) <= n:
                    chunks.append(pending.popleft())
                    n -= len(keys)
                else:
                    chunks.append((name, keys[:n], values[:n]))
                    pending[0] = (name, keys[n:], values[n:])
                    n = 0
            return chunks

    def _locate(self, index: int) -> tuple[int, Any]:
        """The position and key of the input of the output's result ``index``."""
        for trail in self._links:   # unordered: each task's results in the order taken
            index = trail[index]
        if self._source is None:
            return index, index
        # (an index skipped by a timeout before it was drawn has no entry yet)
        return self._source.entries.pop(index, (-1, None))

    def _replays_before(self, pos: float) -> None:
        source = self._source
        if source is None or not self._ordered:
            return
        replays = source.replays
        while replays and replays[0][0] < pos:
            self._ready.append((_REPLAY, replays.popleft()[1]))


def chains(tasks: list) -> list[list]:
    """The chains of ``tasks``: each a source task, then each task that consumes
    the one before, down to an output task."""
    out = []
    for task in tasks:
        if task.upstream is None:
            chain = [task]
            while chain[-1].consumer is not None:
                chain.append(chain[-1].consumer)
            out.append(chain)
    return out


def attach(path: str, reuse: bool, tasks: list, ordered: bool) -> Journal:
    """Open the journal of a run of ``tasks`` (their sources drawn already,
    ``task.source``) and put it in place: sources that skip what was
    recorded, output logs that replay it and record the rest.

    Raises:
        JournalError: the journal was written by a run of other tasks.
    """
    began = time.perf_counter()
    journal = Journal(path, signature(tasks), reuse)
    replayable = 0
    try:
        for chain in chains(tasks):
            head, output = chain[0], chain[-1]
            recorded = journal.load(f"task {output.id}")
            replayable += len(recorded)
            source = None
            if recorded or head.journal_key is not None:
                source = JournalSource(head.source, head.journal_key, recorded, ordered)
                head.source = source
            output.results.trail = collections.deque()
            if not ordered:
                for task in chain[:-1]:
                    task.results.trail = []
            output.replayed = 0
            output.output_log = OutputLog(journal, chain, ordered, recorded, source)
    except BaseException:
        journal.close()
        raise
    log.debug("journal %s: %d results to replay (read in %.3f s)", path, replayable,
              time.perf_counter() - began)
    return journal
