"""The order every format follows: statements, phase groups, titles and edges.

Nodes appear in statement order (a topological order of the data edges, ties broken by phase,
layer, spec line and id), never in insertion order, so every format is byte-for-byte
deterministic whatever order the graph was built in.
"""

from __future__ import annotations

import networkx as nx

from unfoldc.graphs.style import is_carry

PHASES = ("setup", "prologue", "layer", "epilogue")
_PHASE_TITLES = {
    "setup": "setup (once, at construction)",
    "prologue": "prologue (per call, before the layers)",
    "layer": "layer body",
    "epilogue": "epilogue (outputs)",
}

GroupKey = tuple[str, "int | None"]


def _phase_rank(attrs: dict) -> int:
    phase = attrs.get("phase")
    return PHASES.index(phase) if phase in PHASES else len(PHASES)


def _tie_key(g: nx.DiGraph, n: str) -> tuple:
    attrs = g.nodes[n]
    layer = attrs.get("layer")
    return (_phase_rank(attrs), -1 if layer is None else layer, attrs.get("line") or 0, n)


def data_edges(g: nx.DiGraph) -> nx.DiGraph:
    """Every node of ``g`` with its data edges only (no carries): a DAG for a sound graph."""
    data = nx.DiGraph()
    data.add_nodes_from(g)
    data.add_edges_from((u, v) for u, v in g.edges if not is_carry(g, u, v))
    return data


def statement_order(g: nx.DiGraph) -> list[str]:
    """Every node once: data dependencies first, then phase, layer, spec line and id."""
    try:
        order = list(
            nx.lexicographical_topological_sort(data_edges(g), key=lambda n: _tie_key(g, n))
        )
    except nx.NetworkXUnfeasible:  # a data cycle is a builder bug, but still show the graph
        order = sorted(g, key=lambda n: _tie_key(g, n))
    return sorted(order, key=lambda n: _tie_key(g, n)[:2])  # stable: keeps topological ties


def groups(g: nx.DiGraph) -> list[tuple[GroupKey, list[str]]]:
    """Nodes in statement order, grouped by phase, and by layer index in unrolled graphs."""
    out: list[tuple[GroupKey, list[str]]] = []
    for n in statement_order(g):
        key = (g.nodes[n].get("phase", "?"), g.nodes[n].get("layer"))
        if not out or out[-1][0] != key:
            out.append((key, []))
        out[-1][1].append(n)
    return out


def group_title(g: nx.DiGraph, key: GroupKey) -> str:
    """The title of a phase group: ``layer body (x16)``, ``layer 3``, ``setup (...)``."""
    phase, layer = key
    if layer is not None:
        return f"layer {layer}"
    if phase == "layer" and not g.graph.get("unrolled"):
        return f"layer body (x{g.graph.get('num_layers', '?')})"
    return _PHASE_TITLES.get(phase, str(phase))


def headline(g: nx.DiGraph) -> str:
    """One line naming the algorithm, its spec and how the loop is laid out."""
    name, spec = g.graph.get("name", "?"), g.graph.get("spec", "?")
    if g.graph.get("unrolled"):
        loop = f"unrolled into {g.graph['unrolled']} layers"
    else:
        loop = f"rolled, {g.graph.get('num_layers', '?')} layers"
    return f"{name} ({spec}): {loop}"


def sorted_edges(g: nx.DiGraph) -> list[tuple[str, str]]:
    """Every edge, by the statement position of its head, then of its tail."""
    position = {n: i for i, n in enumerate(statement_order(g))}
    return sorted(g.edges, key=lambda e: (position[e[1]], position[e[0]]))
