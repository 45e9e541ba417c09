"""Pipers chained inside their IMap (Dagger.connect, Piper.connect(chained=...)):
the same results, errors, drops, counts and first errors as pipers that pass
their items through the parent."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import imap
from papy import Piper, Plumber, Worker
from papy.errors import PiperError


def step(inbox, fail, drop, add):
    """x + add, but raise for x % fail == 0 and drop x % drop == 1 (0: never)."""
    x = inbox[0]
    if fail and x % fail == 0:
        raise ValueError(f"{x} fails")
    if drop and x % drop == 1:
        return imap.DROP
    return x + add


def reference(specs, data):
    """The outputs and per-piper counts a serial evaluation gives.

    ``specs``: (name, fail, drop, add) per piper, upstream first.
    """
    outputs = []
    counts = {name: {"in": 0, "out": 0, "errors": 0} for name, *_ in specs}
    for x in data:
        state = ("value", x)
        for name, fail, drop, add in specs:
            c = counts[name]
            c["in"] += 1
            if state[0] == "value":
                v = state[1]
                if fail and v % fail == 0:
                    state = ("error", name)
                elif drop and v % drop == 1:
                    state = ("drop", name)
                else:
                    state = ("value", v + add)
            if state[0] == "drop":
                c["dropped"] = c.get("dropped", 0) + 1
            else:
                c["out"] += 1
                c["errors"] += state[0] == "error"
        if state[0] != "drop":
            outputs.append(state)
    return outputs, counts


def run(pipers, data, chain=True):
    plumber = Plumber(keep=True)
    plumber.dagger.chain_tasks = chain
    plumber.add_pipers(pipers)
    plumber.start([data])
    plumber.run()
    assert plumber.wait(60)
    stats = plumber.stats["pipers"]
    plumber.stop()
    got = [("error", v.piper) if isinstance(v, PiperError) else ("value", v)
           for v in plumber.results[pipers[-1].name]]
    keys = ("in", "out", "errors", "dropped")
    return got, {name: {k: s[k] for k in keys if k in s} for name, s in stats.items()}


spec = st.tuples(st.sampled_from([0, 3, 5, 7]), st.sampled_from([0, 2, 4, 6]),
                 st.integers(1, 9), st.booleans())


@settings(max_examples=30, deadline=None)
@given(specs=st.lists(spec, min_size=1, max_size=5), n=st.integers(0, 60),
       chain=st.booleans())
def test_random_chains_give_what_a_serial_evaluation_gives(specs, n, chain):
    """Random chains on one thread IMap (some pipers inline, which splits
    the chain), with errors and drops; chained or through the parent."""
    with imap.IMap(worker_type="thread", worker_num=2) as pool:
        pipers = []
        named = []
        for i, (fail, drop, add, inline) in enumerate(specs):
            name = f"p{i}"
            pipers.append(Piper(Worker(step, arguments=[(fail, drop, add)]),
                                parallel=False if inline else pool, name=name))
            named.append((name, fail, drop, add))
        got, counts = run(pipers, range(n), chain)
    want, want_counts = reference(named, range(n))
    assert got == want
    assert counts == want_counts


def test_a_chain_on_process_workers_is_chained_and_counts_each_piper():
    with imap.IMap(worker_type="process", worker_num=2) as pool:
        specs = [("a", 5, 0, 1), ("b", 0, 4, 2), ("c", 7, 0, 3)]
        pipers = [Piper(Worker(step, arguments=[(f, d, k)]), parallel=pool, name=name)
                  for name, f, d, k in specs]
        got, counts = run(pipers, range(100))
        assert [p.name for p in pipers[2]._chain] == ["a", "b"]   # one chain of three
    want, want_counts = reference(specs, range(100))
    assert got == want
    assert counts == want_counts


def test_the_first_error_of_a_hidden_piper_is_logged_for_it(caplog):
    with imap.IMap(worker_type="thread", worker_num=2) as pool:
        pipers = [Piper(Worker(step, arguments=[(4, 0, 1)]), parallel=pool, name="a"),
                  Piper(Worker(step, arguments=[(0, 0, 1)]), parallel=pool, name="b")]
        with caplog.at_level(logging.WARNING, logger="papy"):
            run(pipers, range(10))
    assert pipers[1]._chain == [pipers[0]]
    assert pipers[0].first_error is not None and pipers[0].first_error.piper == "a"
    assert pipers[1].first_error is None
    assert any("piper 'a': first failed item" in r.getMessage() for r in caplog.records)


def flaky(inbox):
    if inbox[0] == 2:
        raise OSError("two is gone")
    return inbox[0]


def test_a_failure_filed_by_the_imap_is_named_for_the_hidden_piper_it_arose_in():
    """A retry_on exception whose retries are spent is a result of the IMap
    task, passed on by the chained tasks: still the first piper's error."""
    with imap.IMap(worker_type="thread", worker_num=2) as pool:
        a = Piper(flaky, parallel=pool, name="a", retries=1, retry_on=(OSError,))
        b = Piper(Worker(step, arguments=[(0, 0, 10)]), parallel=pool, name="b")
        got, counts = run([a, b], range(4))
    assert b._chain == [a]
    assert got == [("value", 10), ("value", 11), ("error", "a"), ("value", 13)]
    assert counts["a"] == {"in": 4, "out": 4, "errors": 1}
    assert counts["b"] == {"in": 4, "out": 4, "errors": 1}


def pair_sum(box):
    return box[0][0] + box[1][0]


@pytest.mark.parametrize("case", ["track", "spawn", "consume", "timeout"])
def test_an_upstream_piper_whose_results_the_parent_needs_is_not_chained(case):
    with imap.IMap(worker_type="thread", worker_num=2, skip=case == "timeout") as pool:
        inc = Worker(step, arguments=[(0, 0, 1)])
        a_opts = {"track": {"track": True}, "spawn": {"spawn": 2},
                  "consume": {"produce": 2, "repeat": True},
                  "timeout": {"timeout": 30}}[case]
        a = Piper(inc, parallel=pool, name="a", **a_opts)
        if case == "consume":
            b = Piper(pair_sum, parallel=pool, name="b", consume=2)
        else:
            b = Piper(inc, parallel=pool, name="b", spawn=2 if case == "spawn" else 1)
        got, counts = run([a, b], range(6))
        assert b._chain == []
    if case == "consume":   # a repeats x + 1, b adds the pair
        assert got == [("value", 2 * (x + 1)) for x in range(6)]
    else:
        assert got == [("value", x + 2) for x in range(6)]
        assert counts["a"] == {"in": 6, "out": 6, "errors": 0}
    if case == "track":
        assert a.tracked == [x + 1 for x in range(6)]


def test_a_hidden_piper_says_where_to_read():
    with imap.IMap(worker_type="thread", worker_num=2) as pool:
        a = Piper(Worker(step, arguments=[(0, 0, 1)]), parallel=pool, name="a")
        b = Piper(Worker(step, arguments=[(0, 0, 1)]), parallel=pool, name="b")
        plumber = Plumber(keep=True)
        plumber.add_pipers([a, b])
        plumber.start([range(3)])
        with pytest.raises(PiperError, match="feed the task of 'b'.*read that piper"):
            next(iter(a.outbox))
        plumber.run()
        assert plumber.wait(60)
        plumber.stop()
    assert plumber.results["b"] == [2, 3, 4]
