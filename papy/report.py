"""The bottleneck report of a pipeline (``Plumber.report()``).

Built from the reports of the IMaps the pipers run on
(:meth:`imap.IMap.report`): a piper on an IMap runs as one task per
``spawn`` (its ``task_ids``); its row adds up those tasks. Inline
pipers run in the thread that pulls them; they time one item in
``SAMPLE_EVERY`` and their busy time is estimated from those.

The verdict looks at the pipeline's wall time: an inline piper busy most
of it (it has one thread), else a piper on an IMap whose work fills most of
that IMap's workers' time; else the IMaps' own verdicts (a slow input, a
slow consumer, overhead) told in pipers.
"""

from __future__ import annotations

from typing import Any

from imap.run.stats import MIN_ELAPSED, Report, placement_note

__all__ = ["pipeline_report"]

# What each kind of IMap verdict says, in order of precedence: a piper
# whose work limits the run first, then a slow input, then a slow consumer.
_PRECEDENCE = ("work", "input", "consumer", "overhead")
# An inline piper busy less than this share of the run is not named as the
# consumer the results wait for (its measured time says it is not).
INLINE_BLAMED = 0.2


def _by_task(pipers: dict) -> dict:
    """``(IMap, task id) -> piper`` for the pipers that run on an IMap."""
    return {(id(p.imap), task): p for p in pipers.values() if p.imap is not None
            for task in p.task_ids}


def pipeline_report(dagger: Any, elapsed: float | None) -> Report:
    """The :class:`~imap.run.stats.Report` of a Dagger's last (or current) run;
    ``elapsed``: the run's wall time if known."""
    pipers = {p.name: p for p in dagger.topological()}
    rows = {name: {"name": name, "items": p.stats["out"], "errors": p.stats["errors"],
                   "busy": 0.0, "share": 0.0, "rate": None, "tasklet": None, "peak": 0.0,
                   "input_wait": 0.0, "result_wait": 0.0, "inline": p.imap is None,
                   "imap": None if p.imap is None else p.imap.name}
            for name, p in pipers.items()}
    found: list = []   # (precedence, share, bottleneck piper or kind, verdict)
    room_wait = 0.0
    workers = 0
    longest = 0.0
    placements: list = []   # where pipers with a functional dependency may run
    of_task = _by_task(pipers)
    for m in dagger.imaps:
        report = m.report()
        for t in m.status().tasks:   # pipers with a functional dependency: where they run
            piper = of_task.get((id(m), t.task))
            if t.dependency is not None and piper is not None:
                placements.append(placement_note(f"piper {piper.name!r} ({t.name})", t))
        workers += report.workers
        room_wait += report.room_wait
        longest = max(longest, report.elapsed)
        for r in report.rows:
            piper = of_task.get((id(m), r["task"]))
            if piper is None:
                continue
            row = rows[piper.name]
            row["busy"] += r["busy"]
            row["share"] += r["share"]
            row["peak"] = max(row["peak"], r["peak"])
            row["input_wait"] += r["input_wait"]
            row["result_wait"] += r["result_wait"]
            if r["rate"] is not None:
                row["rate"] = (row["rate"] or 0.0) + r["rate"]
            if r["tasklet"] is not None:
                row["tasklet"] = r["tasklet"]
        if report.bottleneck is None:
            continue
        kind = report.bottleneck if report.bottleneck in _PRECEDENCE else "work"
        piper = None
        if kind == "work":
            top = next(r for r in report.rows if r["name"] == report.bottleneck)
            piper = of_task.get((id(m), top["task"]))
        share = rows[piper.name]["share"] if piper is not None else 0.0
        found.append((_PRECEDENCE.index(kind), -share, kind, piper, m, report))
    elapsed = elapsed if elapsed is not None else longest
    pools = {m.name: max(m.workers, 1) for m in dagger.imaps}
    for name, p in pipers.items():
        row = rows[name]
        if p.imap is None:
            seconds, timed = p.sampled
            if timed:
                row["tasklet"] = seconds / timed
                row["busy"] = row["tasklet"] * row["items"]
            row["share"] = row["busy"] / elapsed if elapsed else 0.0
        else:
            row["share"] = row["busy"] / (elapsed * pools[p.imap.name]) if elapsed else 0.0
    inline = [rows[n] for n, p in pipers.items() if p.imap is None]
    busiest = max(inline, key=lambda r: r["share"], default=None)
    if busiest is not None and busiest["share"] >= 0.5:
        found.append((-2, -busiest["share"], "inline", pipers[busiest["name"]], None, None))
    on_imaps = [rows[n] for n, p in pipers.items() if p.imap is not None]
    heaviest = max(on_imaps, key=lambda r: r["share"], default=None)
    if heaviest is not None and heaviest["share"] >= 0.5:
        found.append((-1, -heaviest["share"], "work", pipers[heaviest["name"]],
                      pipers[heaviest["name"]].imap, None))
    notes = [f"every item of piper {r['name']} failed ({r['errors']})"
             for r in rows.values() if r["items"] and r["errors"] == r["items"]]
    notes += placements
    table = [rows[name] for name in pipers]
    for row in table:
        row["reads_input"] = False
        row["output"] = False
    if elapsed < MIN_ELAPSED:
        return Report(rows=table, elapsed=elapsed, workers=workers, room_wait=room_wait,
                      bottleneck=None, notes=notes, kind="piper", verdict=(
                          f"the run was too short ({elapsed:.2f} s) to tell what limits it"))
    if not found:
        return Report(rows=table, elapsed=elapsed, workers=workers, room_wait=room_wait,
                      bottleneck=None, verdict="nothing has run on an IMap yet", notes=notes,
                      kind="piper")
    _, _, kind, piper, m, report = min(found, key=lambda f: f[:2])
    if kind == "inline":
        bottleneck = piper.name
        verdict = (f"piper {piper.name!r}: it runs inline, in the thread that pulls it, "
                   f"and was busy about {rows[piper.name]['share']:.0%} of the run. Run "
                   f"it on an IMap (parallel=...) or make it cheaper.")
    elif kind == "work":
        bottleneck = piper.name
        verdict = (f"piper {piper.name!r}: its work holds {rows[piper.name]['share']:.0%} of "
                   f"the workers of IMap {m.name}. Give that IMap more workers (or hosts), "
                   f"or spawn the piper over more tasks.")
    elif kind == "input":
        waiting = max((p for p in pipers.values() if p.imap is m),
                      key=lambda p: rows[p.name]["input_wait"])
        upstream = dagger.upstream(waiting)
        ups = [up.name for up in upstream] or ["its input data"]
        bottleneck = "input"
        # moving a piper to an IMap is suggested only for one that is not on one
        inline_ups = [up for up in upstream if up.imap is None]
        remedy = "make what feeds it faster"
        if inline_ups:
            slowest = max(inline_ups, key=lambda up: rows[up.name]["busy"])
            remedy += f" (or run piper {slowest.name!r}, inline now, on an IMap)"
        elif upstream:
            remedy += " (give the IMaps of the pipers that feed it more workers)"
        verdict = (f"the input of piper {waiting.name!r} (from {', '.join(map(repr, ups))}): "
                   f"it waited for its input {rows[waiting.name]['input_wait'] / elapsed:.0%} "
                   f"of the run while the workers of IMap {m.name} idled. "
                   f"{remedy[0].upper()}{remedy[1:]}; more workers for {m.name} will "
                   f"not help.")
    elif kind == "consumer":
        # an inline piper is named only from its measured busy time: one
        # near 0 (a merge that zips) is never the one the results wait for
        inline = [p for p in dagger.postorder() if p.imap is None
                  and any(up.imap is m for up in dagger.upstream(p))
                  and rows[p.name]["share"] >= INLINE_BLAMED]
        if inline:
            worst = max(inline, key=lambda p: rows[p.name]["busy"])
            bottleneck = worst.name
            verdict = (f"piper {worst.name!r}: it runs inline, in the thread that pulls "
                       f"it, was busy about {rows[worst.name]['share']:.0%} of the run, and "
                       f"the results of IMap {m.name} wait for it. Run it on an IMap "
                       f"(parallel=...) or make it cheaper.")
        else:
            bottleneck = "consumer"
            verdict = (f"the consumer of the outputs: the results of IMap {m.name} wait "
                       f"for it. Read the outputs faster (Plumber.run pulls them in "
                       f"threads), or move that work into a piper.")
    else:
        bottleneck = "overhead"
        verdict = report.verdict
    return Report(rows=table, elapsed=elapsed, workers=workers, room_wait=room_wait,
                  bottleneck=bottleneck, verdict=verdict, notes=notes, kind="piper")
