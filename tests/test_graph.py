"""The iteration graph: symbol and statement nodes, data edges, carry cycles in the rolled graph,
K unrolled layers with per-layer trainables per layer, goldens of the text, JSON, DOT and Mermaid
dumps, and pictures whose edges cross no box."""

from __future__ import annotations

import contextlib
import io
import json

import networkx as nx
import pytest
from conftest import EXAMPLES
from picture_checks import assert_edges_leave_and_enter_their_boxes_only

import unfoldc
from unfoldc.cli import main as cli_main
from unfoldc.graphs.layout import layout
from unfoldc.graphs.render import render
from unfoldc.ir.expr import symbols

NAMES = ("ista", "lista", "lista_cp", "fista", "admm_lasso", "rpca", "dugd", "sinkhorn", "lamp")


def art(name):
    return unfoldc.compile(EXAMPLES / f"{name}.unf")


def carries(g):
    return [(u, v) for u, v, k in g.edges(data="kind") if k == "carry"]


@pytest.mark.parametrize("name", NAMES)
def test_rolled_graph_nodes_and_carry_cycles(name):
    a = art(name)
    g = a.graph()
    p = a.optimized
    for s in p.symbols:
        if s.role in ("given", "input", "param", "train"):
            assert g.nodes[s.name]["kind"] == s.role
    for i, stmt in enumerate(p.body):
        node = g.nodes[f"{i}:{stmt.target}"]
        assert node["line"] == stmt.line and node["phase"] == "layer"
    for o in p.outputs:
        assert g.nodes[f"out:{o}"]["kind"] == "output"
    assert {k for _, _, k in g.edges(data="kind")} <= {"data", "carry"}
    updated = {s.target for s in p.body if s.kind == "update"}
    cycles = list(nx.simple_cycles(g))
    assert cycles, "a rolled graph has a cycle per carried state"
    for cycle in cycles:  # every cycle goes through the loop-carried edge
        pairs = set(zip(cycle, cycle[1:] + cycle[:1]))
        assert pairs & set(carries(g))
    # each state the next layer reads (before updating it) is carried from its last update;
    # Sinkhorn's f and P are overwritten before they are read: nothing to carry
    sources = {u.split(":", 1)[1] for u, _ in carries(g)}
    read_first, written = set(), set()
    for a in p.body:
        read_first |= {x.name for x in symbols(a.value)} - written
        written.add(a.target)
    assert sources == updated & read_first
    no_carry = nx.DiGraph([(u, v) for u, v, k in g.edges(data="kind") if k == "data"])
    assert nx.is_directed_acyclic_graph(no_carry)


def test_ista_data_edges():
    g = art("ista").graph()
    assert g.edges["HtH", "0:s"]["kind"] == "data"
    assert g.edges["init:s", "0:s"]["kind"] == "data"
    assert g.edges["0:s", "0:s"]["kind"] == "carry"  # s <- f(s): a self-loop carry
    assert g.nodes["HtH"]["hoisted"] and g.nodes["HtH"]["phase"] == "prologue"
    assert ("mu", "0:s") in g.edges and g.nodes["mu"]["per_layer"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("K", [1, 3])
def test_unrolled_graph(name, K):
    a = art(name)
    g = a.graph(unroll=K)
    p = a.optimized
    assert g.graph["unrolled"] == K
    assert nx.is_directed_acyclic_graph(g)
    for k in range(K):
        for i, stmt in enumerate(p.body):
            assert g.nodes[f"L{k}:{i}:{stmt.target}"]["layer"] == k
        for s in p.by_role("train"):
            if s.per_layer:
                assert g.nodes[f"L{k}:{s.name}"]["per_layer"]
                assert f"L{k}:{s.name}" in set().union(*(g.predecessors(f"L{k}:{i}:{b.target}")
                                                          for i, b in enumerate(p.body)))
    layered = [n for n, d in g.nodes(data=True) if d.get("layer") is not None]
    per_layer = sum(1 for s in p.by_role("train") if s.per_layer)
    assert len(layered) == K * (len(p.body) + per_layer)
    # layer k+1 reads layer k's states through carry edges, never a layer further back
    for u, v in carries(g):
        assert g.nodes[v]["layer"] == g.nodes[u]["layer"] + 1
    for o in p.outputs:
        (src,) = g.predecessors(f"out:{o}")
        assert g.nodes[src]["layer"] == K - 1


@pytest.mark.parametrize("name", NAMES)
def test_graph_goldens(name, golden):
    a = art(name)
    golden(f"graphs/{name}.txt", render(a.graph(), "text"))
    golden(f"graphs/{name}.unroll2.json", render(a.graph(unroll=2), "json"))
    golden(f"graphs/{name}.dot", render(a.graph(), "dot"))
    golden(f"graphs/{name}.mmd", render(a.graph(), "mermaid"))


def test_unrolled_dot_golden(golden):
    golden("graphs/admm_lasso.unroll2.dot", render(art("admm_lasso").graph(unroll=2), "dot"))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("unroll", [None, 2])
def test_picture_edges_cross_no_box(name, unroll):
    """Issue 15: without Graphviz, ADMM's carries were drawn through `rho` and `output z`."""
    g = art(name).graph(unroll)
    drawing = layout(g)
    assert_edges_leave_and_enter_their_boxes_only(drawing)
    assert len(drawing.carries) == len(carries(g))


def _cli(*argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(list(argv)) == 0
    return out.getvalue()


def test_cli_json_is_networkx_node_link_data():
    text = _cli("graph", str(EXAMPLES / "admm_lasso.unf"), "--format", "json", "--unroll", "2")
    data = json.loads(text)
    try:
        g = nx.node_link_graph(data, edges="links")
    except TypeError:  # networkx < 3.4
        g = nx.node_link_graph(data, link="links")
    want = art("admm_lasso").graph(unroll=2)
    assert set(g.nodes) == set(want.nodes) and set(g.edges) == set(want.edges)
    assert dict(g.nodes(data="kind")) == dict(want.nodes(data="kind"))


def test_graph_dumps_are_deterministic():
    for name in NAMES:
        assert render(art(name).graph(unroll=2), "json") == render(art(name).graph(unroll=2),
                                                                   "json")
        assert render(art(name).graph(), "text") == render(art(name).graph(), "text")


# ---- bounded size (issue 14: `graph --unroll 1000000` ran away, 2.4 GB) -----------------------
@pytest.mark.parametrize("name", NAMES)
def test_graph_size_counts_the_nodes_without_building(name):
    from unfoldc.ir.graph import graph_size

    a = art(name)
    for k in (None, 1, 4):
        assert graph_size(a.optimized, k) == len(a.graph(k))


@pytest.mark.parametrize(("unroll", "nodes", "most"), [
    ("1000000", "4,000,009", "10000"),  # above the layer limit
    ("10001", "40,013", "10000"),
])
def test_cli_refuses_a_huge_unroll_before_building_it(unroll, nodes, most, capsys, monkeypatch):
    import unfoldc.ir.graph as graph

    monkeypatch.setattr(graph._Builder, "layer", lambda *a: pytest.fail("built a layer"))
    code = cli_main(["graph", str(EXAMPLES / "admm_lasso.unf"), "--unroll", unroll])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"--unroll {unroll} would make a graph of {nodes} nodes (about" in err
    assert f"MiB); unfoldc unrolls at most 10000 layers and 100,000 nodes: use --unroll {most} " \
           "or fewer" in err


def test_the_node_budget_limits_a_long_body_below_the_layer_limit():
    from unfoldc.ir.graph import GraphTooLarge, graph_size
    from unfoldc.source import Source

    body = "".join(f"    t{k} = s * {k + 1}\n" for k in range(40))
    text = (EXAMPLES / "ista.unf").read_text().replace("    s <- soft(", body + "    s <- soft(")
    a = unfoldc.compile_source(Source("long.unf", text), unfoldc.Options(dce=False))
    with pytest.raises(GraphTooLarge, match=r"use --unroll \d+ or fewer") as err:
        a.graph(5000)
    most = int(str(err.value).rsplit("--unroll ", 1)[1].split()[0])
    assert graph_size(a.optimized, most) <= 100_000 < graph_size(a.optimized, most + 1)
