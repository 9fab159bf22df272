"""How every format draws the iteration graph: one style per node kind, the carry colour.

A new node kind touches one place: its :class:`KindStyle` entry here.
"""

from __future__ import annotations

from typing import NamedTuple

import networkx as nx


class KindStyle(NamedTuple):
    """How every renderer draws one node kind.

    ``box`` is a matplotlib ``BboxStyle`` name: rounded boxes for values computed from others,
    square ones for what the user declares.
    """

    fill: str
    stroke: str
    dot_shape: str
    dot_style: str
    mermaid: tuple[str, str]
    box: str


KIND_STYLE: dict[str, KindStyle] = {
    "given": KindStyle("#dbe9f6", "#2c6aa0", "cylinder", "filled", ("[(", ")]"), "square"),
    "input": KindStyle("#d5f0dd", "#2e8b57", "parallelogram", "filled", ("[/", "/]"), "square"),
    "param": KindStyle("#eeeeee", "#666666", "box", "filled", ("[", "]"), "square"),
    "train": KindStyle("#fde2c8", "#d35400", "box3d", "filled", ("[[", "]]"), "square"),
    "net": KindStyle("#ead7f3", "#8e44ad", "component", "filled", ("[[", "]]"), "square"),
    "let": KindStyle("#f4f4dc", "#8a8a3c", "box", "filled,rounded", ("(", ")"), "round"),
    "state": KindStyle("#fff2b3", "#b7950b", "ellipse", "filled", ("([", "])"), "round"),
    "temp": KindStyle("#ffffff", "#888888", "box", "filled,rounded", ("(", ")"), "round"),
    "update": KindStyle("#ffd9d9", "#c0392b", "box", "filled,bold", ("{{", "}}"), "square"),
    "output": KindStyle("#cfe8cf", "#1e7b1e", "house", "filled", (">", "]"), "round"),
}
DEFAULT_STYLE = KindStyle("#ffffff", "#000000", "box", "filled", ("[", "]"), "square")
CARRY_COLOUR = "#c0392b"
EDGE_COLOUR = "#555555"
PHASE_FILLS = {
    "setup": "#f3f6fa",
    "prologue": "#f3faf5",
    "layer": "#fdf6f0",
    "epilogue": "#f5f5f5",
}


def style_of(kind: str) -> KindStyle:
    """Returns the drawing style of a node kind, a neutral one for unknown kinds."""
    return KIND_STYLE.get(kind, DEFAULT_STYLE)


def is_carry(g: nx.DiGraph, u: str, v: str) -> bool:
    """Whether edge ``u -> v`` is loop-carried."""
    return g.edges[u, v].get("kind") == "carry"


def carried_name(g: nx.DiGraph, u: str) -> str:
    """The state a carry edge leaving ``u`` hands to the next layer.

    ``u`` is the state's last update (label ``z <- ...``), so the name is the label's first word.
    """
    label = str(g.nodes[u].get("label", u))
    return label.split(" ", 1)[0] or str(u)


def carry_label(g: nx.DiGraph, u: str) -> str:
    """The text every format writes on a carry edge, naming the state it carries."""
    return f"carry {carried_name(g, u)}"


def subline(attrs: dict) -> str:
    """The small second line of a box: kind, phase, shape, spec line and flags."""
    parts = [attrs.get("kind", "?"), attrs.get("phase", "?"), attrs.get("shape") or ""]
    parts.append(f":{attrs['line']}" if attrs.get("line") else "")
    parts.append("hoisted" if attrs.get("hoisted") else "")
    parts.append("per-layer" if attrs.get("per_layer") else "")
    return " | ".join(p for p in parts if p)
