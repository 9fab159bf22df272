"""Graphviz DOT text of the iteration graph: a cluster per phase (per layer when unrolled).

Carry edges are dashed, in the carry colour, and labelled at their tail with the state they
carry (``carry z``), so the picture ``dot`` draws shows which box hands which value to the next
layer. In a rolled graph they leave and enter boxes on the east side and do not constrain the
ranking: they close the loop, and the data edges alone decide what sits above what.
"""

from __future__ import annotations

import html
import re

import networkx as nx

from unfoldc.graphs.order import GroupKey, group_title, groups, headline, sorted_edges
from unfoldc.graphs.style import (
    CARRY_COLOUR,
    EDGE_COLOUR,
    PHASE_FILLS,
    carry_label,
    is_carry,
    style_of,
    subline,
)


def to_dot(g: nx.DiGraph) -> str:
    """Graphviz DOT: a cluster per phase (per layer when unrolled), carry edges dashed."""
    out = [
        f"digraph {dot_quote(g.graph.get('name', 'iteration'))} {{",
        f"  graph [label={dot_quote(headline(g))}, labelloc=t, fontname=Helvetica, "
        "fontsize=14, rankdir=TB, newrank=true];",
        "  node [fontname=Helvetica, fontsize=11, style=filled];",
        f'  edge [color="{EDGE_COLOUR}", arrowsize=0.7, fontname=Helvetica, fontsize=9];',
    ]
    for i, (key, nodes) in enumerate(groups(g)):
        out += _cluster(g, i, key, nodes)
    labelled: set[str] = set()  # states whose carry already has its label
    for u, v in sorted_edges(g):
        out.append(_edge(g, u, v, first=u not in labelled))
        if is_carry(g, u, v):
            labelled.add(u)
    return "\n".join([*out, "}"]) + "\n"


def dot_quote(text: object) -> str:
    """A DOT double-quoted string; backslashes doubled so ``\\n`` or ``\\N`` stay literal."""
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _cluster(g: nx.DiGraph, index: int, key: GroupKey, nodes: list[str]) -> list[str]:
    phase, layer = key
    name = f"cluster_{index}_{re.sub(r'[^A-Za-z0-9_]', '_', str(phase))}"
    name += "" if layer is None else f"_{layer}"
    fill = PHASE_FILLS.get(phase, "#ffffff")
    head = [
        f"  subgraph {name} {{",
        f'    label={dot_quote(group_title(g, key))}; style="rounded,filled"; '
        f'fillcolor="{fill}"; color="#bbbbbb";',
    ]
    return [*head, *(_node(g, n) for n in nodes), "  }"]


def _node(g: nx.DiGraph, n: str) -> str:
    d = g.nodes[n]
    style = style_of(d.get("kind", "?"))
    # An HTML-like label: the two lines need different sizes, and html.escape covers
    # exactly what it needs (&, <, >, quotes) while backslashes stay literal.
    label = (
        f"<{html.escape(str(d.get('label', n)))}<BR/>"
        f'<FONT POINT-SIZE="9" COLOR="#555555">{html.escape(subline(d))}</FONT>>'
    )
    peripheries = ", peripheries=2" if d.get("per_layer") else ""
    return (
        f"    {dot_quote(n)} [label={label}, shape={style.dot_shape}, "
        f'style="{style.dot_style}", fillcolor="{style.fill}", color="{style.stroke}", '
        f"tooltip={dot_quote(n)}{peripheries}];"
    )


def _edge(g: nx.DiGraph, u: str, v: str, first: bool) -> str:
    """A data edge plain; a carry dashed, with its state as tooltip, and on the first carry
    leaving ``u`` as a label at the tail (one label per state keeps the picture legible)."""
    head = f"  {dot_quote(u)} -> {dot_quote(v)}"
    if not is_carry(g, u, v):
        return head + ";"
    text = dot_quote(carry_label(g, u))
    attrs = f'style=dashed, color="{CARRY_COLOUR}", edgetooltip={text}'
    if first:
        attrs += f', taillabel={text}, labelfontcolor="{CARRY_COLOUR}"'
    if not g.graph.get("unrolled"):
        # Rolled: the carry closes the loop, so it must not drive the ranking, and it runs
        # up the east side, apart from the data edges that enter and leave north and south.
        attrs += ", tailport=e, headport=e, constraint=false"
    return head + f" [{attrs}];"
