"""``DictGraph``: a small directed graph stored as a dict of dicts.

``graph[node]`` is a dict whose keys are the nodes ``node`` points to (its
*outgoing* edges). Insertion order of nodes and edges is kept everywhere, so
every traversal is deterministic. The :class:`~papy.dagger.Dagger` stores its
pipers in one, with edges pointing downstream (``upstream -> downstream``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any


class DictGraph(dict):
    """A directed graph: ``{node: {child: None, ...}, ...}``."""

    def __init__(self, nodes: Iterable[Hashable] = (), edges: Iterable[tuple] = ()) -> None:
        super().__init__()
        self.add_nodes(nodes)
        self.add_edges(edges)

    # -- building -------------------------------------------------------------

    def add_node(self, node: Hashable) -> None:
        """Add ``node`` (nothing happens if it is there already)."""
        if node not in self:
            self[node] = {}

    def add_nodes(self, nodes: Iterable[Hashable]) -> None:
        for node in nodes:
            self.add_node(node)

    def del_node(self, node: Hashable) -> None:
        """Remove ``node`` and every edge touching it (KeyError if absent)."""
        del self[node]
        for children in self.values():
            children.pop(node, None)

    def add_edge(self, edge: tuple) -> None:
        """Add the edge ``(a, b)`` (a -> b), adding missing nodes."""
        a, b = edge
        self.add_node(a)
        self.add_node(b)
        self[a][b] = None

    def add_edges(self, edges: Iterable[tuple]) -> None:
        for edge in edges:
            self.add_edge(edge)

    def del_edge(self, edge: tuple) -> None:
        """Remove the edge ``(a, b)`` (KeyError if absent)."""
        a, b = edge
        del self[a][b]

    # -- reading --------------------------------------------------------------

    def nodes(self) -> list:
        return list(self.keys())

    def edges(self, nodes: Iterable[Hashable] | None = None) -> list[tuple]:
        """Every edge ``(a, b)``, or only those leaving ``nodes``."""
        nodes = self.keys() if nodes is None else nodes
        return [(a, b) for a in nodes for b in self[a]]

    def outgoing_edges(self, node: Hashable) -> list[tuple]:
        return [(node, b) for b in self[node]]

    def incoming_edges(self, node: Hashable) -> list[tuple]:
        return [(a, node) for a, children in self.items() if node in children]

    def children(self, node: Hashable) -> list:
        return list(self[node])

    def parents(self, node: Hashable) -> list:
        return [a for a, children in self.items() if node in children]

    def sources(self) -> list:
        """Nodes no edge points to."""
        pointed = {b for children in self.values() for b in children}
        return [n for n in self if n not in pointed]

    def sinks(self) -> list:
        """Nodes with no outgoing edge."""
        return [n for n, children in self.items() if not children]

    def dfs(self, node: Hashable, seen: set | None = None) -> list:
        """Nodes reachable from ``node`` in depth-first preorder (node first)."""
        seen = set() if seen is None else seen
        order: list = []
        stack = [node]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            order.append(current)
            stack.extend(reversed(list(self[current])))
        return order

    def has_path(self, a: Hashable, b: Hashable) -> bool:
        return b in self.dfs(a)

    def is_acyclic(self) -> bool:
        try:
            self.postorder()
        except ValueError:
            return False
        return True

    def postorder(self) -> list:
        """Every node after all the nodes it points to (children first).

        Raises ValueError if the graph has a cycle.
        """
        state: dict = {}
        order: list = []
        for root in self:
            if root in state:
                continue
            stack: list[tuple[Any, Any]] = [(root, iter(self[root]))]
            state[root] = "open"
            while stack:
                node, children = stack[-1]
                for child in children:
                    if state.get(child) == "open":
                        raise ValueError(f"the graph has a cycle through {child!r}")
                    if child not in state:
                        state[child] = "open"
                        stack.append((child, iter(self[child])))
                        break
                else:
                    stack.pop()
                    state[node] = "done"
                    order.append(node)
        return order

    def topological(self) -> list:
        """Every node before the nodes it points to; ties in insertion order.

        Raises ValueError if the graph has a cycle.
        """
        waiting = {node: 0 for node in self}
        for children in self.values():
            for child in children:
                waiting[child] += 1
        order = [node for node in self if waiting[node] == 0]
        for node in order:   # order grows while it is walked
            for child in self[node]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    order.append(child)
        if len(order) != len(self):
            raise ValueError("the graph has a cycle")
        return order

    def rank(self) -> dict:
        """``{node: length of the longest path from a source to node}``."""
        ranks: dict = {}
        for node in self.topological():
            ranks.setdefault(node, 0)
            for child in self[node]:
                ranks[child] = max(ranks.get(child, 0), ranks[node] + 1)
        return ranks

    def width(self) -> int:
        """The most nodes sharing one rank (0 for an empty graph)."""
        counts: dict = {}
        for r in self.rank().values():
            counts[r] = counts.get(r, 0) + 1
        return max(counts.values(), default=0)

    def __repr__(self) -> str:
        return f"DictGraph({dict(self)!r})"
