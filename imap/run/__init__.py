"""The run: one IMap's state while it evaluates its tasks.

The :class:`~imap.run.engine.Engine` holds the tasks and their results; the
:class:`~imap.run.feeder.Feeder` draws items and submits batches; results,
waiting, status, statistics and progress read what the engine holds;
:mod:`~imap.run.lifecycle` starts and stops a run. What to draw, when and
where is decided in :mod:`imap.flow`, never here.
"""
