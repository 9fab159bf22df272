"""Renderers for the iteration graph: text, JSON, DOT, Mermaid, SVG and PNG.

The iteration graph is a ``networkx.DiGraph``. Graph attributes: ``name``, ``num_layers``,
``spec``, ``unrolled``. Node attributes: ``kind``, ``label``, ``shape``, ``line``, ``phase``
(``setup``, ``prologue``, ``layer``, ``epilogue``), ``layer``, ``hoisted``, ``per_layer``. Edge
attribute ``kind``: ``data`` within one iteration, ``carry`` from layer k to layer k + 1.

Every renderer is a pure function of the graph and byte-for-byte deterministic: nodes appear in
statement order (:mod:`unfoldc.graphs.order`), never in insertion order. This module writes the
text formats; DOT lives in :mod:`unfoldc.graphs.dot` and the pictures (SVG, PNG) in
:mod:`unfoldc.graphs.draw`.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable

import networkx as nx

from unfoldc.graphs import draw
from unfoldc.graphs.dot import to_dot
from unfoldc.graphs.order import group_title, groups, headline, sorted_edges
from unfoldc.graphs.style import CARRY_COLOUR, carry_label, is_carry, style_of, subline

FORMATS = ("text", "json", "dot", "mermaid", "svg", "png")


def render(g: nx.DiGraph, fmt: str) -> str | bytes:
    """Renders ``g`` in one of :data:`FORMATS`; PNG comes back as bytes, the rest as text.

    Raises:
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
    """
    renderers: dict[str, Callable[[nx.DiGraph], str | bytes]] = {
        "text": to_text,
        "json": to_json,
        "dot": to_dot,
        "mermaid": to_mermaid,
        "svg": draw.to_svg,
        "png": draw.png_bytes,
    }
    if fmt not in renderers:
        raise ValueError(f"unknown graph format `{fmt}`; expected one of {', '.join(FORMATS)}")
    return renderers[fmt](g)


# --- text ------------------------------------------------------------------------------------


def to_text(g: nx.DiGraph) -> str:
    """A readable listing, one node per line, grouped by phase in statement order."""
    carries = sum(1 for u, v in g.edges if is_carry(g, u, v))
    lines = [
        headline(g),
        f"{g.number_of_nodes()} nodes, {g.number_of_edges()} edges ({carries} carried)",
    ]
    widths = _text_widths(g)
    for key, nodes in groups(g):
        lines += ["", group_title(g, key) + ":"]
        lines += [_text_row(g, n, widths) for n in nodes]
    return "\n".join(lines) + "\n"


def _text_widths(g: nx.DiGraph) -> tuple[int, ...]:
    rows = [_text_cells(g, n) for n in g]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(4)]
    # Labels past 48 characters are not padded, so one long update cannot widen every row.
    widths[2] = min(widths[2], 48)
    return tuple(widths)


def _text_cells(g: nx.DiGraph, n: str) -> list[str]:
    d = g.nodes[n]
    return [str(n), str(d.get("kind", "?")), str(d.get("label", "")), str(d.get("shape", ""))]


def _text_row(g: nx.DiGraph, n: str, widths: tuple[int, ...]) -> str:
    d = g.nodes[n]
    cells = _text_cells(g, n)
    row = "  " + "  ".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True))
    row += f"  :{d['line']:<4}" if d.get("line") else "  " + " " * 5
    inputs = [f"{m} (carried)" if is_carry(g, m, n) else m for m in sorted(g.predecessors(n))]
    row += "  <- " + ", ".join(inputs) if inputs else ""
    flags = [f for f in ("hoisted", "per_layer") if d.get(f)]
    row += "".join(f"  [{f.replace('_', '-')}]" for f in flags)
    return row.rstrip()


# --- JSON ------------------------------------------------------------------------------------


def to_json(g: nx.DiGraph) -> str:
    """Networkx node-link JSON (edges under ``links``), sorted, indented by 2."""
    canonical = nx.DiGraph()
    canonical.graph.update(g.graph)
    canonical.add_nodes_from((n, g.nodes[n]) for n in sorted(g))
    canonical.add_edges_from((u, v, g.edges[u, v]) for u, v in sorted(g.edges))
    return json.dumps(_node_link(canonical), indent=2, sort_keys=True, default=str) + "\n"


def _node_link(g: nx.DiGraph) -> dict:
    # networkx 3.4 renamed the keyword `link` to `edges`; pyproject allows networkx >= 3.1.
    if "edges" in inspect.signature(nx.node_link_data).parameters:
        return nx.node_link_data(g, edges="links")
    return nx.node_link_data(g, link="links")


# --- Mermaid ---------------------------------------------------------------------------------

# Mermaid reads `"` as the end of a label and `<`, `>`, `&` as HTML; `#` starts its own entity
# syntax, so it is escaped too. str.translate replaces all at once, so order does not matter.
_MERMAID_ESCAPES = str.maketrans(
    {
        "#": "#35;",
        '"': "#quot;",
        "<": "#lt;",
        ">": "#gt;",
        "&": "#amp;",
        "\n": " ",
    }
)


def to_mermaid(g: nx.DiGraph) -> str:
    """A Mermaid ``flowchart TD``: subgraphs per phase (per layer when unrolled).

    Carry edges are dotted, in the carry colour, and say which state they carry
    (``n_1_z -.->|"carry z"| n_0_s``).
    """
    ids = _mermaid_ids(g)
    out = ["flowchart TD", f"  %% {headline(g).translate(_MERMAID_ESCAPES)}"]
    for i, (key, nodes) in enumerate(groups(g)):
        title = group_title(g, key).translate(_MERMAID_ESCAPES)
        out.append(f'  subgraph group_{i}["{title}"]')
        out += [f"    {ids[n]}{_mermaid_shape(g, n)}" for n in nodes]
        out.append("  end")
    edges = sorted_edges(g)
    out += [f"  {ids[u]} {_mermaid_arrow(g, u, v)} {ids[v]}" for u, v in edges]
    out += _mermaid_classes(g, ids)
    carried = [str(i) for i, (u, v) in enumerate(edges) if is_carry(g, u, v)]
    if carried:
        out.append(f"  linkStyle {','.join(carried)} stroke:{CARRY_COLOUR}")
    return "\n".join(out) + "\n"


def _mermaid_arrow(g: nx.DiGraph, u: str, v: str) -> str:
    if not is_carry(g, u, v):
        return "-->"
    return f'-.->|"{carry_label(g, u).translate(_MERMAID_ESCAPES)}"|'


def _mermaid_ids(g: nx.DiGraph) -> dict[str, str]:
    """Identifier-safe, unique ids; the ``n_`` prefix keeps clear of keywords such as ``end``."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for n in sorted(g):
        base = "n_" + re.sub(r"[^A-Za-z0-9_]", "_", n)
        candidate, suffix = base, 2
        while candidate in taken:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        ids[n] = candidate
        taken.add(candidate)
    return ids


def _mermaid_shape(g: nx.DiGraph, n: str) -> str:
    d = g.nodes[n]
    opening, closing = style_of(d.get("kind", "?")).mermaid
    label = str(d.get("label", n)).translate(_MERMAID_ESCAPES)
    sub = subline(d).translate(_MERMAID_ESCAPES)
    return f'{opening}"{label}<br/><small>{sub}</small>"{closing}'


def _mermaid_classes(g: nx.DiGraph, ids: dict[str, str]) -> list[str]:
    out = []
    for kind in sorted({d.get("kind", "?") for _, d in g.nodes(data=True)}):
        style = style_of(kind)
        members = ",".join(ids[n] for n in sorted(g) if g.nodes[n].get("kind", "?") == kind)
        cls = "kind_" + re.sub(r"[^A-Za-z0-9_]", "_", kind)
        out += [
            f"  classDef {cls} fill:{style.fill},stroke:{style.stroke}",
            f"  class {members} {cls}",
        ]
    return out
