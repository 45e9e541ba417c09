"""A batch's life on its own: its named states and the one table of moves.

Each fault path is driven on a Batch alone (no thread, no process): the
moves a backend makes, in the order it makes them.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imap.backends.batch import TRANSITIONS, Batch, BatchState, BatchStateError
from imap.flow.dispatch import Dispatcher

S = BatchState
TASK = SimpleNamespace(id=3, key="k3", name="square", func=abs)


def _batch(n: int = 4, start: int = 0) -> Batch:
    return Batch(TASK, list(range(start, start + n)), [f"item{i}" for i in range(start, start + n)])


def _sent(n: int = 4) -> Batch:
    batch = _batch(n)
    batch.queue()
    batch.send("worker-0", ticket=7, stepwise=False)
    return batch


def test_a_drawn_batch_is_queued_sent_and_answered():
    batch = _batch()
    assert batch.state is S.DRAWN
    batch.queue()
    assert batch.state is S.QUEUED
    batch.send("worker-0", ticket=2, stepwise=True)
    assert (batch.state, batch.place, batch.ticket, batch.stepwise) == (S.SENT, "worker-0", 2,
                                                                       True)
    batch.answer()
    assert batch.state is S.ANSWERED


def test_abandoned_then_given_up_the_rest_runs_again_without_the_abandoned():
    batch = _sent()
    assert batch.abandon(1) is True    # the first: the backend arms its timer
    assert batch.abandon(2) is False   # the timer runs already
    assert batch.abandoned == {1, 2}
    batch.give_up()
    assert batch.state is S.GIVEN_UP and batch.given_up
    gone, rest = batch.resume()   # the worker is gone
    assert (gone, rest) == ([1, 2], [0, 3])
    assert batch.state is S.DRAWN
    assert batch.indices == [0, 3] and batch.items == ["item0", "item3"]
    assert batch.abandoned == frozenset()
    batch.queue()   # submitted again
    assert batch.state is S.QUEUED


def test_a_batch_every_tasklet_of_which_was_abandoned_is_answered_once_given_up():
    batch = _sent(1)
    batch.abandon(0)
    batch.give_up()
    batch.answer()   # each tasklet fails as abandoned
    assert batch.state is S.ANSWERED


def test_given_up_without_an_abandoned_tasklet_is_a_bug():
    batch = _sent()
    with pytest.raises(BatchStateError, match="none of its tasklets was abandoned"):
        batch.give_up()
    assert batch.state is S.SENT


def test_an_answered_batch_is_past_abandoning():
    batch = _sent()
    batch.answer()
    assert batch.abandon(0) is False
    assert batch.abandoned == frozenset()


def test_taken_back_at_once_then_queued_again_first_in_line():
    dispatcher = Dispatcher(lambda: [])
    first, taken = _batch(2), _batch(2, start=2)
    dispatcher.put(first)
    dispatcher.put(taken)
    assert dispatcher.clear() == [first, taken]   # withdrawn: at no place
    assert first.state is S.DRAWN
    dispatcher.put(first)
    dispatcher.put(taken)
    dispatcher.pending.remove(taken)   # as a place binds it
    taken.send("worker-1", ticket=1)
    taken.take_back()                  # the worker had not started it
    assert taken.state is S.TAKEN_BACK
    dispatcher.requeue(taken)
    assert taken.state is S.QUEUED
    assert list(dispatcher.pending) == [taken, first]


def test_asked_back_then_given_back_or_kept_by_its_worker():
    given = _sent()
    given.reclaim()
    assert given.state is S.RECLAIMING
    with pytest.raises(BatchStateError):
        given.reclaim()   # asked once
    given.take_back()
    given.queue()
    assert given.state is S.QUEUED
    kept = _sent()
    kept.reclaim()
    kept.stay()   # it had started
    assert kept.state is S.SENT


def test_lost_while_running_then_run_again_or_failed():
    batch = _sent()
    batch.start()   # a partial answer came: it runs
    batch.lose()
    assert batch.state is S.LOST
    batch.queue()   # a retry
    batch.send("worker-1")
    batch.lose()
    batch.answer()   # retries spent: each tasklet fails as lost
    assert batch.state is S.ANSWERED


def test_a_partial_answer_is_split_off_and_the_rest_runs_on():
    batch = _sent(5)
    head = batch.split_off(2)
    assert head.indices == [0, 1] and head.items == ["item0", "item1"]
    assert head.state is S.RUNNING and head.place == "worker-0"
    assert batch.indices == [2, 3, 4] and batch.state is S.RUNNING
    assert batch.data is None and batch.sent is None   # not one round trip any more
    head.answer()
    again = batch.split_off(1)
    again.answer()
    batch.answer()
    assert batch.state is S.ANSWERED and batch.indices == [3, 4]


def test_a_batch_given_up_may_still_answer_its_first_tasklets():
    batch = _sent(3)
    batch.abandon(2)
    batch.give_up()
    head = batch.split_off(1)   # the worker answered before it was cut off
    assert batch.state is S.GIVEN_UP and head.state is S.RUNNING
    gone, rest = batch.resume()
    assert (gone, rest) == ([1], [0]) and batch.indices == [1]


def test_only_a_batch_at_a_place_answers_in_part():
    batch = _batch()
    batch.queue()
    with pytest.raises(BatchStateError, match="answered in part while it is queued"):
        batch.split_off(1)


def test_refused_tasklets_are_remembered_and_the_batch_queued_for_the_others():
    dispatcher = Dispatcher(lambda: [])
    batch = _sent()
    dispatcher.refuse(batch, "worker-0", "no GPU here")
    assert batch.state is S.REFUSED
    assert batch.refused_by == {"worker-0": ("worker-0", "no GPU here")}
    dispatcher.requeue(batch)
    assert batch.state is S.QUEUED
    assert dispatcher.fits("worker-0")(batch) is False
    assert dispatcher.fits("worker-1")(batch) is True


def test_a_whole_task_refused_is_remembered_by_the_dispatcher_not_the_batch():
    dispatcher = Dispatcher(lambda: [])
    batch = _sent()
    dispatcher.refuse(batch, "worker-0", "numpy missing", whole=True)
    assert batch.state is S.REFUSED and batch.refused_by is None
    assert dispatcher.refused == {"k3": {"worker-0": ("worker-0", "numpy missing")}}


def test_a_split_shares_the_refusals_but_starts_drawn():
    batch = _sent()
    batch.refuse("worker-0", "worker-0", "why")
    part = batch.subset([1, 2], careful=True)
    assert part.state is S.DRAWN and part.careful and part.indices == [1, 2]
    assert part.refused_by == batch.refused_by


@pytest.mark.parametrize(("moves", "bad"), [
    (["answer"], "answer"),                      # answered twice
    (["queue"], "queue"),                        # queued twice
    ([], "send"),                                # sent before it was queued
    (["queue", "send", "answer"], "lose"),       # lost after its answer
    (["queue", "send", "start"], "take_back"),   # taken back while it runs
    (["queue"], "answer"),                       # answered while it waits in a queue
    (["queue", "send"], "resume"),               # resumed but never given up
])
def test_a_move_the_table_does_not_allow_raises_and_changes_nothing(moves, bad):
    batch = _batch()
    for move in moves:
        _apply(batch, move)
    before = batch.state
    with pytest.raises(BatchStateError, match="this is a bug in imap"):
        _apply(batch, bad)
    assert batch.state is before


def _apply(batch: Batch, event: str) -> None:
    """Make the move ``event`` on ``batch`` with plausible arguments."""
    if event == "send":
        batch.send("worker-0", ticket=1)
    elif event == "refuse":
        batch.refuse("worker-0", "worker-0", "unmet")
    elif event == "give_up":
        batch.abandon(batch.indices[0] if len(batch) else 0)
        batch.give_up()
    else:
        getattr(batch, event)()


EVENTS = sorted({event for moves in TRANSITIONS.values() for event in moves})


def test_every_state_is_in_the_table_and_every_move_leads_into_it():
    assert set(TRANSITIONS) == set(BatchState)
    for moves in TRANSITIONS.values():
        assert set(moves.values()) <= set(BatchState)
    assert TRANSITIONS[S.ANSWERED] == {}   # final


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(EVENTS), max_size=30))
def test_any_sequence_of_events_follows_the_table_or_raises(events):
    batch = _batch()
    for event in events:
        before = batch.state
        allowed = TRANSITIONS[before].get(event)
        try:
            _apply(batch, event)
        except BatchStateError:
            assert allowed is None, f"{event} from {before} is in the table but raised"
            assert batch.state is before
        else:
            assert allowed is not None, f"{event} from {before} is not in the table"
            assert batch.state is allowed
        assert batch.state in TRANSITIONS
