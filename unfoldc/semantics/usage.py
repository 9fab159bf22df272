"""Warning W0002: values that are computed but never read.

A `let`, `param` or `train` that nothing reads, or a temporary of the layer body that no later
statement reads, is almost always a typo or a leftover. The walk is generic over the AST's
dataclasses, so new node kinds are covered without changes here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from unfoldc.diagnostics import Diagnostic
from unfoldc.syntax import nodes

_WARNED_ROLES = ("let", "param", "train")


def _names(node: object) -> Iterator[str]:
    """Every identifier read inside `node` (names and called functions)."""
    if isinstance(node, nodes.Name):
        yield node.id
    elif isinstance(node, nodes.Call):
        yield node.func
    if dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            yield from _names(getattr(node, f.name))
    elif isinstance(node, (tuple, list)):
        for item in node:
            yield from _names(item)


def unused_values(spec: nodes.Spec) -> list[Diagnostic]:
    """W0002 for declared values and body temporaries that are never read."""
    read = set(_names(spec))
    diags = [
        Diagnostic("W0002", f"`{d.name}` is never used", d.name_span, f"this {d.role}",
                   help=f"remove it, or prefix the name with `_` to keep it: `_{d.name}`")
        for d in spec.decls if d.role in _WARNED_ROLES and d.name not in read
        and not d.name.startswith("_")
    ]
    read_later: set[str] = set()  # names read by the statements after the current one
    unused = []
    for stmt in reversed(spec.body):  # one pass: linear in the body's size
        if stmt.kind == "assign" and not stmt.target.startswith("_") \
                and stmt.target not in read_later:
            unused.append(Diagnostic(
                "W0002", f"temporary `{stmt.target}` is never used", stmt.target_span,
                "assigned here", help="remove the statement, or use the value in a later one"))
        read_later |= set(_names(stmt))
    return diags + unused[::-1]
