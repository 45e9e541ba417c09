"""The worked examples of the core spec (seeds/003), in Python 3."""

from __future__ import annotations

import math

import pytest
import worker_funcs as wf
from support import consume_round_robin

import imap


def test_nested_radians_degrees_on_two_process_workers():
    m = imap.IMap(worker_type="process", worker_num=2)
    rad = m.add_task(math.radians, [1, 2, 3, 4])
    deg = m.add_task(math.degrees, rad)
    m.start()
    # degrees(radians(3)) is 3.0000000000000004 in IEEE arithmetic.
    assert list(deg) == pytest.approx([1.0, 2.0, 3.0, 4.0])
    m.stop(ends=[1])


def test_nested_tasks_via_next_on_the_imap():
    with imap.IMap(worker_type="process", worker_num=2) as m:
        rad = m.add_task(math.radians, [1, 2, 3, 4])
        m.add_task(math.degrees, rad)
        m.start()
        assert [m.next(task=1) for _ in range(4)] == pytest.approx([1.0, 2.0, 3.0, 4.0])
        with pytest.raises(StopIteration):
            m.next(task=1)


@pytest.mark.timeout(60)
def test_seventh_result_of_first_output_waits_for_second_output():
    # Two un-nested tasks, stride 3, default buffer 6, one worker. After six
    # results of output 0 the buffer holds six results of output 1, so the
    # seventh result of output 0 cannot be computed until output 1 is drained.
    with imap.IMap(worker_type="thread", worker_num=1, stride=3, stall_grace=None) as m:
        out0 = m.add_task(wf.double, range(10))
        out1 = m.add_task(wf.add_one, range(10))
        m.start()
        assert m.status().buffer == 6

        first = [out0.next(timeout=10) for _ in range(6)]
        assert first == [0, 2, 4, 6, 8, 10]
        with pytest.raises(imap.TimeoutError):
            out0.next(timeout=0.3)
        with pytest.raises(imap.TimeoutError):  # still blocked: nothing was taken
            out0.next(timeout=0.3)

        assert out1.next(timeout=10) == 1  # frees a slot: function0(arg6) is submitted
        assert out0.next(timeout=10) == 12  # the 7th result, not lost (skip=False)

        # Nothing lost: the rest of both outputs, taken the legal way. Output 1
        # catches up first (its results 1-5 hold the slots), then round-robin.
        catch_up1 = [out1.next(timeout=10) for _ in range(5)]
        rest0, rest1 = consume_round_robin([out0, out1], stride=3)
        assert first + [12] + rest0 == [2 * x for x in range(10)]
        assert [1] + catch_up1 + rest1 == [x + 1 for x in range(10)]
        assert m.high_water <= 6


def test_two_unnested_tasks_taken_a_stride_at_a_time_never_block():
    with imap.IMap(worker_type="thread", worker_num=1, stride=3, stall_grace=0) as m:
        out0 = m.add_task(wf.double, range(20))
        out1 = m.add_task(wf.add_one, range(20))
        m.start()
        results = consume_round_robin([out0, out1], stride=3, timeout=10)
    assert results == [[2 * x for x in range(20)], [x + 1 for x in range(20)]]


def test_buffer_of_one_stride_suffices_when_taken_in_weave_order():
    # "the memory consumption can be lowered to the stride of the IMap"
    with imap.IMap(worker_type="thread", worker_num=1, stride=3, buffer=3, stall_grace=0) as m:
        out0 = m.add_task(wf.double, range(20))
        out1 = m.add_task(wf.add_one, range(20))
        m.start()
        results = consume_round_robin([out0, out1], stride=3, timeout=10)
        assert m.high_water <= 3
    assert results == [[2 * x for x in range(20)], [x + 1 for x in range(20)]]
