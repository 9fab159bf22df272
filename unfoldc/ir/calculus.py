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
from unfoldc.ir.retype import retype
from unfoldc.ir.types import SCALAR, DimSum, Type
from unfoldc.ops import adjoint_of


class Unsupported(Exception):
    """sympy has no closed form for this term (the caller falls back to autograd)."""


@dataclass(frozen=True)
class Gradient:
    derived: Expr | None  # the symbolic part (None: no term could be derived)
    fallback: tuple[Expr, ...]  # terms left to autograd


def _dim(d):
    if isinstance(d, DimSum):
        return d.scale * _dim(d.name) + d.offset
    return sympy.Integer(d) if isinstance(d, int) else sympy.Symbol(d, integer=True, positive=True)


class _ToSympy:
    """IR -> sympy, remembering which sympy symbol stands for which IR symbol."""

    def __init__(self):
        self.back: dict[sympy.Basic, Sym] = {}

    def sym(self, s: Sym) -> sympy.Basic:
        if s.type.kind == "scalar":
            out = sympy.Symbol(s.name, real=True)
        elif s.type.kind == "vector":
            out = sympy.MatrixSymbol(s.name, _dim(s.type.dims[0]), 1)
        else:
            out = sympy.MatrixSymbol(s.name, _dim(s.type.dims[0]), _dim(s.type.dims[1]))
        self.back[out] = s
        return out

    def __call__(self, e: Expr) -> sympy.Basic:
        if isinstance(e, Sym):
            return self.sym(e)
        if isinstance(e, Const):  # exact rationals, so that 2 * 0.5 simplifies to 1
            return sympy.Rational(repr(float(e.value)))
        a = [self(x) for x in e.args]
        match e.op:
            case "add":
                return a[0] + a[1]
            case "sub":
                return a[0] - a[1]
            case "neg":
                return -a[0]
            case "mul" if not (_mat(a[0]) and _mat(a[1])):
                return a[0] * a[1]
            case "div" if not _mat(a[1]):
                return a[0] / a[1]
            case "matmul":
                return a[0] * a[1]
            case "transpose":
                return a[0].T if _mat(a[0]) else a[0]
            case "sqnorm":
                return (a[0].T * a[0]) if e.args[0].type.kind == "vector" else sympy.Trace(
                    a[0].T * a[0])
            case "dot":
                return a[0].T * a[1]
            case "pow" if not _mat(a[0]):
                return a[0] ** a[1]
        raise Unsupported(e.op)


def _mat(x) -> bool:
    return getattr(x, "is_Matrix", False)


class _FromSympy:
    """sympy -> IR, given the symbol table of the forward translation."""

    def __init__(self, back: dict):
        self.back = {k.name if hasattr(k, "name") else str(k): v for k, v in back.items()}

    def __call__(self, x) -> Expr:
        return retype(self._conv(x))

    def _conv(self, x) -> Expr:
        if isinstance(x, sympy.MatrixSymbol | sympy.Symbol):
            return self.back[x.name]
        if x.is_Number:
            return Const(float(x))
        if isinstance(x, sympy.Transpose):
            return Op("transpose", (self._conv(x.arg),), _placeholder())
        if isinstance(x, sympy.MatMul | sympy.Mul):
            return self._product(x.args)
        if isinstance(x, sympy.MatAdd | sympy.Add):
            return self._sum(x.args)
        if isinstance(x, sympy.Pow) and x.exp.is_Number:
            return Op("pow", (self._conv(x.base), Const(float(x.exp))), _placeholder())
        if isinstance(x, sympy.Identity):
            return Op("eye", (), Type("matrix", (str(x.rows),) * 2))
        raise Unsupported(type(x).__name__)

    def _product(self, factors) -> Expr:
        scalars = [f for f in factors if not _mat(f)]
        mats = [f for f in factors if _mat(f)]
        out = None
        for m in mats:
            term = self._conv(m)
            out = term if out is None else Op("matmul", (out, term), _placeholder())
        coef = sympy.Mul(*scalars)
        if coef == 1:
            return out if out is not None else Const(1.0)
        if coef == -1 and out is not None:
            return Op("neg", (out,), _placeholder())
        c = self._conv(coef) if len(scalars) == 1 else self._scalar_product(scalars)
        return c if out is None else Op("mul", (c, out), _placeholder())

    def _scalar_product(self, scalars) -> Expr:
        out = self._conv(scalars[0])
        for s in scalars[1:]:
            out = Op("mul", (out, self._conv(s)), _placeholder())
        return out

    def _sum(self, terms) -> Expr:
        out = None
        # Positive terms first: `H @ v - x` reads better than sympy's `-x + H @ v`.
        terms = sorted(terms, key=lambda t: t.could_extract_minus_sign())
        for t in terms:
            neg = t.could_extract_minus_sign()
            e = self._conv(-t if neg else t)
            if out is None:
                out = Op("neg", (e,), _placeholder()) if neg else e
            else:
                out = Op("sub" if neg else "add", (out, e), _placeholder())
        return out


def _placeholder() -> Type:
    return SCALAR  # replaced by retype()


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
    to = _ToSympy()
    fx = to(term)
    var = to.sym(v)
    g = sympy.diff(fx, var)
    if _mat(g) and g.shape == (1, 1) and v.type.kind == "scalar":
        g = g[0, 0]
    return _FromSympy(to.back)(g)


# ---- rule-based reverse mode, for what sympy's matrix calculus cannot do (Hadamard products) --
def _c(x: float) -> Const:
    return Const(float(x))


def times(a: Expr, b: Expr) -> Expr:
    """a * b with the trivial cases folded (1 * x = x, constants multiplied, constant first)."""
    if isinstance(a, Const) and isinstance(b, Const):
        return _c(a.value * b.value)
    if isinstance(a, Const) and a.value == 1:
        return b
    if isinstance(b, Const) and b.value == 1:
        return a
    if isinstance(b, Const) and not isinstance(a, Const):
        a, b = b, a
    return retype(Op("mul", (a, b), SCALAR))


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
                right = retype(Op("neg", (right,), right.type))
            return _plus(left, right)
        case "neg":
            inner = _vjp(a[0], adj, v)
            return None if inner is None else retype(Op("neg", (inner,), inner.type))
        case "mul":
            return _plus(_vjp(a[0], _unbroadcast(times(adj, a[1]), a[0]), v),
                         _vjp(a[1], _unbroadcast(times(adj, a[0]), a[1]), v))
        case "div" if v not in symbols(a[1]):
            return _vjp(a[0], _unbroadcast(retype(Op("div", (adj, a[1]), SCALAR)), a[0]), v)
        case "matmul" if v not in symbols(a[0]) and a[0].type.kind == "matrix" \
                and a[1].type.kind == "vector":
            back = retype(Op("matmul", (retype(Op("transpose", (a[0],), SCALAR)), adj), SCALAR))
            return _vjp(a[1], back, v)
        case "transpose":
            return _vjp(a[0], retype(Op("transpose", (adj,), SCALAR)), v)
        case "sqnorm":
            return _vjp(a[0], times(times(_c(2), adj), a[0]), v)
        case "dot":
            return _plus(_vjp(a[0], times(adj, a[1]), v), _vjp(a[1], times(adj, a[0]), v))
        case op if adjoint_of(op) is not None:  # a fixed linear map: back through its adjoint
            name, sign = adjoint_of(op)
            back = retype(Op(name, (adj,), SCALAR))
            return _vjp(a[0], back if sign > 0 else retype(Op("neg", (back,), SCALAR)), v)
    raise Unsupported(e.op)


def _unbroadcast(adj: Expr, target: Expr) -> Expr:
    """A scalar operand broadcast over a vector or matrix gets the sum of the adjoint."""
    if target.type.kind == "scalar" and adj.type.kind != "scalar":
        return retype(Op("sum", (adj,), SCALAR))
    return adj


def _plus(a: Expr | None, b: Expr | None) -> Expr | None:
    if a is None or b is None:
        return a if b is None else b
    return retype(Op("add", (a, b), a.type))


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
        g = g if sign > 0 else retype(Op("neg", (g,), g.type))
        if derived is not None and isinstance(g, Op) and g.op == "neg":  # a - b, not a + -b
            derived = retype(Op("sub", (derived, g.args[0]), g.type))
        else:
            derived = g if derived is None else retype(Op("add", (derived, g), g.type))
    return Gradient(derived, tuple(fallback))
