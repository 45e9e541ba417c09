"""Drawing a pipeline: Dagger.to_dot() read back by a real DOT parser, Dagger.draw().

The DOT text is parsed with pydot (pure Python). Rendering needs the Graphviz
``dot`` program, which CI does not have: only the tests that render are
skipped without it; the errors for a missing ``dot`` or ``graphviz`` package
are produced for real (an empty PATH, a blocked import).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pydot
import pytest
from papy_funcs import add, dbl, fail_on_3, identity, inc, neg, total

import imap
from papy import Dagger, Piper, Plumber, Worker

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
has_dot = pytest.mark.skipif(shutil.which("dot") is None,
                             reason="the Graphviz 'dot' program is not installed")


# --- reading DOT back ------------------------------------------------------------------


def unquote(value: str | None) -> str | None:
    """A DOT double-quoted string as the text it stands for (\\n: a line break)."""
    if value is None:
        return None
    assert value[0] == value[-1] == '"', value
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value[1:-1])


def attrs(element) -> dict:
    return {key: unquote(value) for key, value in element.get_attributes().items()}


def pipers_of(graph) -> dict:
    """``{node id: attributes}`` of the nodes declared directly in ``graph``."""
    return {n.get_name(): attrs(n) for n in graph.get_nodes()
            if n.get_name() not in ("graph", "node", "edge")}


def parse(text: str):
    graphs = pydot.graph_from_dot_data(text)
    assert graphs is not None and len(graphs) == 1, text
    return graphs[0]


def clusters(graph) -> dict:
    """``{cluster name: (its label, {node id: attributes})}``."""
    found = {}
    for sub in graph.get_subgraphs():
        label = unquote(sub.get_graph_defaults()[0]["label"])
        found[sub.get_name()] = (label, pipers_of(sub))
    return found


def edges(graph) -> list:
    return [(e.get_source(), e.get_destination(), unquote(e.get_label()))
            for e in graph.get_edges()]


def every_node(graph) -> dict:
    nodes = pipers_of(graph)
    for _, members in clusters(graph).values():
        nodes.update(members)
    return nodes


# --- structure -------------------------------------------------------------------------


def test_each_piper_is_a_node_labelled_with_name_and_functions() -> None:
    a = Piper(inc, name="a")
    b = Piper(Worker((dbl, neg)), name="b")
    c = Piper(Worker(inc, arguments=[(5,)]), name="c")
    graph = parse(Dagger(pipes=[(a, b, c)]).to_dot())
    assert every_node(graph) == {
        "p0": {"label": "a\ninc\ninline", "style": "rounded,dashed"},
        "p1": {"label": "b\ndbl -> neg\ninline", "style": "rounded,dashed"},
        "p2": {"label": "c\ninc(...)\ninline", "style": "rounded,dashed"},
    }
    assert edges(graph) == [("p0", "p1", None), ("p1", "p2", None)]


def test_pipers_are_grouped_by_imap_and_inline_pipers_stand_apart() -> None:
    shared = imap.IMap(worker_type="thread", worker_num=2)
    remote = imap.IMap(worker_type="thread", worker_num=1, name="scoring",
                       worker_remote=[("example.org:18812", 3)])
    first = Piper(inc, parallel=shared, name="first")
    second = Piper(dbl, parallel=shared, name="second")
    other = Piper(neg, parallel=remote, name="other")
    last = Piper(identity, name="last")
    graph = parse(Dagger(pipes=[(first, second, other, last)]).to_dot())
    found = clusters(graph)
    assert found == {
        "cluster_1": ("IMap 1: 2 thread workers",
                      {"p0": {"label": "first\ninc"}, "p1": {"label": "second\ndbl"}}),
        "cluster_2": ("IMap 2: 1 thread worker + 3 remote workers on example.org:18812"
                      "\nscoring", {"p2": {"label": "other\nneg"}}),
    }
    assert pipers_of(graph) == {"p3": {"label": "last\nidentity\ninline",
                                       "style": "rounded,dashed"}}


def test_options_other_than_one_are_shown() -> None:
    m = imap.IMap(worker_type="thread", worker_num=1)
    piper = Piper(total, parallel=m, consume=2, produce=1, spawn=3, name="sum")
    label = every_node(parse(Dagger([piper]).to_dot()))["p0"]["label"]
    assert label == "sum\ntotal\nconsume=2 spawn=3"


def test_edges_follow_branch_order_and_merge_edges_name_the_inbox_place() -> None:
    fork = Piper(identity, name="fork")
    late = Piper(inc, name="late", branch=1)     # added first, but branch 1
    early = Piper(dbl, name="early", branch=0)
    merge = Piper(add, name="merge")
    d = Dagger(pipes=[(fork, late, merge), (fork, early, merge)])
    assert d.upstream(merge) == [early, late]
    ids = {"fork": "p0", "late": "p1", "merge": "p2", "early": "p3"}
    assert [p.name for p in d.pipers] == list(ids)
    assert edges(parse(d.to_dot())) == [
        ("p0", "p3", None), ("p0", "p1", None),
        ("p3", "p2", "inbox[0]"), ("p1", "p2", "inbox[1]"),
    ]


def test_names_that_look_like_dot_cannot_change_the_graph() -> None:
    name = 'x"]; evil [label="boo'
    odd = 'back\\slash "quoted"\nsecond line'
    d = Dagger(pipes=[(Piper(inc, name=name), Piper(dbl, name=odd))])
    text = d.to_dot()
    assert '\\"]; evil' in text and "back\\\\slash \\\"quoted\\\"\\nsecond" in text
    nodes = every_node(parse(text))
    assert sorted(nodes) == ["p0", "p1"]
    assert nodes["p0"]["label"] == f"{name}\ninc\ninline"
    assert nodes["p1"]["label"] == f"{odd}\ndbl\ninline"


def test_the_same_pipeline_gives_the_same_text() -> None:
    def build() -> Dagger:
        m = imap.IMap(worker_type="thread", worker_num=2)   # unnamed: named after id()
        return Dagger(pipes=[(Piper(inc, parallel=m, name="a"), Piper(dbl, name="b"))])

    assert build().to_dot() == build().to_dot()


def test_an_empty_dagger_is_an_empty_digraph() -> None:
    graph = parse(Dagger().to_dot())
    assert graph.get_name() == "pipeline" and every_node(graph) == {} and edges(graph) == []


# --- counts ----------------------------------------------------------------------------


def test_counts_show_while_running_and_not_after() -> None:
    d = Dagger(pipes=[(Piper(inc, name="a"), Piper(fail_on_3, name="b"))])
    assert "in=" not in d.to_dot()
    d.connect([range(5)])
    d.start()
    try:
        assert len(list(d.get_outputs()[0])) == 5
        running = every_node(parse(d.to_dot()))
        assert running["p0"] == {"label": "a\ninc\ninline\nin=5 out=5 errors=0",
                                 "style": "rounded,dashed"}
        assert running["p1"] == {"label": "b\nfail_on_3\ninline\nin=5 out=5 errors=1",
                                 "style": "rounded,dashed", "color": "red"}
        assert "in=" not in d.to_dot(counts=False)
    finally:
        d.stop()
    assert "in=" not in d.to_dot()
    assert "in=5 out=5 errors=1" in d.to_dot(counts=True)


def test_a_running_plumber_draws_its_counts() -> None:
    m = imap.IMap(worker_type="thread", worker_num=2)
    plumber = Plumber(pipes=[(Piper(inc, parallel=m, name="a"), Piper(dbl, name="b"))])
    plumber.start([range(7)])
    try:
        plumber.run()
        assert plumber.wait(30)
        labels = {k: v["label"] for k, v in every_node(parse(plumber.to_dot())).items()}
        assert labels == {"p0": "a\ninc\nin=7 out=7 errors=0",
                          "p1": "b\ndbl\ninline\nin=7 out=7 errors=0"}
    finally:
        plumber.stop()


# --- draw: formats and errors ------------------------------------------------------------


def small() -> Dagger:
    m = imap.IMap(worker_type="thread", worker_num=1)
    return Dagger(pipes=[(Piper(inc, name="one"), Piper(dbl, parallel=m, name="two"))])


@pytest.fixture
def no_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Graphviz program can be found: PATH is an empty directory."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None


@pytest.fixture
def no_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import graphviz`` fails."""
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(ImportError):
        import graphviz  # noqa: F401


def test_a_dot_file_needs_no_graphviz(tmp_path: Path, no_dot: None, no_graphviz: None) -> None:
    d = small()
    for path, fmt in ((tmp_path / "a.dot", None), (tmp_path / "b.txt", "dot"),
                      (tmp_path / "c.DOT", None)):
        assert d.draw(path, format=fmt) == str(path)
        assert path.read_text(encoding="utf-8") == d.to_dot()


@pytest.mark.parametrize(("path", "fmt", "blamed"), [
    ("pipeline.jpg", None, "pipeline.jpg' is not a format"),
    ("pipeline", None, "cannot tell the format of"),
    ("pipeline.svg", "gif", "format 'gif' is not"),
])
def test_an_unknown_format_is_refused_naming_the_allowed_ones(
        tmp_path: Path, path: str, fmt: str | None, blamed: str) -> None:
    with pytest.raises(ValueError) as error:
        small().draw(tmp_path / path, format=fmt)
    message = str(error.value)
    assert blamed in message
    assert all(name in message for name in ("png", "svg", "pdf", "dot")), message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", ["png", "svg", "pdf"])
def test_without_the_graphviz_package_the_error_names_the_extra_and_dot(
        tmp_path: Path, no_graphviz: None, suffix: str) -> None:
    target = tmp_path / f"pipeline.{suffix}"
    with pytest.raises(ImportError) as error:
        small().draw(target)
    message = str(error.value)
    assert "pip install 'papy-imap[graphviz]'" in message
    assert "'dot' program" in message and "apt install graphviz" in message
    assert not target.exists()


def test_without_the_dot_program_the_error_names_it(tmp_path: Path, no_dot: None) -> None:
    pytest.importorskip("graphviz")
    target = tmp_path / "pipeline.png"
    with pytest.raises(RuntimeError) as error:
        small().draw(target)
    message = str(error.value)
    assert "'dot' program" in message and "not on PATH" in message
    assert "apt install graphviz" in message and "brew install graphviz" in message
    assert not target.exists()


# --- rendering (only where Graphviz is installed) ---------------------------------------


@has_dot
def test_dot_reads_the_text_without_a_warning() -> None:
    for d in (small(), demo_pipeline()):
        proc = subprocess.run(["dot", "-Tsvg"], input=d.to_dot(), capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr


@has_dot
def test_draw_renders_svg_png_and_pdf(tmp_path: Path) -> None:
    pytest.importorskip("graphviz")
    d = small()
    svg = Path(d.draw(tmp_path / "p.svg")).read_text(encoding="utf-8")
    assert "<svg" in svg and 'class="cluster"' in svg
    for text in ("one", "two", "IMap 1: 1 thread worker"):
        assert f">{text}</text>" in svg
    assert Path(d.draw(tmp_path / "p.png")).read_bytes().startswith(b"\x89PNG")
    assert Path(d.draw(tmp_path / "p.out", format="pdf")).read_bytes().startswith(b"%PDF")


# --- the tutorial's picture --------------------------------------------------------------


def demo_pipeline() -> Dagger:
    """The pipeline of examples/pipeline_demo.py, as doc/draw_demo.py builds it."""
    spec = importlib.util.spec_from_file_location("draw_demo", ROOT / "doc" / "draw_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    path = list(sys.path)
    try:
        spec.loader.exec_module(module)   # it puts the source tree on sys.path
    finally:
        sys.path[:] = path
    return module.demo_pipeline()


def test_the_committed_demo_drawing_is_current() -> None:
    """doc/figures/demo_pipeline.dot is what `make docs` would write now."""
    committed = (ROOT / "doc" / "figures" / "demo_pipeline.dot").read_text(encoding="utf-8")
    assert demo_pipeline().to_dot() == committed
    graph = parse(committed)
    assert sorted(clusters(graph)) == ["cluster_1", "cluster_2"]
    assert len(every_node(graph)) == 6 and len(edges(graph)) == 7
    assert (ROOT / "doc" / "figures" / "demo_pipeline.svg").exists()
