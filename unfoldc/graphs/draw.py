"""Pictures of the iteration graph, SVG and PNG, drawn by libraries.

Graphviz ``dot`` draws the DOT text of :mod:`unfoldc.graphs.dot` when it is on PATH (install it
with ``apt install graphviz``, ``brew install graphviz`` or ``conda install graphviz``).
Otherwise :mod:`unfoldc.graphs.layout` places the graph with networkx and
:mod:`unfoldc.graphs.paint` draws it with matplotlib.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import networkx as nx

from unfoldc.graphs.dot import to_dot
from unfoldc.graphs.layout import Drawing, layout


def to_svg(g: nx.DiGraph) -> str:
    """SVG through Graphviz when ``dot`` is on PATH, else drawn by matplotlib."""
    dot = shutil.which("dot")
    if dot:
        return _run_dot(dot, g, "svg").decode("utf-8")
    return _paint(layout(g), "svg").decode("utf-8")


def png_bytes(g: nx.DiGraph) -> bytes:
    """PNG through Graphviz when ``dot`` is on PATH, else drawn by matplotlib."""
    dot = shutil.which("dot")
    if dot:
        return _run_dot(dot, g, "png")
    return _paint(layout(g), "png")


def to_png(g: nx.DiGraph, path: str | Path) -> None:
    """Writes ``g`` as a PNG image to ``path``."""
    Path(path).write_bytes(png_bytes(g))


def _run_dot(dot: str, g: nx.DiGraph, fmt: str) -> bytes:
    """Pipes :func:`to_dot` through Graphviz; a failure here means our DOT is wrong."""
    result = subprocess.run(
        [dot, f"-T{fmt}"], input=to_dot(g).encode("utf-8"), capture_output=True, check=False
    )
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"internal error: `dot -T{fmt}` rejected the graph: {stderr}")
    return result.stdout


def _paint(drawing: Drawing, fmt: str) -> bytes:
    # matplotlib takes seconds to import, and only pictures need it: `unfoldc graph` in the
    # text formats (and `compile`) must not pay for it, so it is imported here.
    from unfoldc.graphs.paint import save

    return save(drawing, fmt)
