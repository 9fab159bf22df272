"""The math IR's expressions: immutable trees of `Sym`, `Const` and `Op`.

    Expr := Sym(name, type, role) | Const(value) | Op(op, args, type)

`op` is a key of the operator table (unfoldc/ops.py), which gives each operator its arity,
shape rule, sympy form and torch rendering; `to_sympy` (ir/sympy_bridge.py) turns any expression
into sympy for calculus and conditions. Nodes hash structurally, which common-subexpression
elimination relies on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from unfoldc.ir.types import SCALAR, DimSum, Type

# Roles a symbol can have. `temp` is a temporary of the layer body, `hoisted` a loop-invariant
# value computed before the loop, `dim` a dimension used as a number (e.g. `eye(n)`).
ROLES = ("given", "input", "state", "let", "param", "train", "temp", "hoisted", "dim")


@dataclass(frozen=True)
class Sym:
    name: str
    type: Type
    role: str
    per_layer: bool = False
    symmetric: bool = False  # known symmetric matrix (e.g. a hoisted Gram matrix H.T @ H)


@dataclass(frozen=True)
class Const:
    value: float
    type: Type = field(default=SCALAR)


@dataclass(frozen=True)
class Op:
    op: str
    args: tuple[Expr, ...]
    type: Type


Expr = Sym | Const | Op


def dim_value(d) -> Expr:
    """A dimension as a scalar expression, e.g. the argument of `eye`: `n`, `3`, `n - 1`."""
    if isinstance(d, int):
        return Const(float(d))
    if not isinstance(d, DimSum):
        return Sym(d, SCALAR, "dim")
    e: Expr = Sym(d.name, SCALAR, "dim")
    if d.scale != 1:
        e = Op("mul", (Const(float(d.scale)), e), SCALAR)
    if d.offset:
        e = Op("add" if d.offset > 0 else "sub", (e, Const(float(abs(d.offset)))), SCALAR)
    return e


def children(e: Expr) -> tuple[Expr, ...]:
    """Direct operands of `e`."""
    return e.args if isinstance(e, Op) else ()


def walk(e: Expr) -> Iterator[Expr]:
    """All nodes of `e`, parents before children."""
    yield e
    for c in children(e):
        yield from walk(c)


def symbols(e: Expr) -> set[Sym]:
    """The symbols `e` reads."""
    return {n for n in walk(e) if isinstance(n, Sym)}


def rebuild(e: Expr, fn: Callable[[Expr], Expr]) -> Expr:
    """Apply `fn` bottom-up: children first, then the node rebuilt from the new children."""
    if isinstance(e, Op):
        e = Op(e.op, tuple(rebuild(a, fn) for a in e.args), e.type)
    return fn(e)


def substitute(e: Expr, mapping: dict[Expr, Expr]) -> Expr:
    """Replace whole subtrees found in `mapping` (top-down: the largest match wins)."""
    if e in mapping:
        return mapping[e]
    if isinstance(e, Op):
        return Op(e.op, tuple(substitute(a, mapping) for a in e.args), e.type)
    return e


def is_symmetric(e: Expr) -> bool:
    """Structurally symmetric: `A.T @ A`, `A @ A.T`, `I`, and sums and scalings of those."""
    if isinstance(e, Sym):
        return e.symmetric
    if not isinstance(e, Op) or e.type.kind != "matrix":
        return False
    if e.op == "eye":
        return True
    if e.op == "matmul":
        a, b = e.args
        return (_is_t(a) and a.args[0] == b) or (_is_t(b) and b.args[0] == a)
    if e.op in ("add", "sub"):
        return all(is_symmetric(a) for a in e.args)
    if e.op in ("mul", "div", "neg"):
        return all(is_symmetric(a) or a.type.kind == "scalar" for a in e.args)
    return False


def _is_t(e: Expr) -> bool:
    return isinstance(e, Op) and e.op == "transpose"


def size(e: Expr) -> int:
    """Number of nodes: a cheap proxy for how much work an expression is."""
    return sum(1 for _ in walk(e))
