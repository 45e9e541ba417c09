"""Resuming a crashed run: the journal of what the consumers took.

``IMap(journal=path)`` records every result a consumer takes from an output
task (a task no other task of the IMap consumes) in an SQLite file in WAL
mode, keyed by its input's position in the task's source (or by ``key(item)``,
``add_task(key=...)``). Run the same program again with the same journal and
each output yields what an uninterrupted run yields: the recorded results
(*replayed*), then the rest (*computed*). An input whose result was recorded
is never drawn into the chain of tasks again.

Data flow of one chain (a source task, the tasks chained to it, its output)::

  source --> JournalSource -----> task 0 --> ... --> output task --> OutputLog.next()
             | skips a recorded key,                                 | replays what the
             | noting (position, key)                                | source skipped;
             | of each item drawn                                    | records what was
             v                                                       v computed
         entries / replays  ---------- read by ---------->  Journal (writer thread)
                                                              | SQLite WAL, one commit
                                                              v per second or BATCH rows
                                                             path

* The **Feeder** draws the :class:`JournalSource` (it wraps the task's source;
  a fresh journal keyed by position needs none: a result's position is then
  its index).
* The **consumer** of an output reads :class:`OutputLog.next` (through the
  task's iterator): it takes the engine's next result, finds its input's key
  (``ResultBuffer.trail`` names each result's index, the chain's trails map
  it back to the source), hands out first any replays that come before it
  (ordered), records it and returns it.
* The **writer thread** of :class:`Journal` commits what was recorded, at most
  ``COMMIT_EVERY`` seconds after it was taken (the results a task iterator
  pops from :attr:`OutputLog.plain` it finds itself, :meth:`OutputLog.handed_out`:
  the consumer pays nothing per result for the record).

What a crash can lose: the results taken since the last commit (at most about
a second's). They were handed to the consumer but
are not in the journal, so the next run computes and hands them out again: the
consumer sees each result *at least once*; the journal's stream itself never
skips a result (never a gap) and never holds one twice (never a duplicate).
An error is never recorded: its input is computed again by the next run.
"""

from .run.replay import JournalSource, OutputLog, attach
from .run.store import COMMIT_EVERY, COMMIT_ROWS, Journal, JournalError, restore, signature

__all__ = ["COMMIT_EVERY", "COMMIT_ROWS", "Journal", "JournalError", "JournalSource", "OutputLog",
           "attach", "restore", "signature"]
