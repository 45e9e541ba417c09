"""``Dagger``: the directed acyclic graph of pipers.

Pipes point downstream (``(upstream, downstream)``). The graph is a
:class:`~papy.graph.DictGraph` with pipers as nodes.

**Deterministic order.** Every list of pipers the Dagger hands out — the
inputs (pipers with no upstream), the outputs (pipers with no downstream)
and the upstream pipers of a merge, which give the order of the elements of
its inbox — is sorted by the pipers' ``branch`` attribute (pipers with
``branch=None`` after all others), then by the order in which the pipers were
added to the Dagger.

This module edits and reads the graph and holds the state of a run; the
steps of the life cycle (``connect``, ``stop``, ``disconnect``) that go over
every piper and IMap, and the threads of a graceful stop, are in
:mod:`papy.dagger_lifecycle`.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from imap.run.waiting import Flag

from . import checks
from . import dagger_lifecycle as lifecycle
from . import draw as drawing
from .errors import DaggerError, PiperError
from .graph import DictGraph
from .piper import Piper
from .streams import Tap

log = logging.getLogger("papy")

#: Seconds a graceful :meth:`Dagger.stop` lets an input's ``next()`` block
#: (a generator waiting for something) before it stops at once instead.
INPUT_GRACE = 10.0


class Dagger:
    """A pipeline: pipers connected by pipes, no cycles.

    Args:
        pipers: pipers to add (each alone; see :meth:`add_pipers` for chains).
        pipes: pipes to add, each ``(upstream, downstream)`` or a longer chain.
        xtras: keyword arguments used to make a Piper when a plain Worker or
            callable is added.
        drain: what a graceful :meth:`stop` calls to run the outputs dry: a
            callable returning True once every output has ended (False if
            they cannot). By default the Dagger reads them in threads of its
            own and discards what they yield; then :meth:`connect` makes the
            outboxes of the output pipers safe to draw from two threads (see
            :class:`~papy.streams.Guarded`), as the caller may still be
            reading them. Whoever gives ``drain`` reads the outputs alone
            (:class:`~papy.plumber.Plumber` does, with its pullers).
    """

    def __init__(self, pipers: Iterable[Any] = (), pipes: Iterable[Sequence[Any]] = (),
                 xtras: dict | None = None, *, drain: Any = None) -> None:
        self._drain = drain if drain is not None else self._run_dry
        self.guard_outputs = drain is None
        self.graph = DictGraph()
        self.xtras = dict(xtras or {})
        self._order: dict = {}
        self._counter = itertools.count()
        self._inputs: list = []
        self._taps: list[Tap] = []
        self._running = False
        self._drainers: list[threading.Thread] = []
        # (piper, its sources) -> the sources it draws: the Plumber's journal
        # puts itself before the output pipers (papy.journal); None: as they are
        self.pipes_hook: Any = None
        # Chain a piper's task to its upstream piper's on their IMap where
        # nothing else reads the upstream (see connect); False: never.
        self.chain_tasks = True
        for piper in pipers:
            self.add_piper(piper)
        for pipe in pipes:
            self.add_pipe(pipe)

    # -- ordering ------------------------------------------------------------------

    def _key(self, piper: Piper) -> tuple:
        branch = piper.branch
        return (branch is None, 0 if branch is None else branch, self._order[piper])

    def _sorted(self, pipers: Iterable[Piper]) -> list[Piper]:
        try:
            return sorted(pipers, key=self._key)
        except TypeError as exc:
            raise DaggerError(f"branch attributes must be comparable with each other "
                              f"(e.g. all ints or all strs): {exc}") from None

    # -- pipers ----------------------------------------------------------------------

    @property
    def pipers(self) -> list[Piper]:
        """Every piper, in insertion order."""
        return list(self.graph)

    def __contains__(self, piper: Any) -> bool:
        return piper in self.graph

    def __len__(self) -> int:
        return len(self.graph)

    def _make(self, piper: Any) -> Piper:
        if isinstance(piper, Piper):
            return piper
        try:
            return Piper(piper, **self.xtras)
        except (TypeError, ValueError, PiperError) as exc:
            raise DaggerError(f"cannot make a Piper of {piper!r}: {exc}") from exc

    def add_piper(self, piper: Any, create: bool = True, branch: Any = None) -> Piper:
        """Add one piper and return it.

        A Worker or callable is made into a Piper with ``xtras`` (refused with
        ``create=False``). ``branch`` is given to a piper that has none.

        PaPy 1.x returned ``(created, piper)`` and passed over a piper already
        present; here the Piper is returned (what :meth:`add_pipe` and callers
        use) and a piper added twice is a DaggerError, so a mistake is seen.
        """
        if not create and not isinstance(piper, Piper):
            raise DaggerError(f"{piper!r} is not a Piper and create=False")
        piper = self._make(piper)
        if piper in self.graph:
            raise DaggerError(f"piper {piper.name!r} is already in this Dagger")
        if any(p.name == piper.name for p in self.graph):
            raise DaggerError(f"another piper is named {piper.name!r}; names must be unique")
        if piper.connected:
            raise DaggerError(f"piper {piper.name!r} is connected; disconnect() it before "
                              f"adding it")
        if branch is not None and piper.branch is None:
            piper.branch = branch
        self.graph.add_node(piper)
        self._order[piper] = next(self._counter)
        return piper

    def add_pipers(self, pipers: Sequence[Any]) -> list[Piper]:
        """Add the chain ``pipers[0] -> pipers[1] -> ...`` (adding missing pipers)."""
        return self.add_pipe(pipers)

    def del_piper(self, piper: Any, forced: bool = False) -> None:
        """Remove a piper; one with pipes needs ``forced=True`` (its pipes go too)."""
        piper = self.resolve(piper)
        if piper.connected:
            raise DaggerError(f"piper {piper.name!r} is connected; disconnect() first")
        if not forced and (self.graph[piper] or self.graph.parents(piper)):
            raise DaggerError(f"piper {piper.name!r} has pipes; delete them first or use "
                              f"forced=True")
        self.graph.del_node(piper)
        del self._order[piper]

    def del_pipers(self, pipers: Sequence[Any], forced: bool = False) -> None:
        """Remove pipers, last first (see :meth:`del_piper`)."""
        for piper in reversed(list(pipers)):
            self.del_piper(piper, forced)

    def children_after_parents(self, piper1: Any, piper2: Any) -> int:
        """1 if ``piper1`` is upstream of ``piper2``, -1 if downstream, else 0.

        PaPy 1.x's comparison of two pipers by the flow of data between them.
        """
        a, b = self.resolve(piper1), self.resolve(piper2)
        if a is not b and self.graph.has_path(a, b):
            return 1
        if a is not b and self.graph.has_path(b, a):
            return -1
        return 0

    def resolve(self, piper: Any) -> Piper:
        """The piper given as itself, its ``id()`` or its name (DaggerError if absent)."""
        for p in self.graph:
            if p is piper or (isinstance(piper, int) and not isinstance(piper, bool)
                              and id(p) == piper) or (isinstance(piper, str)
                                                      and p.name == piper):
                return p
        raise DaggerError(f"no piper {piper!r} in this Dagger")

    # -- pipes -------------------------------------------------------------------------

    def add_pipe(self, pipe: Sequence[Any], branch: Any = None) -> list[Piper]:
        """Add a pipe ``(upstream, downstream)`` or a chain ``(a, b, c, ...)``.

        Missing pipers are added; ``branch`` is given to those of them that
        have none (as in PaPy 1.x, where ``add_pipe((a, m), branch="2")``
        placed a new input ``a`` by that branch). A pipe that makes a cycle,
        or that exists already, is a DaggerError and leaves the Dagger as it
        was (branches included).
        """
        pipe = list(pipe)
        if len(pipe) < 2:
            if len(pipe) == 1:
                return [self._resolve_or_add(pipe[0])]
            raise DaggerError("a pipe needs at least two pipers")
        snapshot = (DictGraph(), dict(self._order))
        for node, children in self.graph.items():
            snapshot[0][node] = dict(children)
        branched: list[Piper] = []
        try:
            pipers = [self._resolve_or_add(p, branch, branched) for p in pipe]
            for a, b in zip(pipers, pipers[1:], strict=False):
                if a is b:
                    raise DaggerError(f"a pipe from {a.name!r} to itself is a cycle")
                if a.connected or b.connected:
                    raise DaggerError(f"cannot add a pipe to connected pipers "
                                      f"{a.name!r} -> {b.name!r}; disconnect() first")
                if b in self.graph[a]:
                    raise DaggerError(f"the pipe {a.name!r} -> {b.name!r} is already in "
                                      f"this Dagger")
                if self.graph.has_path(b, a):
                    raise DaggerError(f"the pipe {a.name!r} -> {b.name!r} would make a "
                                      f"cycle")
                self.graph.add_edge((a, b))
        except DaggerError:
            self.graph.clear()
            self.graph.update(snapshot[0])
            self._order = snapshot[1]
            for piper in branched:
                piper.branch = None
            raise
        return pipers

    def add_pipes(self, pipes: Iterable[Sequence[Any]], branch: Any = None) -> None:
        """Add each pipe (or chain) of ``pipes`` (see :meth:`add_pipe`)."""
        for pipe in pipes:
            self.add_pipe(pipe, branch)

    def _resolve_or_add(self, piper: Any, branch: Any = None,
                        branched: list | None = None) -> Piper:
        if isinstance(piper, Piper) and piper in self.graph:
            return piper
        if isinstance(piper, (str, int)) and not isinstance(piper, bool):
            return self.resolve(piper)
        unbranched = not isinstance(piper, Piper) or piper.branch is None
        piper = self.add_piper(piper, branch=branch)
        if branch is not None and unbranched and branched is not None:
            branched.append(piper)
        return piper

    def del_pipe(self, pipe: Sequence[Any]) -> None:
        """Remove the pipe ``(upstream, downstream)`` (or each pipe of a chain)."""
        pipers = [self.resolve(p) for p in pipe]
        for a, b in zip(pipers, pipers[1:], strict=False):
            if a.connected or b.connected:
                raise DaggerError(f"cannot delete a pipe of connected pipers "
                                  f"{a.name!r} -> {b.name!r}")
            if b not in self.graph[a]:
                raise DaggerError(f"no pipe {a.name!r} -> {b.name!r} in this Dagger")
            self.graph.del_edge((a, b))

    def del_pipes(self, pipes: Iterable[Sequence[Any]]) -> None:
        """Remove each pipe (or chain) of ``pipes`` (see :meth:`del_pipe`)."""
        for pipe in pipes:
            self.del_pipe(pipe)

    # -- reading -----------------------------------------------------------------------

    def upstream(self, piper: Any) -> list[Piper]:
        """The pipers feeding ``piper``, in inbox order."""
        return self._sorted(self.graph.parents(self.resolve(piper)))

    def downstream(self, piper: Any) -> list[Piper]:
        """The pipers ``piper`` feeds, in order."""
        return self._sorted(self.graph.children(self.resolve(piper)))

    def get_inputs(self) -> list[Piper]:
        """Pipers with no upstream piper (each takes one input iterable), in order."""
        return self._sorted(self.graph.sources())

    def get_outputs(self) -> list[Piper]:
        """Pipers with no downstream piper, in order."""
        return self._sorted(self.graph.sinks())

    def postorder(self) -> list[Piper]:
        """Every piper after the pipers it feeds (outputs first)."""
        return self.graph.postorder()

    def topological(self) -> list[Piper]:
        """Every piper before the pipers it feeds (inputs first)."""
        return self.graph.topological()

    # -- running -----------------------------------------------------------------------

    def connect_inputs(self, datas: Sequence[Iterable[Any]]) -> None:
        """Give one input iterable to each input piper (in :meth:`get_inputs` order)."""
        inputs = self.get_inputs()
        datas = list(datas)
        if len(datas) != len(inputs):
            raise DaggerError(f"{len(datas)} input iterables for {len(inputs)} input "
                              f"pipers {[p.name for p in inputs]}; give one each")
        self._inputs = datas

    def connect(self, datas: Sequence[Iterable[Any]] | None = None) -> None:
        """Connect every piper, inputs first (``datas``: see :meth:`connect_inputs`).

        Where a piper's only upstream piper is on the same IMap and feeds
        nothing else, and both take and make one item at a time (see
        :func:`papy.checks.chained_to`), the piper's task takes the upstream task's
        results inside the IMap (``Piper.connect(chained=...)``): the items
        between them do not pass through Python in the parent. Set
        :attr:`chain_tasks` to False to connect every piper through the
        parent instead.
        """
        if datas is not None:
            self.connect_inputs(datas)
        for piper in self.graph:
            if piper.connected:
                raise DaggerError(f"piper {piper.name!r} is already connected; "
                                  f"disconnect() the Dagger first")
        if not self.graph:
            raise DaggerError("the Dagger has no pipers")
        inputs = self.get_inputs()
        if len(self._inputs) != len(inputs):
            raise DaggerError(f"the Dagger has {len(inputs)} input pipers; give "
                              f"{len(inputs)} input iterables (connect_inputs)")
        checks.check_imap_order(self)
        quanta = checks.quanta(checks.check_merge_rates(self))
        self._taps = [Tap(source, quanta[piper])
                      for piper, source in zip(inputs, self._inputs, strict=False)]
        lifecycle.connect_pipers(self, dict(zip(inputs, self._taps, strict=False)))

    @property
    def imaps(self) -> list:
        """The distinct IMaps the pipers run on, inputs first."""
        seen: list = []
        for piper in self.topological():
            if piper.imap is not None and all(piper.imap is not m for m in seen):
                seen.append(piper.imap)
        return seen

    def start(self) -> None:
        """Start every IMap used (after :meth:`connect`)."""
        for piper in self.graph:
            if not piper.connected:
                raise DaggerError(f"piper {piper.name!r} is not connected; connect() the "
                                  f"Dagger before start()")
        self._running = True
        try:
            for m in self.imaps:
                if not m.running:
                    m.start()
        finally:   # even after a failure: no feeder is left waiting on the gate
            for piper in self.graph:
                piper.open()

    def stop(self, forced: bool = False) -> None:
        """Stop the pipeline and every IMap used; join every thread it started.

        A graceful stop (the default) ends the inputs: nothing more is drawn
        from the input iterables, and the items already drawn flow through
        the pipeline to the outputs as at the natural end of the input. The
        Dagger takes and discards what its outputs still yield (read them
        first to keep it; :class:`~papy.plumber.Plumber` keeps it); then the
        IMaps, which have nothing left in flight, stop. If the pipeline
        cannot run dry — an input's ``next()`` blocks for more than
        :data:`INPUT_GRACE` seconds, or an output raised — the stop is
        forced instead (logged).

        ``forced=True`` stops at once: relays and branches end, the IMaps
        drop what is in flight.
        """
        for tap in self._taps:
            tap.close()
        if not forced and self._running and not self._drain():
            log.warning("%r cannot finish the items in flight (an input blocks, or an "
                        "output raised); stopping it at once", self)
            forced = True
        self._running = False
        lifecycle.stop_pipers(self, forced)
        self._join_drainers()

    def _join_drainers(self, timeout: float = 30) -> None:
        lifecycle.join_drainers(self._drainers, timeout)
        self._drainers = []

    def _run_dry(self) -> bool:
        """Drain the outputs until every one has ended (inputs closed); True if so."""
        self._drainers, dry, failed = lifecycle.drainers(self.get_outputs())
        for thread in self._drainers:
            thread.start()
        return self._wait_dry(dry) and not failed

    def _wait_dry(self, dry: Flag) -> bool:
        """Wait for ``dry``; False once an input has blocked for INPUT_GRACE seconds."""
        return lifecycle.wait_dry(self, dry, self._taps, INPUT_GRACE)

    def disconnect(self) -> None:
        """Disconnect every piper (stopping the IMaps first if they run)."""
        self.stop()
        lifecycle.disconnect_pipers(self)

    # -- drawing (see papy.draw) ---------------------------------------------------------

    def to_dot(self, counts: bool | None = None) -> str:
        """The pipeline as Graphviz DOT source, to render or to read.

        Each piper is a box labelled with its name and its worker's
        functions; the pipers of one IMap share a cluster labelled with its
        workers; inline pipers are dashed and marked ``inline``; each pipe is
        an edge, a piper's edges in branch order and an edge into a merge
        labelled with its place in the inbox. Needs nothing installed (see
        :mod:`papy.draw`).

        Args:
            counts: show each piper's ``stats`` (items in, out, errors);
                ``None``: while the pipeline runs (between :meth:`start`
                and :meth:`stop`).
        """
        return drawing.to_dot(self, counts)

    def draw(self, path: str | os.PathLike, format: str | None = None,
             counts: bool | None = None) -> str:
        """Write a drawing of the pipeline (:meth:`to_dot`) to ``path``; return the path.

        The format is ``format`` or else the suffix of ``path``: ``.png``,
        ``.svg`` or ``.pdf`` are rendered by the Graphviz ``dot`` program
        through the ``graphviz`` package (``pip install
        'papy-imap[graphviz]'``, and Graphviz itself, e.g. ``apt install
        graphviz``); ``.dot`` writes the DOT text and needs neither. Another
        format is a ValueError; a missing package an ImportError, and a
        missing ``dot`` program a RuntimeError, each saying what to install.
        ``counts`` is as for :meth:`to_dot`.
        """
        return drawing.draw(self, path, format, counts)

    def __repr__(self) -> str:
        return f"Dagger({[p.name for p in self.graph]})"
