"""Where every box and edge of the iteration graph goes, in points, for matplotlib to draw.

Placement comes from networkx and from the graph's own order, with no crossing minimisation and
no iterative placement of our own:

- rows: each phase group (each layer when unrolled) is a band, and the rows of a band are the
  topological generations of its data edges (``nx.topological_generations``), so every data
  edge points down;
- columns: each row holds its boxes in statement order, packed and centred; a data edge that
  skips rows runs down a thin wire slot in each row it skips, so no edge passes behind a box
  (where it would seem to start);
- carry edges leave the bottom of the state's box, run through the gap under its row to a lane
  right of every box, and come back through the gap above the reader's row. Boxes sit only in
  rows, so a carry crosses none: it is seen to leave the state it carries, whose name it bears.

One unit is one point (1/72 inch), so boxes are sized from their text: labels use DejaVu Sans
Mono (shipped with matplotlib), whose characters are all 0.602 em wide.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, replace

import networkx as nx

from unfoldc.graphs.order import (
    data_edges,
    group_title,
    groups,
    headline,
    sorted_edges,
    statement_order,
)
from unfoldc.graphs.style import PHASE_FILLS, carry_label, is_carry, subline

# Text, in points. DejaVu Sans Mono advances every character by 0.602 em.
FONT, SUB_FONT, TITLE_FONT, MONO = 9.0, 7.0, 12.0, "DejaVu Sans Mono"
_CHAR, LINE = 0.602, 1.3
_WRAP = 40  # longer labels wrap onto more lines instead of widening a whole row
# Geometry, in points.
_PAD_X, PAD_Y, _H_GAP, _ROW_GAP = 8.0, 5.0, 18.0, 42.0
_BAND_TOP, _BAND_BOTTOM, _BAND_GAP, MARGIN, TITLE_H, _LEGEND_H = 20.0, 8.0, 10.0, 16.0, 34.0, 30.0
_LANE_GAP, _CHANNEL_STEP, _WIRE_W = 12.0, 6.0, 2.0
CARRY_LEGEND = "carry (to the next layer)"
_LEGEND_KEY = 4.0 * SUB_FONT  # a legend entry's key, padding and spacing (see paint.py)
# The narrowest gap between two rows: the one between bands. Carry channels stay inside it.
_MIN_GAP = min(_ROW_GAP, _BAND_BOTTOM + _BAND_GAP + _BAND_TOP)


@dataclass(frozen=True)
class Box:
    """One node's box: centre x, top y (y grows downwards), size, and the text it shows."""

    node: str
    kind: str
    per_layer: bool
    x: float
    y: float
    w: float
    h: float
    lines: tuple[str, ...]
    sub: str

    @property
    def bottom(self) -> float:
        """The y of the box's lower edge."""
        return self.y + self.h


@dataclass(frozen=True)
class Band:
    """A phase group's background: its title, fill and vertical extent."""

    title: str
    fill: str
    top: float
    bottom: float


@dataclass(frozen=True)
class Route:
    """An edge's route, as the corner points of a polyline."""

    src: str
    dst: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Carry(Route):
    """A carry edge's route and the text naming the state it carries."""

    label: str


@dataclass(frozen=True)
class Drawing:
    """Everything matplotlib draws, in points; :func:`layout` builds it."""

    title: str
    width: float
    height: float
    boxes: dict[str, Box]
    bands: tuple[Band, ...]
    data: tuple[Route, ...]
    carries: tuple[Carry, ...]


# --- layout: rows from topological generations, wires through the rows an edge skips ---------


def layout(g: nx.DiGraph) -> Drawing:
    """Places every node and routes every edge; see the module docstring."""
    bands = _rows(g)
    rows = [row for _, band_rows in bands for row in band_rows]
    row_of = {n: i for i, row in enumerate(rows) for n in row}
    wires = _wires(g, row_of)
    sized = {n: _sized_box(g, n) for n in row_of}
    xs = _columns(g, rows, wires, sized)
    boxes, spans, band_boxes, bottom = _stack(g, bands, sized, xs)
    data = tuple(
        Route(u, v, _data_points(u, v, boxes, spans, row_of, xs))
        for u, v in sorted_edges(g)
        if not is_carry(g, u, v)
    )
    right = max((x + (sized[k].w / 2 if k in sized else _WIRE_W) for k, x in xs.items()),
                default=MARGIN)
    carries, lanes = _route_carries(g, boxes, right)
    drawing = Drawing(headline(g), 0.0, bottom + _LEGEND_H, boxes, band_boxes, data, carries)
    # the right ends of the boxes and lanes, the title and the legend, then a margin
    title = MARGIN + _text_width(drawing.title, TITLE_FONT)
    keys = MARGIN / 2 + sum(_text_width(key, SUB_FONT) + _LEGEND_KEY for key in legend(drawing))
    width = max(right + (lanes + 1) * _LANE_GAP, title, keys) + MARGIN
    return replace(drawing, width=width)


def _rows(g: nx.DiGraph) -> list[tuple[tuple, list[list[str]]]]:
    """Each phase group with its rows: the topological generations of its data edges."""
    data = data_edges(g)
    position = {n: i for i, n in enumerate(statement_order(g))}
    out = []
    for key, nodes in groups(g):
        try:
            generations = list(nx.topological_generations(data.subgraph(nodes)))
        except nx.NetworkXUnfeasible:  # a data cycle is a builder bug; still draw the graph
            generations = [[n] for n in nodes]
        out.append((key, [sorted(gen, key=position.__getitem__) for gen in generations]))
    return out


def _wires(g: nx.DiGraph, row_of: dict[str, int]) -> dict[int, set[str]]:
    """For each row, the nodes whose data edges pass it on the way to a lower row.

    Such an edge runs down a wire of its own in every row it skips, so it never passes
    behind a box (where it would seem to start). Edges from one node share its wire.
    """
    out: dict[int, set[str]] = {}
    for u, v in g.edges:
        if not is_carry(g, u, v):
            for r in range(row_of[u] + 1, row_of[v]):
                out.setdefault(r, set()).add(u)
    return out


def _sized_box(g: nx.DiGraph, n: str) -> Box:
    """A box at the origin, as wide and tall as its text needs."""
    d = g.nodes[n]
    lines = tuple(textwrap.wrap(str(d.get("label", n)), _WRAP, break_on_hyphens=False)) or ("",)
    sub = subline(d)
    text_w = max(max(map(len, lines)) * FONT, len(sub) * SUB_FONT) * _CHAR
    h = 2 * PAD_Y + LINE * (len(lines) * FONT + SUB_FONT)
    return Box(n, str(d.get("kind", "?")), bool(d.get("per_layer")), 0.0, 0.0,
               text_w + 2 * _PAD_X, h, lines, sub)


def _columns(g, rows, wires, sized) -> dict:
    """The x of every box centre (keyed by node) and wire (keyed by ``(node, row)``).

    Rows are placed top to bottom, each packed and centred on one axis: its boxes in statement
    order, and its wires at the end nearer to their source (already placed, being higher up),
    so that an edge skipping rows does not cut across the picture.
    """
    position = {n: i for i, n in enumerate(statement_order(g))}

    def width(item) -> float:
        return sized[item].w if isinstance(item, str) else _WIRE_W

    def total(r: int) -> float:
        return sum(sized[n].w for n in rows[r]) + _WIRE_W * len(wires.get(r, ())) + _H_GAP * (
            len(rows[r]) + len(wires.get(r, ())) - 1
        )

    centre = MARGIN + max(map(total, range(len(rows))), default=0.0) / 2
    xs: dict = {}
    for r, row in enumerate(rows):
        through = sorted(wires.get(r, ()), key=lambda u: (xs[u], position[u]))
        left = [(u, r) for u in through if xs[u] < centre]
        right = [(u, r) for u in through if xs[u] >= centre]
        x = centre - total(r) / 2
        for item in [*left, *sorted(row, key=position.__getitem__), *right]:
            xs[item] = x + width(item) / 2
            x += width(item) + _H_GAP
    return xs


def _stack(g, bands, sized, xs):
    """Stacks the bands top to bottom, each row as tall as its tallest box.

    Returns the placed boxes, each row's (top, bottom), the bands, and the bottom of the last.
    """
    boxes: dict[str, Box] = {}
    spans: list[tuple[float, float]] = []
    out = []
    y = TITLE_H
    for key, rows in bands:
        top = y
        y += _BAND_TOP
        for i, row in enumerate(rows):
            height = max(sized[n].h for n in row)
            for n in row:
                boxes[n] = replace(sized[n], x=xs[n], y=y + (height - sized[n].h) / 2)
            spans.append((y, y + height))
            y += height + (_ROW_GAP if i < len(rows) - 1 else 0.0)
        y += _BAND_BOTTOM
        out.append(Band(group_title(g, key), PHASE_FILLS.get(key[0], "#ffffff"), top, y))
        y += _BAND_GAP
    return boxes, spans, tuple(out), y


def _data_points(u, v, boxes, spans, row_of, xs) -> tuple[tuple[float, float], ...]:
    """From the bottom of ``u`` down its wire through every row it skips, to the top of ``v``."""
    points = [(boxes[u].x, boxes[u].bottom)]
    for r in range(row_of[u] + 1, row_of[v]):
        points += [(xs[u, r], spans[r][0]), (xs[u, r], spans[r][1])]
    return (*points, (boxes[v].x, boxes[v].y))


def legend(drawing: Drawing) -> list[str]:
    """The legend's entries: the node kinds drawn, ``data``, and the carry when there is one."""
    kinds = sorted({b.kind for b in drawing.boxes.values()})
    return [*kinds, "data", *([CARRY_LEGEND] if drawing.carries else [])]


def _text_width(text: str, size: float) -> float:
    return len(text) * size * _CHAR


# --- carry routes: down into the gap, right to a lane, through the gap above the reader -------


def _route_carries(g: nx.DiGraph, boxes: dict[str, Box], right: float):
    """Every carry's polyline, and how many lanes they need right of the boxes.

    A carry takes the first lane whose earlier carries span other heights, so lanes are
    reused down an unrolled graph; the lane index also sets how far into the gaps the route
    runs (closer together when there are many lanes, so that it stays inside the narrowest
    gap), so two carries never share a horizontal stretch.
    """
    carries = [(u, v) for u, v in sorted_edges(g) if is_carry(g, u, v)]
    entering: dict[str, list[str]] = {}
    for u, v in carries:
        entering.setdefault(v, []).append(u)
    spans: list[list[tuple[float, float]]] = []
    lanes = [_free_lane(spans, boxes[u], boxes[v]) for u, v in carries]
    step = min(_CHANNEL_STEP, _MIN_GAP / (len(spans) + 1))
    out = []
    for (u, v), lane in zip(carries, lanes):
        src, dst = boxes[u], boxes[v]
        below, above = src.bottom + step * (lane + 1), dst.y - step * (lane + 1)
        x_lane = right + _LANE_GAP * (lane + 1)
        x_out = src.x + src.w / 4
        j, m = entering[v].index(u), len(entering[v])
        x_in = dst.x + dst.w * (0.05 + 0.4 * (j + 1) / (m + 1))
        points = (
            (x_out, src.bottom), (x_out, below), (x_lane, below),
            (x_lane, above), (x_in, above), (x_in, dst.y),
        )
        out.append(Carry(u, v, points, carry_label(g, u)))
    return tuple(out), len(spans)


def _free_lane(lanes: list[list[tuple[float, float]]], src: Box, dst: Box) -> int:
    """The first lane none of whose spans meets this carry's span; a new lane if none."""
    lo, hi = min(src.y, dst.y), max(src.bottom, dst.bottom) + _ROW_GAP
    lo -= _ROW_GAP
    for i, spans in enumerate(lanes):
        if all(hi < a or b < lo for a, b in spans):
            spans.append((lo, hi))
            return i
    lanes.append([(lo, hi)])
    return len(lanes) - 1
