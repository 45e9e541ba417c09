"""papy.graph.DictGraph: nodes, edges, traversals."""

from __future__ import annotations

import pytest

from papy.graph import DictGraph

pytestmark = pytest.mark.timeout(30)


def diamond() -> DictGraph:
    return DictGraph(edges=[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])


def test_nodes_and_edges_keep_insertion_order() -> None:
    g = diamond()
    assert g.nodes() == ["a", "b", "c", "d"]
    assert g.edges() == [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]


def test_incoming_and_outgoing_edges() -> None:
    g = diamond()
    assert g.outgoing_edges("a") == [("a", "b"), ("a", "c")]
    assert g.incoming_edges("d") == [("b", "d"), ("c", "d")]
    assert g.parents("d") == ["b", "c"] and g.children("a") == ["b", "c"]


def test_sources_and_sinks() -> None:
    g = diamond()
    assert g.sources() == ["a"] and g.sinks() == ["d"]


def test_dfs_is_preorder_from_node() -> None:
    assert diamond().dfs("a") == ["a", "b", "d", "c"]
    assert diamond().dfs("c") == ["c", "d"]


def test_postorder_puts_children_first() -> None:
    order = diamond().postorder()
    assert order.index("d") < order.index("b") < order.index("a")
    assert order.index("c") < order.index("a")
    assert diamond().topological()[0] == "a"


def test_postorder_of_cycle_raises() -> None:
    g = DictGraph(edges=[("a", "b"), ("b", "a")])
    with pytest.raises(ValueError, match="cycle"):
        g.postorder()
    assert not g.is_acyclic() and diamond().is_acyclic()


def test_rank_and_width() -> None:
    g = diamond()
    assert g.rank() == {"a": 0, "b": 1, "c": 1, "d": 2}
    assert g.width() == 2
    assert DictGraph().width() == 0


def test_del_node_removes_its_edges() -> None:
    g = diamond()
    g.del_node("b")
    assert g.edges() == [("a", "c"), ("c", "d")]


def test_del_edge() -> None:
    g = diamond()
    g.del_edge(("a", "b"))
    assert not g.has_path("a", "b") and g.has_path("a", "d")
