"""Drawing a pipeline: Graphviz DOT source for a Dagger, rendered when Graphviz is there.

:func:`to_dot` writes the DOT text itself and needs nothing installed;
:func:`draw` writes it to a file, as DOT text or rendered to PNG, SVG or PDF
by the Graphviz ``dot`` program through the ``graphviz`` Python package
(the ``papy-imap[graphviz]`` extra), both imported and looked up only there.

What the drawing shows (the text for the demo pipeline, shortened)::

    digraph pipeline {
      subgraph cluster_1 {                              a cluster per IMap
        graph [label="IMap 1: 2 process workers", style="rounded"];
        p1 [label="words\\ncount_words"];                a node per piper
      }
      p0 [label="split\\nsplit\\ninline", style="rounded,dashed"];
      p0 -> p1;                                         an edge per pipe
      p1 -> p2 [label="inbox[0]"];                      into a merge: its place
    }

* Each piper is one box, labelled with its name, its worker's functions
  (composed left to right; ``(...)`` marks a function given extra
  arguments, whose values are not shown), any ``consume``, ``produce`` or
  ``spawn`` other than 1 and, with counts, its ``stats`` (``in``, ``out``,
  ``errors``; red when there are errors). Node ids are ``p0``, ``p1``, ...
  in the order the pipers were added to the Dagger.
* The pipers of one IMap sit in one ``cluster_N`` subgraph, labelled
  ``IMap N`` (numbered as in :attr:`papy.dagger.Dagger.imaps`, inputs
  first) with its workers and, if it was given one, its name. Inline pipers
  (``parallel=False``, evaluated by whoever pulls their output) are dashed,
  marked ``inline`` and in no cluster.
* The edges leaving a piper are listed in the Dagger's order of its
  downstream pipers (``branch``, then insertion order), and with
  ``ordering=out`` Graphviz keeps that order left to right. An edge into a
  merge is labelled with its place in the merge's inbox (``inbox[i]``, the
  order of :meth:`papy.dagger.Dagger.upstream`).

The text depends only on the pipeline's structure, names and options (and
the counts, when shown), so the same pipeline always gives the same DOT.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any, Protocol

from .worker import _name

if TYPE_CHECKING:
    from imap import IMap

    from .piper import Piper


class Dagger(Protocol):
    """What a drawing reads of a pipeline (a :class:`papy.dagger.Dagger`,
    a Plumber): this module needs nothing else of it, and does not import it."""

    pipers: list
    imaps: list

    def get_inputs(self) -> list: ...

    def upstream(self, piper: Any) -> list: ...

    def downstream(self, piper: Any) -> list: ...

#: The formats :func:`draw` writes; all but ``dot`` need Graphviz.
FORMATS = ("png", "svg", "pdf", "dot")

#: How to get the Graphviz ``dot`` program, for the error messages.
_GET_DOT = ("install Graphviz, which provides it (e.g. apt install graphviz, "
            "brew install graphviz, conda install graphviz; https://graphviz.org/download/)")


def quote(text: str) -> str:
    """``text`` as a DOT double-quoted string.

    Backslashes and double quotes are escaped; line breaks become ``\\n``
    (a centred line break in a Graphviz label), so nothing in ``text`` can
    end the string early or change the graph.
    """
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{text}"'


def _attributes(**attrs: Any) -> str:
    """``[key="value", ...]`` for the attributes that are not None."""
    given = [f"{key}={quote(value)}" for key, value in attrs.items() if value is not None]
    return f" [{', '.join(given)}]" if given else ""


def _function(func: Any, extra: bool) -> str:
    """A function's name as shown in a label: no ``<locals>`` path; ``(...)`` for extras."""
    name = _name(func).rsplit(".<locals>.", 1)[-1]
    return f"{name}(...)" if extra else name


def piper_label(piper: Piper, counts: bool) -> str:
    """The label of ``piper``: name, functions, options other than 1, inline, counts."""
    worker = piper.worker
    lines = [piper.name, " -> ".join(
        _function(f, bool(a or k))
        for f, a, k in zip(worker.functions, worker.arguments, worker.kwargs, strict=True))]
    options = [f"{key}={value}" for key, value in (("consume", piper.consume),
                                                   ("produce", piper.produce),
                                                   ("spawn", piper.spawn)) if value != 1]
    if options:
        lines.append(" ".join(options))
    if piper.imap is None:
        lines.append("inline")
    if counts:
        stats = piper.stats
        lines.append(f"in={stats['in']} out={stats['out']} errors={stats['errors']}")
    return "\n".join(lines)


def _plural(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def imap_label(imap: IMap, number: int) -> str:
    """The label of an IMap's cluster: its number, its workers and any name it was given."""
    workers = []
    if imap.worker_num:
        workers.append(_plural(imap.worker_num, f"{imap.worker_type} worker"))
    for host, n in imap.worker_remote:
        workers.append(f"{_plural(n, 'remote worker')} on {host}")
    label = f"IMap {number}: {' + '.join(workers)}"
    # An IMap made without a name is called after its id(), which would make
    # the text differ from one run to the next: only a name given is shown.
    if imap.name != f"IMap-{id(imap):x}":
        label += f"\n{imap.name}"
    return label


def _running(dagger: Dagger) -> bool:
    """True between the Dagger's start() and stop() (Plumbers included)."""
    return bool(getattr(dagger, "_running", False))


def _branch_order(dagger: Dagger) -> list[Piper]:
    """Every piper before the pipers it feeds; inputs, then branches, in the Dagger's order.

    A topological order in which the inputs come as in ``get_inputs()`` and
    the pipers a piper feeds as in ``downstream()``, so that the edges,
    listed in this order, read branch by branch.
    """
    waiting = {piper: len(dagger.upstream(piper)) for piper in dagger.pipers}
    order = dagger.get_inputs()
    for piper in order:   # order grows while it is walked
        for child in dagger.downstream(piper):
            waiting[child] -= 1
            if not waiting[child]:
                order.append(child)
    return order


def to_dot(dagger: Dagger, counts: bool | None = None) -> str:
    """The pipeline ``dagger`` as Graphviz DOT source (see :mod:`papy.draw`).

    Args:
        dagger: the pipeline (a :class:`~papy.dagger.Dagger` or
            :class:`~papy.plumber.Plumber`).
        counts: show each piper's ``stats`` (items in, out, errors); ``None``
            shows them while the Dagger runs (between ``start()`` and
            ``stop()``).

    Returns:
        The DOT text of a ``digraph``, ending with a newline.
    """
    if counts is None:
        counts = _running(dagger)
    pipers = dagger.pipers
    ids = {piper: f"p{i}" for i, piper in enumerate(pipers)}

    def node(piper: Piper, indent: str) -> str:
        inline = piper.imap is None
        errors = counts and piper.stats["errors"]
        return (f"{indent}{ids[piper]}"
                + _attributes(label=piper_label(piper, counts),
                              style="rounded,dashed" if inline else None,
                              color="red" if errors else None) + ";")

    lines = [
        "digraph pipeline {",
        '  graph [ordering="out"];',
        '  node [shape="box", style="rounded"];',
        '  edge [fontsize="10"];',
    ]
    for number, imap in enumerate(dagger.imaps, 1):
        lines.append(f"  subgraph cluster_{number} {{")
        lines.append(f"    graph{_attributes(label=imap_label(imap, number), style='rounded')};")
        lines.extend(node(p, "    ") for p in pipers if p.imap is imap)
        lines.append("  }")
    lines.extend(node(p, "  ") for p in pipers if p.imap is None)
    for piper in _branch_order(dagger):
        for child in dagger.downstream(piper):
            upstream = dagger.upstream(child)
            label = f"inbox[{upstream.index(piper)}]" if len(upstream) > 1 else None
            lines.append(f"  {ids[piper]} -> {ids[child]}{_attributes(label=label)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _format(path: str, format: str | None) -> str:
    """The format to write: ``format`` if given, else the suffix of ``path``."""
    allowed = ", ".join(FORMATS)
    if format is None:
        suffix = os.path.splitext(path)[1]
        if not suffix:
            raise ValueError(f"cannot tell the format of {path!r}: give a path ending in "
                             f".png, .svg, .pdf or .dot, or format= one of {allowed}")
        chosen = suffix[1:].lower()
    else:
        chosen = str(format).lower()
    if chosen not in FORMATS:
        given = f"format {format!r}" if format is not None else f"the suffix of {path!r}"
        raise ValueError(f"{given} is not a format papy draws; use one of {allowed}")
    return chosen


def _render(text: str, format: str) -> bytes:
    """``text`` rendered by the Graphviz ``dot`` program (through ``graphviz``)."""
    try:
        import graphviz
    except ImportError as exc:
        raise ImportError(
            f"drawing a pipeline as {format.upper()} needs the graphviz Python package and "
            f"the Graphviz 'dot' program: pip install 'papy-imap[graphviz]' and "
            f"{_GET_DOT}; a .dot path needs neither") from exc
    missing = (f"drawing a pipeline as {format.upper()} needs the Graphviz 'dot' program, "
               f"which is not on PATH: {_GET_DOT}; a .dot path does without")
    if shutil.which("dot") is None:
        raise RuntimeError(missing)
    try:
        return graphviz.Source(text).pipe(format=format)
    except graphviz.ExecutableNotFound as exc:
        raise RuntimeError(missing) from exc
    except graphviz.CalledProcessError as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) \
            else str(exc.stderr or "")
        raise RuntimeError(f"the Graphviz 'dot' program failed to draw the pipeline "
                           f"(exit status {exc.returncode}): {stderr.strip()}") from exc


def draw(dagger: Dagger, path: str | os.PathLike, format: str | None = None,
         counts: bool | None = None) -> str:
    """Write a drawing of ``dagger`` to ``path``; return the path written.

    Args:
        dagger: the pipeline.
        path: the file to write (replaced if it exists).
        format: ``"png"``, ``"svg"``, ``"pdf"`` or ``"dot"``; default: the
            suffix of ``path``.
        counts: as for :func:`to_dot`.

    Raises:
        ValueError: the format is not one of :data:`FORMATS` (or ``path`` has
            no suffix and no format is given).
        ImportError: PNG, SVG or PDF without the ``graphviz`` package
            (``pip install 'papy-imap[graphviz]'``).
        RuntimeError: PNG, SVG or PDF without the Graphviz ``dot`` program
            on ``PATH``, or ``dot`` failed.

    A ``.dot`` file is the text of :func:`to_dot`, written without Graphviz.
    Nothing is written when rendering fails.
    """
    path = os.fspath(path)
    chosen = _format(path, format)
    text = to_dot(dagger, counts)
    data = text.encode("utf-8") if chosen == "dot" else _render(text, chosen)
    with open(path, "wb") as out:
        out.write(data)
    return path
