"""Paints a :class:`~unfoldc.graphs.layout.Drawing` with matplotlib, as SVG or PNG.

The figure is as large as the drawing, one unit a point, and needs no pyplot state. The SVG keeps
its text as text and is byte-for-byte deterministic: a fixed ``svg.hashsalt``, no date.
"""

from __future__ import annotations

import io

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from matplotlib.path import Path as MplPath

from unfoldc.graphs.layout import (
    CARRY_LEGEND,
    FONT,
    LINE,
    MARGIN,
    MONO,
    PAD_Y,
    SUB_FONT,
    TITLE_FONT,
    TITLE_H,
    Band,
    Box,
    Carry,
    Drawing,
    Route,
    legend,
)
from unfoldc.graphs.style import CARRY_COLOUR, EDGE_COLOUR, style_of


def save(drawing: Drawing, fmt: str) -> bytes:
    """Draws ``drawing`` (see :func:`figure`) and saves it as ``fmt`` (``svg`` or ``png``)."""
    fig = figure(drawing)
    buffer = io.BytesIO()
    # A fixed salt and no date make the SVG ids and metadata the same on every run; the text
    # stays text (fonttype none), so the labels can be searched and read in the file.
    with matplotlib.rc_context({"svg.hashsalt": "unfoldc", "svg.fonttype": "none"}):
        if fmt == "svg":
            fig.savefig(buffer, format="svg", metadata={"Date": None})
        else:
            fig.savefig(buffer, format="png", dpi=150, metadata={"Software": None})
    return buffer.getvalue()


def figure(drawing: Drawing) -> Figure:
    """A figure of the drawing's size, one unit a point, with everything drawn on it."""
    fig = Figure(figsize=(drawing.width / 72, drawing.height / 72))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, drawing.width)
    ax.set_ylim(drawing.height, 0)  # y grows downwards, as in the layout
    ax.axis("off")
    _draw(ax, drawing)
    return fig


def _draw(ax, drawing: Drawing) -> None:
    ax.text(MARGIN, TITLE_H / 2, drawing.title, fontsize=TITLE_FONT, fontweight="bold",
            va="center", family=MONO, parse_math=False)
    for band in drawing.bands:
        _draw_band(ax, band, drawing.width)
    for route in drawing.data:
        _draw_data(ax, route)
    labelled = set()
    for carry in drawing.carries:
        _draw_carry(ax, carry, first=carry.src not in labelled)
        labelled.add(carry.src)
    for box in drawing.boxes.values():
        _draw_box(ax, box)
    _draw_legend(ax, drawing)


def _draw_band(ax, band: Band, width: float) -> None:
    ax.add_patch(FancyBboxPatch(
        (MARGIN / 2, band.top), width - MARGIN, band.bottom - band.top,
        boxstyle="round,pad=0,rounding_size=6", facecolor=band.fill, edgecolor="#bbbbbb",
        linewidth=0.8, zorder=0,
    ))
    ax.text(MARGIN / 2 + 6, band.top + 4, band.title, fontsize=SUB_FONT + 1, color="#444444",
            va="top", family=MONO, parse_math=False, zorder=0.5)


def _draw_data(ax, route: Route) -> None:
    ax.add_patch(FancyArrowPatch(
        path=MplPath(route.points), arrowstyle="-|>", mutation_scale=8, color=EDGE_COLOUR,
        linewidth=0.8, zorder=1,
    ))


def _draw_carry(ax, carry: Carry, first: bool) -> None:
    """A dashed polyline in the carry colour with a solid head; the state's name by its tail."""
    ax.add_patch(FancyArrowPatch(
        path=MplPath(carry.points), arrowstyle="-|>", mutation_scale=8, color=CARRY_COLOUR,
        linewidth=1.0, linestyle=(0, (4, 2)), zorder=3,
    ))
    if first:  # left of the tail, as the route turns right; over other carries' channels
        x, y = carry.points[0]
        ax.text(x - 3, y + 2, carry.label, fontsize=SUB_FONT, color=CARRY_COLOUR, ha="right",
                va="top", family=MONO, parse_math=False, zorder=5,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 0.6})


def _draw_box(ax, box: Box) -> None:
    style = style_of(box.kind)
    left = box.x - box.w / 2
    patch = dict(facecolor=style.fill, edgecolor=style.stroke, zorder=4,
                 linewidth=1.6 if box.kind == "update" else 0.9)
    if box.per_layer:  # a second outline, as Graphviz draws peripheries=2
        ax.add_patch(FancyBboxPatch((left - 2.5, box.y - 2.5), box.w + 5, box.h + 5,
                                    boxstyle=_boxstyle(style.box), **patch))
    ax.add_patch(FancyBboxPatch((left, box.y), box.w, box.h, boxstyle=_boxstyle(style.box),
                                **patch))
    y = box.y + PAD_Y + LINE * FONT / 2
    for line in box.lines:
        ax.text(box.x, y, line, fontsize=FONT, ha="center", va="center", family=MONO,
                parse_math=False, zorder=5)
        y += LINE * FONT
    ax.text(box.x, y - LINE * (FONT - SUB_FONT) / 2, box.sub, fontsize=SUB_FONT,
            color="#555555", ha="center", va="center", family=MONO, parse_math=False, zorder=5)


def _boxstyle(name: str) -> str:
    return "round,pad=0,rounding_size=6" if name == "round" else "square,pad=0"


def _draw_legend(ax, drawing: Drawing) -> None:
    """matplotlib's legend in one row under the bands; layout left room for it."""
    handles = []
    for label in legend(drawing):
        if label == "data":
            handles.append(Line2D([], [], color=EDGE_COLOUR, linewidth=0.8, label=label))
        elif label == CARRY_LEGEND:
            handles.append(Line2D([], [], color=CARRY_COLOUR, linestyle=(0, (4, 2)), label=label))
        else:
            style = style_of(label)
            handles.append(Patch(facecolor=style.fill, edgecolor=style.stroke, label=label))
    # handlelength + handletextpad + columnspacing = 1.6 + 0.8 + 1.2 em: layout's _LEGEND_KEY
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(MARGIN / 2, drawing.height),
              bbox_transform=ax.transData, ncol=len(handles), frameon=False,
              prop={"family": MONO, "size": SUB_FONT}, handlelength=1.6, handletextpad=0.8,
              columnspacing=1.2)
