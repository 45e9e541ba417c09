"""papy.Worker: composition, the inbox convention, errors returned."""

from __future__ import annotations

import pickle

import pytest
from papy_funcs import add, dbl, fail_on_3, inc

from papy import Piper, PiperError, Worker, WorkerError

pytestmark = pytest.mark.timeout(30)


def test_composes_left_to_right() -> None:
    assert Worker((inc, dbl))((3,)) == 8
    assert Worker((dbl, inc))((3,)) == 7


def test_first_function_gets_the_inbox_tuple() -> None:
    assert Worker(add)((1, 2, 3)) == 6


def test_next_function_gets_previous_result_in_a_1_tuple() -> None:
    seen = []
    Worker((add, lambda inbox: seen.append(inbox)))((1, 2))
    assert seen == [(3,)]


def test_arguments_and_kwargs_per_function() -> None:
    w = Worker((inc, inc), arguments=[(10,), ()], kwargs=[{}, {"n": 100}])
    assert w((1,)) == 111


def test_exception_is_returned_as_worker_error() -> None:
    result = Worker((inc, fail_on_3))((2,))
    assert isinstance(result, WorkerError)
    assert isinstance(result.exception, ValueError)
    assert result.function == "fail_on_3"
    assert result.input == (3,)
    assert "three is bad" in result.traceback


def test_worker_error_pickles() -> None:
    error = Worker(fail_on_3)((3,))
    copy = pickle.loads(pickle.dumps(error))
    assert copy.function == "fail_on_3" and str(copy.exception) == "three is bad"


def test_inbox_holding_error_propagates_without_running() -> None:
    calls = []
    error = PiperError("upstream", None, "p")
    assert Worker(lambda inbox: calls.append(inbox))((1, error)) is error
    assert calls == []


def test_equal_workers_for_equal_functions_and_arguments() -> None:
    assert Worker((inc, dbl), arguments=[(2,), ()]) == Worker((inc, dbl), [(2,), ()])
    assert Worker(inc) != Worker(dbl)
    assert Worker(inc, [(1,)]) != Worker(inc, [(2,)])
    assert hash(Worker(inc)) == hash(Worker(inc))


def test_workers_nest_into_their_functions() -> None:
    w = Worker((Worker(inc), dbl))
    assert w.functions == (inc, dbl) and w((1,)) == 4


def test_bad_arguments_length_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="one entry per function"):
        Worker((inc, dbl), arguments=[(1,)])


def times(inbox, k=1):
    return inbox[0] * k


def test_a_string_where_a_tuple_of_arguments_belongs_is_refused() -> None:
    with pytest.raises(ValueError, match=r"arguments\[0\] is 'data.txt'.*\[\('data.txt',\)\]"):
        Worker(times, ("data.txt",))


def test_a_plain_dict_is_the_kwargs_of_a_single_function() -> None:
    assert Worker(times, kwargs={"k": 10})((2,)) == 20


def test_a_plain_dict_for_several_functions_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match=r"one dict per function.*kwargs=\[\{'k': 10\}, \{\}\]"):
        Worker((times, times), kwargs={"k": 10})


def test_a_flat_tuple_is_the_arguments_of_a_single_function() -> None:
    assert Worker(times, arguments=(10,))((2,)) == 20
    assert Worker(times, arguments=[(10,)])((2,)) == 20   # the general form


def test_a_flat_tuple_for_several_functions_is_refused_with_an_example() -> None:
    with pytest.raises(TypeError, match=r"one tuple of extra arguments per function.*e\.g\."):
        Worker((times, times), arguments=(10, ()))


def test_arguments_that_are_not_a_sequence_are_refused_with_an_example() -> None:
    with pytest.raises(TypeError, match=r"list of tuples.*arguments=\[\(10,\)\]"):
        Worker(times, arguments=10)
    with pytest.raises(TypeError, match=r"kwargs must be a dict.*kwargs=\{'k': 10\}"):
        Worker(times, kwargs=[10])


def test_arguments_per_function_count_must_match() -> None:
    with pytest.raises(ValueError, match="2 entries but there are 1 functions"):
        Worker(times, arguments=[(1,), (2,)])


def test_piper_given_function_arguments_points_to_the_worker() -> None:
    for misplaced in ({"args": (10,)}, {"arguments": [(10,)]}, {"kwargs": {"k": 1}}):
        with pytest.raises(TypeError, match=r"belong to its Worker.*Worker\(times"):
            Piper(times, **misplaced)
    with pytest.raises(TypeError, match="unexpected keyword arguments: colour"):
        Piper(times, colour="red")
