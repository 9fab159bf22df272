"""Symbolic gradients of IR expressions, by sympy matrix calculus.

`gradient(f, v)` returns the IR of the gradient of the scalar expression `f` with respect to the
symbol `v`, term by term: each additive term is translated to sympy (vectors as n x 1 matrix
symbols, `sqnorm(y)` as `y.T y`, `dot(a, b)` as `a.T b`), differentiated with `sympy.diff`, and
translated back. sympy's matrix calculus has no Hadamard (elementwise) products, so a term it
rejects goes through a small rule-based reverse mode over the IR (`_vjp`). Terms neither can
differentiate (norms, elementwise nonlinearities, learned sub-networks) are returned separately
so the caller can fall back to autograd for them only.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from unfoldc.ir.expr import Const, Expr, Op, Sym, symbols
from unfoldc.ir.fold import mul, node
from unfoldc.ir.sympy_bridge import Policy, Unsupported, from_sympy, to_sympy
from unfoldc.ops import adjoint_of


@dataclass(frozen=True)
class Gradient:
    derived: Expr | None  # the symbolic part (None: no term could be derived)
    fallback: tuple[Expr, ...]  # terms left to autograd


# What sympy's matrix calculus differentiates here: the table's sympy forms of these operators,
# vectors as n x 1 matrix symbols. Anything else (norms, elementwise nonlinearities, learned
# sub-networks, and Hadamard products, whose forms have no closed form) is rejected: the term
# goes to the rule-based reverse mode below, then to autograd.
MATRIX_CALCULUS = Policy(
    ops=frozenset({"add", "sub", "neg", "mul", "div", "matmul", "transpose", "sqnorm", "dot",
                   "pow"}),
    arrays="matrix", other="reject")


def additive_terms(e: Expr) -> list[tuple[int, Expr]]:
    """(sign, term) pairs of a top-level sum `a + b - c ...`."""
    if isinstance(e, Op) and e.op in ("add", "sub"):
        left = additive_terms(e.args[0])
        right = additive_terms(e.args[1])
        if e.op == "sub":
            right = [(-s, t) for s, t in right]
        return left + right
    if isinstance(e, Op) and e.op == "neg":
        return [(-s, t) for s, t in additive_terms(e.args[0])]
    return [(1, e)]


def _derive(term: Expr, v: Sym) -> Expr:
    table: dict = {}
    fx = to_sympy(term, MATRIX_CALCULUS, table)
    var = to_sympy(v, MATRIX_CALCULUS, table)
    g = sympy.diff(fx, var)
    if getattr(g, "is_Matrix", False) and g.shape == (1, 1) and v.type.kind == "scalar":
        g = g[0, 0]
    return from_sympy(g, table)


# ---- rule-based reverse mode, for what sympy's matrix calculus cannot do (Hadamard products) --
def _c(x: float) -> Const:
    return Const(float(x))


def _vjp(e: Expr, adj: Expr, v: Sym) -> Expr | None:
    """Contribution of `e` (with upstream adjoint `adj`, shaped like e) to d/dv; None if none."""
    if v not in symbols(e):
        return None
    if e == v:
        return adj
    if not isinstance(e, Op):
        raise Unsupported("symbol")
    a = e.args
    match e.op:
        case "add" | "sub":
            left = _vjp(a[0], _unbroadcast(adj, a[0]), v)
            right = _vjp(a[1], _unbroadcast(adj, a[1]), v)
            if right is not None and e.op == "sub":
                right = node("neg", right)
            return _plus(left, right)
        case "neg":
            inner = _vjp(a[0], adj, v)
            return None if inner is None else node("neg", inner)
        case "mul":
            return _plus(_vjp(a[0], _unbroadcast(mul(adj, a[1]), a[0]), v),
                         _vjp(a[1], _unbroadcast(mul(adj, a[0]), a[1]), v))
        case "div" if v not in symbols(a[1]):
            return _vjp(a[0], _unbroadcast(node("div", adj, a[1]), a[0]), v)
        case "matmul" if v not in symbols(a[0]) and a[0].type.kind == "matrix" \
                and a[1].type.kind == "vector":
            back = node("matmul", node("transpose", a[0]), adj)
            return _vjp(a[1], back, v)
        case "transpose":
            return _vjp(a[0], node("transpose", adj), v)
        case "sqnorm":
            return _vjp(a[0], mul(mul(_c(2), adj), a[0]), v)
        case "dot":
            return _plus(_vjp(a[0], mul(adj, a[1]), v), _vjp(a[1], mul(adj, a[0]), v))
        case op if adjoint_of(op) is not None:  # a fixed linear map: back through its adjoint
            name, sign = adjoint_of(op)
            back = node(name, adj)
            return _vjp(a[0], back if sign > 0 else node("neg", back), v)
    raise Unsupported(e.op)


def _unbroadcast(adj: Expr, target: Expr) -> Expr:
    """A scalar operand broadcast over a vector or matrix gets the sum of the adjoint."""
    if target.type.kind == "scalar" and adj.type.kind != "scalar":
        return node("sum", adj)
    return adj


def _plus(a: Expr | None, b: Expr | None) -> Expr | None:
    if a is None or b is None:
        return a if b is None else b
    return node("add", a, b)


def _rule_based(term: Expr, v: Sym) -> Expr:
    g = _vjp(term, _c(1), v)
    if g is None:
        raise Unsupported("no dependence")
    return g


def gradient(f: Expr, v: Sym) -> Gradient:
    """Gradient of scalar `f` w.r.t. `v`: the derived part and the terms left to autograd."""
    derived: Expr | None = None
    fallback: list[Expr] = []
    for sign, term in additive_terms(f):
        if v not in symbols(term):
            continue
        try:
            g = _derive(term, v)
        except (Unsupported, TypeError, ValueError, AttributeError, KeyError,
                NotImplementedError):
            try:
                g = _rule_based(term, v)
            except Unsupported:
                fallback.append(term if sign > 0 else Op("neg", (term,), term.type))
                continue
        g = g if sign > 0 else node("neg", g)
        if derived is not None and isinstance(g, Op) and g.op == "neg":  # a - b, not a + -b
            derived = node("sub", derived, g.args[0])
        else:
            derived = g if derived is None else node("add", derived, g)
    return Gradient(derived, tuple(fallback))
