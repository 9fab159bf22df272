"""Renderers for the iteration graph: text, JSON, DOT, Mermaid, SVG and PNG.

The iteration graph is a ``networkx.DiGraph``. Graph attributes: ``name``, ``num_layers``,
``spec``, ``unrolled``. Node attributes: ``kind``, ``label``, ``shape``, ``line``, ``phase``
(``setup``, ``prologue``, ``layer``, ``epilogue``), ``layer``, ``hoisted``, ``per_layer``. Edge
attribute ``kind``: ``data`` within one iteration, ``carry`` from layer k to layer k + 1.

Every renderer is a pure function of the graph and byte-for-byte deterministic: nodes appear in
statement order (a topological order of the data edges, ties broken by phase, layer, spec line
and id), never in insertion order. SVG and PNG go through Graphviz ``dot`` when it is installed;
otherwise :mod:`unfoldc.ir.draw_svg` lays the graph out in pure Python.
"""

from __future__ import annotations

import html
import inspect
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import networkx as nx

from unfoldc.ir import draw_svg
from unfoldc.ir.draw_svg import CARRY_COLOUR, is_carry, style_of, subline

FORMATS = ("text", "json", "dot", "mermaid", "svg", "png")
PHASES = ("setup", "prologue", "layer", "epilogue")
_PHASE_TITLES = {
    "setup": "setup (once, at construction)",
    "prologue": "prologue (per call, before the layers)",
    "layer": "layer body",
    "epilogue": "epilogue (outputs)",
}
_PHASE_FILLS = {
    "setup": "#f3f6fa",
    "prologue": "#f3faf5",
    "layer": "#fdf6f0",
    "epilogue": "#f5f5f5",
}

GroupKey = tuple[str, "int | None"]


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
        "svg": to_svg,
        "png": png_bytes,
    }
    if fmt not in renderers:
        raise ValueError(f"unknown graph format `{fmt}`; expected one of {', '.join(FORMATS)}")
    return renderers[fmt](g)


# --- ordering shared by every format ---------------------------------------------------------


def _phase_rank(attrs: dict) -> int:
    phase = attrs.get("phase")
    return PHASES.index(phase) if phase in PHASES else len(PHASES)


def _tie_key(g: nx.DiGraph, n: str) -> tuple:
    attrs = g.nodes[n]
    layer = attrs.get("layer")
    return (_phase_rank(attrs), -1 if layer is None else layer, attrs.get("line") or 0, n)


def statement_order(g: nx.DiGraph) -> list[str]:
    """Every node once: data dependencies first, then phase, layer, spec line and id."""
    data = nx.DiGraph()
    data.add_nodes_from(g)
    data.add_edges_from((u, v) for u, v in g.edges if not is_carry(g, u, v))
    try:
        order = list(nx.lexicographical_topological_sort(data, key=lambda n: _tie_key(g, n)))
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


def _group_title(g: nx.DiGraph, key: GroupKey) -> str:
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


def _sorted_edges(g: nx.DiGraph) -> list[tuple[str, str]]:
    position = {n: i for i, n in enumerate(statement_order(g))}
    return sorted(g.edges, key=lambda e: (position[e[1]], position[e[0]]))


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
        lines += ["", _group_title(g, key) + ":"]
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


# --- DOT -------------------------------------------------------------------------------------


def to_dot(g: nx.DiGraph) -> str:
    """Graphviz DOT: a cluster per phase (per layer when unrolled), carry edges dashed."""
    out = [
        f"digraph {_dot_quote(g.graph.get('name', 'iteration'))} {{",
        f"  graph [label={_dot_quote(headline(g))}, labelloc=t, fontname=Helvetica, "
        "fontsize=14, rankdir=TB, newrank=true];",
        "  node [fontname=Helvetica, fontsize=11, style=filled];",
        '  edge [color="#555555", arrowsize=0.7];',
    ]
    for i, (key, nodes) in enumerate(groups(g)):
        out += _dot_cluster(g, i, key, nodes)
    out += [_dot_edge(g, u, v) for u, v in _sorted_edges(g)]
    return "\n".join([*out, "}"]) + "\n"


def _dot_quote(text: object) -> str:
    """A DOT double-quoted string; backslashes doubled so ``\\n`` or ``\\N`` stay literal."""
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_cluster(g: nx.DiGraph, index: int, key: GroupKey, nodes: list[str]) -> list[str]:
    phase, layer = key
    name = f"cluster_{index}_{re.sub(r'[^A-Za-z0-9_]', '_', str(phase))}"
    name += "" if layer is None else f"_{layer}"
    fill = _PHASE_FILLS.get(phase, "#ffffff")
    head = [
        f"  subgraph {name} {{",
        f'    label={_dot_quote(_group_title(g, key))}; style="rounded,filled"; '
        f'fillcolor="{fill}"; color="#bbbbbb";',
    ]
    return [*head, *(_dot_node(g, n) for n in nodes), "  }"]


def _dot_node(g: nx.DiGraph, n: str) -> str:
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
        f"    {_dot_quote(n)} [label={label}, shape={style.dot_shape}, "
        f'style="{style.dot_style}", fillcolor="{style.fill}", color="{style.stroke}", '
        f"tooltip={_dot_quote(n)}{peripheries}];"
    )


def _dot_edge(g: nx.DiGraph, u: str, v: str) -> str:
    head = f"  {_dot_quote(u)} -> {_dot_quote(v)}"
    if not is_carry(g, u, v):
        return head + ";"
    # Rolled graphs: carry edges close the loop, so they must not drive the ranking.
    constraint = "" if g.graph.get("unrolled") else ", constraint=false"
    return head + f' [style=dashed, color="{CARRY_COLOUR}"{constraint}];'


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
    """A Mermaid ``flowchart TD``: subgraphs per phase (per layer when unrolled), carries dotted."""
    ids = _mermaid_ids(g)
    out = ["flowchart TD", f"  %% {headline(g).translate(_MERMAID_ESCAPES)}"]
    for i, (key, nodes) in enumerate(groups(g)):
        title = _group_title(g, key).translate(_MERMAID_ESCAPES)
        out.append(f'  subgraph group_{i}["{title}"]')
        out += [f"    {ids[n]}{_mermaid_shape(g, n)}" for n in nodes]
        out.append("  end")
    edges = _sorted_edges(g)
    out += [f"  {ids[u]} {'-.->' if is_carry(g, u, v) else '-->'} {ids[v]}" for u, v in edges]
    out += _mermaid_classes(g, ids)
    carried = [str(i) for i, (u, v) in enumerate(edges) if is_carry(g, u, v)]
    if carried:
        out.append(f"  linkStyle {','.join(carried)} stroke:{CARRY_COLOUR}")
    return "\n".join(out) + "\n"


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


# --- SVG and PNG -----------------------------------------------------------------------------


def to_svg(g: nx.DiGraph) -> str:
    """SVG through Graphviz when ``dot`` is on PATH, else the pure-Python layered drawing."""
    dot = shutil.which("dot")
    if dot:
        return _run_dot(dot, g, "svg").decode("utf-8")
    return draw_svg.svg(_layout(g))


def png_bytes(g: nx.DiGraph) -> bytes:
    """PNG through Graphviz when ``dot`` is on PATH, else the same layout drawn by matplotlib."""
    dot = shutil.which("dot")
    if dot:
        return _run_dot(dot, g, "png")
    return draw_svg.png(_layout(g))


def to_png(g: nx.DiGraph, path: str | Path) -> None:
    """Writes ``g`` as a PNG image to ``path``."""
    Path(path).write_bytes(png_bytes(g))


def _layout(g: nx.DiGraph) -> draw_svg.Layout:
    return draw_svg.layout(g, statement_order(g), headline(g))


def _run_dot(dot: str, g: nx.DiGraph, fmt: str) -> bytes:
    """Pipes :func:`to_dot` through Graphviz; a failure here means our DOT is wrong."""
    result = subprocess.run(
        [dot, f"-T{fmt}"], input=to_dot(g).encode("utf-8"), capture_output=True, check=False
    )
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"internal error: `dot -T{fmt}` rejected the graph: {stderr}")
    return result.stdout
