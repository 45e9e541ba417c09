"""Property tests: random pipelines give the results of plain function composition."""

from __future__ import annotations

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from papy_funcs import add, dbl, inc, neg, square

import imap
from papy import DaggerError, Piper, Plumber

FUNCS = [inc, dbl, neg, square]


def plain(funcs, x):
    for f in funcs:
        x = f((x,))
    return x


@st.composite
def placements(draw, n: int):
    """Where each of n pipers runs: None (inline) or an IMap index 0/1."""
    return [draw(st.sampled_from([None, 0, 1])) for _ in range(n)]


def make_imaps(draw, worker_type: str, tasks_per_imap: list[int]) -> list:
    imaps = []
    for tasks in tasks_per_imap:
        stride = draw(st.integers(1, 4))
        buffer = stride * max(tasks, 1) + draw(st.integers(0, 3))
        imaps.append(imap.IMap(worker_type=worker_type, worker_num=draw(st.integers(1, 3)),
                               stride=stride, buffer=buffer))
    return imaps


def build(draw, funcs: list, where: list, imaps: list, prefix: str) -> list[Piper]:
    pipers = []
    for i, (f, w) in enumerate(zip(funcs, where, strict=False)):
        pipers.append(Piper(f, parallel=imaps[w] if w is not None else False,
                            name=f"{prefix}{i}"))
    return pipers


def run(plumber: Plumber, data: list) -> dict:
    try:
        plumber.connect([data])
    except DaggerError as exc:   # a cycle of IMaps or unequal rates: refused
        assert "cycle" in str(exc) or "rates" in str(exc)
        reject()
    plumber.disconnect()
    try:
        plumber.start([data])
        plumber.run()
        assert plumber.wait(60)
    finally:
        plumber.stop()
    return plumber.results


@pytest.mark.timeout(120)
@settings(max_examples=25)
@given(st.data())
def test_linear_pipeline_equals_composition(data) -> None:
    funcs = data.draw(st.lists(st.sampled_from(FUNCS), min_size=1, max_size=4))
    where = data.draw(placements(len(funcs)))
    items = data.draw(st.lists(st.integers(-50, 50), max_size=30))
    imaps = make_imaps(data.draw, "thread", [where.count(0), where.count(1)])
    pipers = build(data.draw, funcs, where, imaps, "p")
    plumber = Plumber(keep=True)
    plumber.add_pipers(pipers) if len(pipers) > 1 else plumber.add_piper(pipers[0])
    results = run(plumber, items)
    assert results == {pipers[-1].name: [plain(funcs, x) for x in items]}


@pytest.mark.timeout(240)
@settings(max_examples=60)
@given(st.data())
def test_branched_pipeline_equals_composition(data) -> None:
    left = data.draw(st.lists(st.sampled_from(FUNCS), min_size=1, max_size=3))
    right = data.draw(st.lists(st.sampled_from(FUNCS), min_size=1, max_size=3))
    # every piper inline or on one of two IMaps (IMaps feeding each other in a
    # cycle are refused by connect(): run() rejects those examples)
    where = data.draw(placements(2 + len(left) + len(right)))
    items = data.draw(st.lists(st.integers(-20, 20), max_size=30))
    imaps = make_imaps(data.draw, "thread", [where.count(0), where.count(1)])
    src, *rest = build(data.draw, [inc] + left + right + [add], where, imaps, "q")
    lpipers, rpipers, merge = rest[:len(left)], rest[len(left):-1], rest[-1]
    plumber = Plumber(keep=True)
    plumber.add_pipers([src, *lpipers, merge])
    plumber.add_pipers([src, *rpipers, merge])
    results = run(plumber, items)
    expected = [plain(left, x + 1) + plain(right, x + 1) for x in items]
    assert results == {merge.name: expected}


@pytest.mark.timeout(180)
@settings(max_examples=4)
@given(st.data())
def test_process_imap_pipeline_equals_composition(data) -> None:
    funcs = data.draw(st.lists(st.sampled_from(FUNCS), min_size=2, max_size=3))
    items = data.draw(st.lists(st.integers(-50, 50), max_size=40))
    (m,) = make_imaps(data.draw, "process", [len(funcs)])
    pipers = [Piper(f, parallel=m, name=f"r{i}") for i, f in enumerate(funcs)]
    plumber = Plumber(keep=True)
    plumber.add_pipers(pipers)
    results = run(plumber, items)
    assert results == {pipers[-1].name: [plain(funcs, x) for x in items]}


@pytest.mark.timeout(120)
@settings(max_examples=25)
@given(st.data())
def test_spawned_pipers_equal_composition(data) -> None:
    funcs = data.draw(st.lists(st.sampled_from(FUNCS), min_size=1, max_size=3))
    where = data.draw(placements(len(funcs)))
    spawns = data.draw(st.lists(st.integers(1, 3), min_size=len(funcs),
                                max_size=len(funcs)))
    items = data.draw(st.lists(st.integers(-50, 50), max_size=30))
    tasks = [sum(s for s, w in zip(spawns, where, strict=True) if w == i) for i in (0, 1)]
    imaps = make_imaps(data.draw, "thread", tasks)
    pipers = [Piper(f, parallel=imaps[w] if w is not None else False, spawn=s, name=f"s{i}")
              for i, (f, w, s) in enumerate(zip(funcs, where, spawns, strict=True))]
    plumber = Plumber(keep=True)
    plumber.add_pipers(pipers) if len(pipers) > 1 else plumber.add_piper(pipers[0])
    results = run(plumber, items)
    assert results == {pipers[-1].name: [plain(funcs, x) for x in items]}


@pytest.mark.timeout(240)
@settings(max_examples=40)
@given(st.data())
def test_fan_out_and_in_equals_composition(data) -> None:
    """A fork into 2-3 branches, merged (``add``) or each an output of its own."""
    branches = data.draw(st.lists(st.lists(st.sampled_from(FUNCS), min_size=1, max_size=2),
                                  min_size=2, max_size=3))
    merged = data.draw(st.booleans())
    n = 1 + sum(map(len, branches)) + merged
    where = data.draw(placements(n))
    items = data.draw(st.lists(st.integers(-20, 20), max_size=40))
    imaps = make_imaps(data.draw, "thread", [where.count(0), where.count(1)])
    funcs = [inc] + [f for b in branches for f in b] + ([add] if merged else [])
    src, *rest = build(data.draw, funcs, where, imaps, "f")
    src.branch_lag = data.draw(st.integers(1, 8))   # a branch may run only this far ahead
    plumber = Plumber(keep=True)
    chains, at = [], 0
    for b in branches:
        chains.append(rest[at:at + len(b)])
        at += len(b)
    for i, chain in enumerate(chains):
        for piper in chain:
            piper.branch = i            # branch order = merge inbox order
        plumber.add_pipers([src, *chain, rest[-1]] if merged else [src, *chain])
    results = run(plumber, items)
    per_branch = [[plain(b, x + 1) for x in items] for b in branches]
    if merged:
        assert results == {rest[-1].name: [sum(v) for v in zip(*per_branch, strict=True)]}
    else:
        assert results == {c[-1].name: r for c, r in zip(chains, per_branch, strict=True)}


@pytest.mark.timeout(180)
@settings(max_examples=8)
@given(st.data())
def test_diamond_on_two_process_imaps_equals_composition(data) -> None:
    left = data.draw(st.lists(st.sampled_from(FUNCS), min_size=1, max_size=2))
    right = data.draw(st.lists(st.sampled_from(FUNCS), min_size=1, max_size=2))
    # the branches on different IMaps; the source and the merge anywhere
    where = ([data.draw(st.sampled_from([None, 0, 1]))] + [0] * len(left) + [1] * len(right)
             + [data.draw(st.sampled_from([None, 0, 1]))])
    items = data.draw(st.lists(st.integers(-20, 20), max_size=40))
    imaps = make_imaps(data.draw, "process", [where.count(0), where.count(1)])
    src, *rest = build(data.draw, [inc] + left + right + [add], where, imaps, "d")
    lpipers, rpipers, merge = rest[:len(left)], rest[len(left):-1], rest[-1]
    plumber = Plumber(keep=True)
    plumber.add_pipers([src, *lpipers, merge])
    plumber.add_pipers([src, *rpipers, merge])
    results = run(plumber, items)
    expected = [plain(left, x + 1) + plain(right, x + 1) for x in items]
    assert results == {merge.name: expected}


@pytest.mark.slow
@pytest.mark.timeout(900)
@settings(max_examples=400)
@given(st.data())
def test_branched_pipelines_soak(data) -> None:
    """Many more random diamonds and fans than the fast suite runs (make test-all)."""
    if data.draw(st.booleans()):
        test_branched_pipeline_equals_composition.hypothesis.inner_test(data)
    else:
        test_fan_out_and_in_equals_composition.hypothesis.inner_test(data)
