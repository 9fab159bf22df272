"""Writing generated Python: indented lines, and small text utilities the emitters share."""

from __future__ import annotations

import ast
import textwrap

from unfoldc.ir.types import Type


class Writer:
    """Lines with indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, text: str = "") -> None:
        self.lines.append(("    " * self.depth + text) if text else "")

    def indent(self) -> Writer:
        self.depth += 1
        return self

    def dedent(self) -> None:
        self.depth -= 1

    def text(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


def drop_unread(w: Writer, start: int, names: tuple[str, ...]) -> None:
    """Delete the assignments to `names`, one per line from `start` on, that nothing reads."""
    tree = ast.parse(textwrap.dedent("\n".join(w.lines[start:])))
    reads = {node.id for node in ast.walk(tree)
             if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    for index in reversed(range(len(names))):
        if names[index] not in reads:
            del w.lines[start + index]


def shape_tuple(t: Type, dim, batch: str | None = None) -> str:
    parts = ([batch] if batch else []) + [dim(d) for d in t.dims]
    if len(parts) == 1:
        return f"({parts[0]},)"
    return f"({', '.join(parts)})"


def batched_shape(t: Type) -> str:
    return "(" + ", ".join(["B"] + [str(d) for d in t.dims]) + ")"
