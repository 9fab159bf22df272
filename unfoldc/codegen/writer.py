"""Writing generated Python: indented lines, and small text utilities the emitters share."""

from __future__ import annotations

from collections.abc import Callable

from unfoldc.ir.types import Type

COLUMNS = 100  # generated files stay within 100 columns


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


def shape_parts(t: Type, dim: Callable, batch: str | None = None) -> list[str]:
    """The entries of `t`'s shape as code: `batch` (if given), then each dimension by `dim`."""
    return ([batch] if batch else []) + [dim(d) for d in t.dims]


def shape_tuple(t: Type, dim: Callable, batch: str | None = None) -> str:
    """`t`'s shape as a tuple display: `(B, n)`, `(n,)`."""
    parts = shape_parts(t, dim, batch)
    if len(parts) == 1:
        return f"({parts[0]},)"
    return f"({', '.join(parts)})"


def batched_shape(t: Type) -> str:
    return "(" + ", ".join(["B"] + [str(d) for d in t.dims]) + ")"


def def_lines(w: Writer, name: str, args: list[str]) -> None:
    """`def name(args):`, its arguments wrapped under the first one beyond COLUMNS."""
    head = f"def {name}("
    lines, pad = [head], " " * (4 * w.depth + len(head))
    for i, arg in enumerate(args):
        piece = arg + ("," if i < len(args) - 1 else "):")
        if len(pad) + len(lines[-1]) - len(head) + len(piece) + 1 > COLUMNS and i:
            lines.append("")
        lines[-1] += (" " if lines[-1] not in (head, "") else "") + piece
    w(lines[0])
    for line in lines[1:]:
        w(" " * len(head) + line)


def call_lines(w: Writer, head: str, args: list[str], *, trailing: str = "") -> None:
    """`head(args)trailing` on one line, or beyond COLUMNS `head(`, one argument a line (with
    its comma), `)trailing`."""
    line = f"{head}({', '.join(args)}){trailing}"
    if 4 * w.depth + len(line) <= COLUMNS:
        w(line)
        return
    w(f"{head}(")
    for arg in args:
        w(f"    {arg},")
    w(f"){trailing}")
