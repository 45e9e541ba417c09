"""What a pipeline's graph is checked for, and what is planned from it, as
:meth:`Dagger.connect <papy.dagger.Dagger.connect>` wires it: pipers on one
IMap in an order that cannot stall (:func:`check_imap_order`), merges whose
branches arrive at rates they can zip (:func:`check_merge_rates`,
:func:`quanta`), the pipers whose outputs are relayed by a thread
(:func:`relayed`), how far branches may run apart (:func:`lag_floor`), and
which piper's task is chained inside its IMap to its upstream's
(:func:`chained_to`). Each reads the Dagger; none changes it.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from .errors import DaggerError
from .graph import DictGraph
from .piper import Piper

__all__ = ["chained_to", "check_imap_order", "check_merge_rates", "lag_floor", "quanta",
           "relayed"]


def check_imap_order(dagger: Any) -> None:
    """Refuse pipelines whose IMaps would stall each other.

    Pipers that follow each other on one IMap (directly or through inline
    pipers) must take per stride round what the upstream makes.

    The feeder thread of an IMap draws the inputs of its tasks; if IMap A
    feeds IMap B (through inline pipers or not) and B feeds A, each feeder
    can end up waiting for the other. Several pipers in a row on one IMap
    are fine when their rates match.
    """
    feeding: dict = {}   # piper -> [(IMap, items per stride round, piper)]
    imaps = DictGraph()
    for piper in dagger.topological():
        sources: list = []
        for up in dagger.graph.parents(piper):
            if up.imap is not None:
                sources.append((up.imap, Fraction(up.spawn * up.produce), up))
            else:
                sources.extend((m, rate * Fraction(up.produce, up.consume), origin)
                               for m, rate, origin in feeding[up])
        feeding[piper] = sources
        if piper.imap is None:
            continue
        imaps.add_node(id(piper.imap))
        taken = piper.spawn * piper.consume
        for m, made, origin in sources:
            if m is not piper.imap:
                imaps.add_edge((id(m), id(piper.imap)))
            elif made != taken:
                raise DaggerError(
                    f"pipers {origin.name!r} and {piper.name!r} share the IMap "
                    f"{m.name}: per stride {piper.name!r} takes {taken} x stride items "
                    f"(spawn x consume) but receives {made} x stride (spawn x produce "
                    f"upstream, through any inline pipers between), so the IMap would "
                    f"stall; put them on different IMaps (or inline) or match the rates")
    if not imaps.is_acyclic():
        raise DaggerError(
            "the IMaps of this pipeline feed each other in a cycle (e.g. IMap A -> "
            "IMap B -> IMap A along a path), which can deadlock their feeders; give "
            "each run of consecutive pipers its own IMap")

def check_merge_rates(dagger: Any) -> dict:
    """Refuse merges whose inputs from one fork come at different rates.

    A merge takes one item of each upstream piper per inbox. Where two of
    them descend from the same input piper, they must make the same
    number of items per item of that input (``produce / consume`` along
    each path), or the merge pairs items that do not belong together and
    one branch runs ever further ahead of the other.

    Returns, per piper, ``{input piper: inboxes per item of that input}``.
    """
    rates: dict = {}   # piper -> {input piper: items out per item of that input}
    arriving: dict = {}
    for piper in dagger.topological():
        ups = dagger.graph.parents(piper)
        if not ups:
            rates[piper] = {piper: Fraction(piper.produce, piper.consume)}
            arriving[piper] = {piper: Fraction(1)}
            continue
        got: dict = {}
        for up in dagger._sorted(ups):
            for source, rate in rates[up].items():
                if source in got and got[source][0] != rate:
                    other, first = got[source][1], got[source][0]
                    raise DaggerError(
                        f"piper {piper.name!r} merges {other.name!r} ({first} items "
                        f"per item of {source.name!r}) and {up.name!r} ({rate} per "
                        f"item of {source.name!r}): its inboxes would pair items that "
                        f"do not belong together; balance the consume/produce of the "
                        f"pipers between {source.name!r} and {piper.name!r}")
                got.setdefault(source, (rate, up))
        factor = Fraction(piper.produce, piper.consume)
        rates[piper] = {source: rate * factor for source, (rate, _) in got.items()}
        arriving[piper] = {source: rate for source, (rate, _) in got.items()}
    return arriving

def quanta(arriving: dict) -> dict:
    """Per input piper, the item counts at which its input may end cleanly.

    An input ended after a multiple of this many items gives every piper
    downstream whole ``consume`` groups (a graceful stop ends the inputs
    there, so no evaluation sees a group cut short).
    """
    quanta: dict = {}
    for piper, sources in arriving.items():
        for source, rate in sources.items():
            need = (rate / piper.consume).denominator
            quanta[source] = math.lcm(quanta.get(source, 1), need)
    return quanta

def relayed(dagger: Any) -> set:
    """Pipers on an IMap whose results something else than that IMap draws.

    The feeder of an IMap draws the inputs of its tasks in a fixed order,
    and a merge draws its upstream pipers in turn. Drawing the results of
    an IMap in such an order from elsewhere can deadlock: the other side
    waits for a result that the IMap can only make once a slot of its
    buffer is free, and the slot is freed only by a later draw of that
    same fixed order. Such pipers get a :class:`~papy.streams.Relay`
    that takes their results as they come (see papy.streams). An output
    piper needs none: its puller thread draws nothing else.
    """
    pullers: dict = {}   # piper -> what draws its outbox: IMap ids, or "out"
    for piper in dagger.postorder():
        pulled: set = set()
        for child in dagger.graph.children(piper):
            pulled |= {id(child.imap)} if child.imap is not None else pullers[child]
        pullers[piper] = pulled or {"out"}
    return {p for p, pulled in pullers.items()
            if p.imap is not None and dagger.graph.children(p)
            and pulled - {id(p.imap)}}

def lag_floor(dagger: Any) -> int:
    """The least branch lag that cannot stop a feeder in the middle of a stride.

    A feeder draws one input for a whole stride turn before it draws the
    next, so a branch it reads must be allowed to run that many items
    ahead of its siblings (twice that, for slack): per IMap piper
    ``stride * spawn * consume``, times the ``consume`` of every inline
    piper (which draws that many items per inbox).
    """
    inline = 1
    for piper in dagger.graph:
        if piper.imap is None:
            inline *= piper.consume
    turn = max((p.imap.max_stride * p.spawn * p.consume for p in dagger.graph
                if p.imap is not None), default=1)
    return 2 * turn * inline

def chained_to(dagger: Any, piper: Piper) -> Piper | None:
    """The upstream piper whose IMap task is to feed ``piper``'s directly, if any.

    ``piper`` must have one upstream piper, on the same IMap, which feeds
    nothing else; both must take and make one item at a time with one
    task (:meth:`Piper.chainable`), and the upstream piper's results must
    not be needed in the parent (:meth:`Piper.hideable`: no ``track``,
    ``debug`` or ``timeout``). Otherwise ``piper`` draws its inbox from
    the upstream outbox in the parent, as any other piper.
    """
    if not dagger.chain_tasks or piper.imap is None:
        return None
    ups = dagger.upstream(piper)
    if len(ups) != 1:
        return None
    up = ups[0]
    if (up.imap is not piper.imap or len(dagger.downstream(up)) != 1
            or not piper.chainable() or not up.hideable()):
        return None
    if dagger.pipes_hook is not None:
        # The Plumber's journal draws the pipes of its output pipers
        # itself (papy.journal): such a piper is not chained.
        probe = [iter(())]
        if any(a is not b for a, b in zip(dagger.pipes_hook(piper, probe), probe,
                                          strict=True)):
            return None
    return up
