"""Pure-Python layered drawing of an iteration graph, for hosts without Graphviz.

A small Sugiyama-style pipeline, one function per step:

1. rank: longest-path layering of the DAG left after dropping the loop-carried edges that close
   the cycles of a rolled graph; sources are then pulled down to sit just above their first
   reader, so that given matrices do not all crowd the top row.
2. split: an edge spanning several ranks gets one dummy point per rank it crosses, so that it
   can bend around boxes and take part in ordering.
3. order: alternating downward and upward barycentre sweeps; the order with the fewest
   crossings wins.
4. place: each box moves towards the mean x of its neighbours, overlaps pushed apart.
5. route: polylines through the dummy points; carry edges that point upwards curve back up on
   the right of the boxes they pass.

The result is a :class:`Layout` of plain numbers that :func:`svg` writes as SVG text and
:func:`png` paints with matplotlib, so both pictures agree. Everything is deterministic: ties
are broken by the statement order the caller passes in, never by hashing.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from typing import NamedTuple
from xml.sax.saxutils import escape, quoteattr

import networkx as nx


class KindStyle(NamedTuple):
    """How every renderer draws one node kind."""

    fill: str
    stroke: str
    dot_shape: str
    dot_style: str
    mermaid: tuple[str, str]


# One table for every output format, so a new node kind touches one place.
KIND_STYLE: dict[str, KindStyle] = {
    "given": KindStyle("#dbe9f6", "#2c6aa0", "cylinder", "filled", ("[(", ")]")),
    "input": KindStyle("#d5f0dd", "#2e8b57", "parallelogram", "filled", ("[/", "/]")),
    "param": KindStyle("#eeeeee", "#666666", "box", "filled", ("[", "]")),
    "train": KindStyle("#fde2c8", "#d35400", "box3d", "filled", ("[[", "]]")),
    "net": KindStyle("#ead7f3", "#8e44ad", "component", "filled", ("[[", "]]")),
    "let": KindStyle("#f4f4dc", "#8a8a3c", "box", "filled,rounded", ("(", ")")),
    "state": KindStyle("#fff2b3", "#b7950b", "ellipse", "filled", ("([", "])")),
    "temp": KindStyle("#ffffff", "#888888", "box", "filled,rounded", ("(", ")")),
    "update": KindStyle("#ffd9d9", "#c0392b", "box", "filled,bold", ("{{", "}}")),
    "output": KindStyle("#cfe8cf", "#1e7b1e", "house", "filled", (">", "]")),
}
DEFAULT_STYLE = KindStyle("#ffffff", "#000000", "box", "filled", ("[", "]"))
CARRY_COLOUR = "#c0392b"
EDGE_COLOUR = "#555555"

# Geometry in pixels. Monospace text is about 0.6 em wide per character, which is what lets us
# size boxes to their labels without a font engine.
_FONT, _SUB_FONT, _TITLE_FONT = 12.0, 10.0, 15.0
_CHAR = 0.6
_PAD, _BOX_H, _HGAP, _VGAP, _MARGIN, _TOP = 10.0, 40.0, 24.0, 46.0, 20.0, 50.0
_DUMMY_W, _DUMMY_GAP, _BULGE, _BULGE_STEP = 4.0, 6.0, 28.0, 14.0


@dataclass(frozen=True)
class Box:
    """One node's box: top-left corner, size and the two lines of text it shows."""

    node: str
    kind: str
    label: str
    sub: str
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Route:
    """One edge: a polyline, or a cubic Bezier (start, control, control, end) when curved."""

    src: str
    dst: str
    carry: bool
    curved: bool
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Layout:
    """A finished drawing in pixel coordinates, y growing downwards."""

    title: str
    width: float
    height: float
    boxes: tuple[Box, ...]
    routes: tuple[Route, ...]
    legend: tuple[tuple[str, float, float], ...]


def style_of(kind: str) -> KindStyle:
    """Returns the drawing style of a node kind, a neutral one for unknown kinds."""
    return KIND_STYLE.get(kind, DEFAULT_STYLE)


def is_carry(g: nx.DiGraph, u: str, v: str) -> bool:
    """Whether edge ``u -> v`` is loop-carried."""
    return g.edges[u, v].get("kind") == "carry"


def subline(attrs: dict) -> str:
    """The small second line of a box: kind, phase, shape, spec line and flags."""
    parts = [attrs.get("kind", "?"), attrs.get("phase", "?"), attrs.get("shape") or ""]
    parts.append(f":{attrs['line']}" if attrs.get("line") else "")
    parts.append("hoisted" if attrs.get("hoisted") else "")
    parts.append("per-layer" if attrs.get("per_layer") else "")
    return " | ".join(p for p in parts if p)


# --- 1. rank ---------------------------------------------------------------------------------


def _ranking_dag(g: nx.DiGraph, order: list[str]) -> nx.DiGraph:
    """Data edges plus carry edges that run forward between unrolled layers.

    Forward carries are kept because in an unrolled graph they are the only links between
    layers; without them every layer would be drawn side by side on the same ranks.
    """
    dag = nx.DiGraph()
    dag.add_nodes_from(order)
    dag.add_edges_from((u, v) for u, v in _edges(g, order) if _ranks_edge(g, u, v))
    _break_cycles(dag)
    return dag


def _ranks_edge(g: nx.DiGraph, u: str, v: str) -> bool:
    if not is_carry(g, u, v):
        return True
    lu, lv = g.nodes[u].get("layer"), g.nodes[v].get("layer")
    return isinstance(lu, int) and isinstance(lv, int) and lu < lv


def _break_cycles(dag: nx.DiGraph) -> None:
    """Drops edges until acyclic; only a malformed graph has data cycles, but still draw it."""
    while True:
        try:
            cycle = nx.find_cycle(dag)
        except nx.NetworkXNoCycle:
            return
        dag.remove_edge(*cycle[-1][:2])


def _ranks(dag: nx.DiGraph, order: list[str]) -> dict[str, int]:
    position = {n: i for i, n in enumerate(order)}
    topo = list(nx.lexicographical_topological_sort(dag, key=position.__getitem__))
    rank: dict[str, int] = {}
    for n in topo:
        rank[n] = max((rank[p] + 1 for p in dag.predecessors(n)), default=0)
    for n in reversed(topo):
        if dag.in_degree(n) == 0 and dag.out_degree(n) > 0:
            rank[n] = min(rank[s] for s in dag.successors(n)) - 1
    used = sorted(set(rank.values()))
    return {n: used.index(r) for n, r in rank.items()}


# --- 2. split --------------------------------------------------------------------------------


def _split(dag, rank, order):
    """Returns rows of nodes and dummies, their neighbours, and each edge's chain of points."""
    rows: list[list] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    for n in order:
        rows[rank[n]].append(n)
    up, down, chains = defaultdict(list), defaultdict(list), {}
    for u, v in dag.edges:
        chain = [u, *((u, v, r) for r in range(rank[u] + 1, rank[v])), v]
        for r, dummy in enumerate(chain[1:-1], start=rank[u] + 1):
            rows[r].append(dummy)
        for a, b in pairwise(chain):
            down[a].append(b)
            up[b].append(a)
        chains[u, v] = chain
    return rows, up, down, chains


# --- 3. order --------------------------------------------------------------------------------


def _order(rows, up, down, sweeps: int = 8):
    best, best_crossings = rows, _crossings(rows, down)
    current = rows
    for i in range(sweeps):
        current = _sweep(current, down if i % 2 else up, upwards=bool(i % 2))
        crossings = _crossings(current, down)
        if crossings < best_crossings:
            best, best_crossings = current, crossings
    return best


def _sweep(rows, neighbours, upwards: bool):
    rows = [list(r) for r in rows]
    indices = range(len(rows) - 2, -1, -1) if upwards else range(1, len(rows))
    for r in indices:
        ref = rows[r + 1] if upwards else rows[r - 1]
        rows[r] = _by_barycentre(rows[r], ref, neighbours)
    return rows


def _by_barycentre(row, ref, neighbours):
    where = {n: i for i, n in enumerate(ref)}

    def key(item):
        index, n = item
        hits = [where[m] for m in neighbours[n] if m in where]
        # A node with no neighbour in the reference row keeps its place.
        return (sum(hits) / len(hits) if hits else index, index)

    return [n for _, n in sorted(enumerate(row), key=key)]


def _crossings(rows, down) -> int:
    total = 0
    for top, bottom in pairwise(rows):
        where = {n: i for i, n in enumerate(bottom)}
        ends = [(i, where[m]) for i, n in enumerate(top) for m in down[n] if m in where]
        total += sum(1 for a in ends for b in ends if a[0] < b[0] and a[1] > b[1])
    return total


# --- 4. place --------------------------------------------------------------------------------


def _place(rows, widths, up, down, iterations: int = 8) -> dict:
    """Returns each item's centre x."""
    centre = {}
    for row in rows:
        _pack(row, widths, centre, {n: 0.0 for n in row})
    for i in range(iterations):
        neighbours, sequence = (down, rows[::-1]) if i % 2 else (up, rows)
        for row in sequence:
            wanted = {n: _mean([centre[m] for m in neighbours[n]], centre[n]) for n in row}
            _pack(row, widths, centre, wanted)
    left = min((centre[n] - widths[n] / 2 for row in rows for n in row), default=0.0)
    return {n: x - left + _MARGIN for n, x in centre.items()}


def _pack(row, widths, centre, wanted) -> None:
    """Places a row left to right as near ``wanted`` as the gaps allow, then recentres it."""
    previous = None
    for n in row:
        x = wanted[n]
        if previous is not None:
            x = max(x, centre[previous] + (widths[previous] + widths[n]) / 2 + _gap(previous, n))
        centre[n], previous = x, n
    # Pushing only ever moves boxes right; shifting back by the mean error keeps rows centred.
    shift = _mean([wanted[n] - centre[n] for n in row], 0.0)
    for n in row:
        centre[n] += shift


def _gap(a, b) -> float:
    """Long edges passing side by side may run close together; boxes need room for text."""
    return _DUMMY_GAP if _is_dummy(a) and _is_dummy(b) else _HGAP


def _is_dummy(item) -> bool:
    return isinstance(item, tuple)  # node ids are strings; dummies are (u, v, rank)


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


# --- 5. route --------------------------------------------------------------------------------


def layout(g: nx.DiGraph, order: list[str], title: str) -> Layout:
    """Lays out an iteration graph.

    Args:
        g: The iteration graph.
        order: Every node once, in the order ties should be broken (statement order).
        title: Text drawn above the graph.

    Returns:
        The finished layout, in pixels.
    """
    dag = _ranking_dag(g, order)
    rank = _ranks(dag, order)
    rows, up, down, chains = _split(dag, rank, order)
    rows = _order(rows, up, down)
    widths = {n: _box_width(g.nodes[n]) if n in g else _DUMMY_W for row in rows for n in row}
    centre = _place(rows, widths, up, down)
    boxes = {n: _box(g, n, centre[n] - widths[n] / 2, _row_top(rank[n]), widths[n]) for n in g}
    routes = _routes(g, order, boxes, rank, chains, centre)
    return _frame(g, title, boxes, routes, len(rows))


def _box_width(attrs: dict) -> float:
    label = str(attrs.get("label", ""))
    return max(len(label) * _FONT, len(subline(attrs)) * _SUB_FONT) * _CHAR + 2 * _PAD


def _row_top(rank: int) -> float:
    return _TOP + rank * (_BOX_H + _VGAP)


def _box(g: nx.DiGraph, n: str, x: float, y: float, w: float) -> Box:
    attrs = g.nodes[n]
    label = str(attrs.get("label", n))
    return Box(n, attrs.get("kind", "?"), label, subline(attrs), x, y, w, _BOX_H)


def _routes(g, order, boxes, rank, chains, centre) -> list[Route]:
    vertical = {(u, v) for u, v in g.edges if (u, v) in chains or rank[v] > rank[u]}
    ports = _ports(order, boxes, vertical)
    routes, bulges = [], 0
    for u, v in _edges(g, order):
        start, end = ports[u, v]
        if (u, v) in chains:
            middle = [p for d in chains[u, v][1:-1] for p in _through(centre[d], d[2])]
            routes.append(Route(u, v, is_carry(g, u, v), False, (start, *middle, end)))
        elif rank[v] > rank[u]:
            routes.append(Route(u, v, is_carry(g, u, v), False, (start, end)))
        else:
            routes.append(_back(g, u, v, boxes, rank, bulges))
            bulges += 1
    return routes


def _through(x: float, rank: int) -> list[tuple[float, float]]:
    """A dummy point is a vertical run across its row, so long edges clear the boxes."""
    top = _row_top(rank)
    return [(x, top), (x, top + _BOX_H)]


def _ports(order, boxes, vertical) -> dict:
    """Spreads each box's in-edges over its top side and out-edges over its bottom side."""
    ports: dict = defaultdict(lambda: [None, None])
    for n in order:
        box = boxes[n]
        ins = sorted((u for u, v in vertical if v == n), key=lambda m: (boxes[m].x, m))
        outs = sorted((v for u, v in vertical if u == n), key=lambda m: (boxes[m].x, m))
        for i, m in enumerate(ins):
            ports[m, n][1] = (box.x + box.w * (i + 1) / (len(ins) + 1), box.y)
        for i, m in enumerate(outs):
            ports[n, m][0] = (box.x + box.w * (i + 1) / (len(outs) + 1), box.y + box.h)
    return ports


def _back(g, u, v, boxes, rank, index: int) -> Route:
    """A carry edge pointing up (or to itself) curves around the right of the rows it spans."""
    a, b = boxes[u], boxes[v]
    lo, hi = sorted((rank[u], rank[v]))
    right = max(box.x + box.w for n, box in boxes.items() if lo <= rank[n] <= hi)
    bulge = right + _BULGE + _BULGE_STEP * index
    # A self-loop gets a wider mouth so its arrowhead stays clear of its own tail.
    gap = 12 if u == v else 6
    start, end = (a.x + a.w, a.y + a.h / 2 + gap), (b.x + b.w, b.y + b.h / 2 - gap)
    return Route(u, v, is_carry(g, u, v), True, (start, (bulge, start[1]), (bulge, end[1]), end))


def _frame(g, title, boxes, routes, nrows) -> Layout:
    """Sizes the canvas to fit boxes, curves, title and a legend row below the graph."""
    legend_y = _row_top(nrows) - _VGAP / 2
    legend, x = [], _MARGIN
    for kind in [*sorted({b.kind for b in boxes.values()}), "carry"]:
        legend.append((kind, x, legend_y))
        x += (len(kind) * _SUB_FONT * _CHAR) + 40
    extents = [x, len(title) * _TITLE_FONT * _CHAR + _MARGIN]
    extents += [b.x + b.w for b in boxes.values()]
    extents += [p[0] for r in routes for p in r.points]
    ordered = tuple(boxes[n] for n in sorted(boxes))
    return Layout(
        title, max(extents) + _MARGIN, legend_y + 30, ordered, tuple(routes), tuple(legend)
    )


def _edges(g: nx.DiGraph, order: list[str]) -> list[tuple[str, str]]:
    position = {n: i for i, n in enumerate(order)}
    return sorted(g.edges, key=lambda e: (position[e[0]], position[e[1]]))


# --- SVG -------------------------------------------------------------------------------------


def svg(lay: Layout) -> str:
    """Writes a layout as a standalone SVG document."""
    parts = [_svg_header(lay), _svg_text(_MARGIN, 28, lay.title, _TITLE_FONT, bold=True)]
    parts += [_svg_route(r) for r in lay.routes]
    parts += [_svg_box(b) for b in lay.boxes]
    parts += [_svg_legend(kind, x, y) for kind, x, y in lay.legend]
    return "\n".join([*parts, "</svg>", ""])


def _svg_header(lay: Layout) -> str:
    w, h = _f(lay.width), _f(lay.height)
    marker = (
        '<marker id="arrow-{0}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{1}"/></marker>'
    )
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" font-family="monospace">',
            "<defs>",
            marker.format("data", EDGE_COLOUR),
            marker.format("carry", CARRY_COLOUR),
            "</defs>",
            f'<rect class="background" width="{w}" height="{h}" fill="#ffffff"/>',
        ]
    )


def _svg_route(r: Route) -> str:
    head, *rest = r.points
    verb = "C" if r.curved else "L"
    d = f"M{_p(head)} {verb}" + " ".join(_p(p) for p in rest)
    kind = "carry" if r.carry else "data"
    colour = CARRY_COLOUR if r.carry else EDGE_COLOUR
    dash = ' stroke-dasharray="6 4"' if r.carry else ""
    return (
        f'<path class="edge {kind}" d="{d}" fill="none" stroke="{colour}" stroke-width="1.3"'
        f'{dash} marker-end="url(#arrow-{kind})"><title>{escape(f"{r.src} -> {r.dst}")}'
        "</title></path>"
    )


def _svg_box(b: Box) -> str:
    style = style_of(b.kind)
    cx = b.x + b.w / 2
    return "\n".join(
        [
            f"<g class={quoteattr('node ' + b.kind)}><title>{escape(b.node)}</title>",
            f'<rect class="node" x="{_f(b.x)}" y="{_f(b.y)}" width="{_f(b.w)}" '
            f'height="{_f(b.h)}" rx="6" fill="{style.fill}" stroke="{style.stroke}" '
            f'stroke-width="{2.2 if b.kind == "update" else 1.2}"/>',
            _svg_text(cx, b.y + 17, b.label, _FONT, anchor="middle"),
            _svg_text(cx, b.y + 32, b.sub, _SUB_FONT, anchor="middle", fill="#555555"),
            "</g>",
        ]
    )


def _svg_legend(kind: str, x: float, y: float) -> str:
    label = _svg_text(x + 22, y + 11, kind, _SUB_FONT)
    if kind == "carry":
        line = (
            f'<path d="M{_f(x)},{_f(y + 7)} L{_f(x + 16)},{_f(y + 7)}" '
            f'stroke="{CARRY_COLOUR}" stroke-dasharray="4 3" stroke-width="1.3"/>'
        )
        return f'<g class="legend">{line}{label}</g>'
    s = style_of(kind)
    swatch = (
        f'<rect class="legend" x="{_f(x)}" y="{_f(y)}" width="14" height="14" rx="3" '
        f'fill="{s.fill}" stroke="{s.stroke}"/>'
    )
    return f'<g class="legend">{swatch}{label}</g>'


def _svg_text(x, y, text, size, anchor="start", fill="#000000", bold=False) -> str:
    weight = ' font-weight="bold"' if bold else ""
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" font-size="{_f(size)}" text-anchor="{anchor}" '
        f'fill="{fill}"{weight} xml:space="preserve">{escape(text)}</text>'
    )


def _f(v: float) -> str:
    return f"{v:.1f}"


def _p(point: tuple[float, float]) -> str:
    return f"{_f(point[0])},{_f(point[1])}"


# --- PNG -------------------------------------------------------------------------------------


def png(lay: Layout, dpi: int = 150) -> bytes:
    """Paints a layout with matplotlib's Agg canvas and returns PNG bytes.

    A bare ``Figure`` with its own Agg canvas is used instead of pyplot so that the caller's
    matplotlib backend and global figure list are left alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(lay.width / 100, lay.height / 100), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, lay.width)
    ax.set_ylim(lay.height, 0)
    ax.axis("off")
    ax.text(
        _MARGIN,
        28,
        lay.title,
        fontsize=_pt(_TITLE_FONT),
        weight="bold",
        va="baseline",
        family="monospace",
    )
    for r in lay.routes:
        _mpl_route(ax, r)
    for b in lay.boxes:
        _mpl_box(ax, b)
    for kind, x, y in lay.legend:
        _mpl_legend(ax, kind, x, y)
    buffer = io.BytesIO()
    # No "Software" entry: it names the matplotlib version and would make bytes vary by host.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _pt(px: float) -> float:
    """Pixels (1/100 inch in this figure) to points."""
    return px * 0.72


def _mpl_route(ax, r: Route) -> None:
    from matplotlib.patches import FancyArrowPatch, PathPatch
    from matplotlib.path import Path

    colour = CARRY_COLOUR if r.carry else EDGE_COLOUR
    codes = [Path.MOVETO] + [Path.CURVE4 if r.curved else Path.LINETO] * (len(r.points) - 1)
    line = Path(r.points, codes)
    ax.add_patch(PathPatch(line, fill=False, ec=colour, lw=1.0, ls="--" if r.carry else "-"))
    # The head is drawn solid on its own so a dashed line never leaves it half painted.
    (x0, y0), (x1, y1) = r.points[-2], r.points[-1]
    scale = max(abs(x1 - x0), abs(y1 - y0), 1e-9)
    tail = (x1 - (x1 - x0) / scale, y1 - (y1 - y0) / scale)
    ax.add_patch(
        FancyArrowPatch(
            tail,
            (x1, y1),
            arrowstyle="-|>",
            mutation_scale=9,
            color=colour,
            lw=1.0,
            shrinkA=0,
            shrinkB=0,
        )
    )


def _mpl_box(ax, b: Box) -> None:
    from matplotlib.patches import FancyBboxPatch

    style = style_of(b.kind)
    ax.add_patch(
        FancyBboxPatch(
            (b.x, b.y),
            b.w,
            b.h,
            boxstyle="round,pad=0,rounding_size=6",
            fc=style.fill,
            ec=style.stroke,
            lw=1.6 if b.kind == "update" else 0.9,
        )
    )
    cx = b.x + b.w / 2
    ax.text(
        cx, b.y + 17, b.label, fontsize=_pt(_FONT), ha="center", va="baseline", family="monospace"
    )
    ax.text(
        cx,
        b.y + 32,
        b.sub,
        fontsize=_pt(_SUB_FONT),
        ha="center",
        va="baseline",
        family="monospace",
        color="#555555",
    )


def _mpl_legend(ax, kind: str, x: float, y: float) -> None:
    from matplotlib.patches import FancyBboxPatch

    if kind == "carry":
        ax.plot([x, x + 16], [y + 7, y + 7], ls="--", color=CARRY_COLOUR, lw=1.0)
    else:
        s = style_of(kind)
        ax.add_patch(
            FancyBboxPatch(
                (x, y),
                14,
                14,
                boxstyle="round,pad=0,rounding_size=3",
                fc=s.fill,
                ec=s.stroke,
                lw=0.9,
            )
        )
    ax.text(x + 22, y + 11, kind, fontsize=_pt(_SUB_FONT), va="baseline", family="monospace")
