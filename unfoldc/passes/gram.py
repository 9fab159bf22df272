"""Gram rewrite: `A @ (B @ v - b)` -> `(A @ B) @ v - A @ b` when A, B and b are loop-invariant.

Precondition: run after canonicalize (scalar factors already outside matrix products).
Effect: the layer computes one product with the precomputed Gram matrix `A @ B` instead of two,
and `A @ B`, `A @ b` become invariant subexpressions that `hoist` moves out of the loop. This is
what a careful hand-written ISTA does with `H.T @ H` and `H.T @ x`. It trades 2 m n for n^2
multiply-adds per sample and layer: a gain when m > n / 2, neutral at m = n / 2, a loss below;
compile with `gram=False` (`--no-gram`) for very wide operators.
"""

from __future__ import annotations

from unfoldc.ir.expr import Expr, Op, rebuild
from unfoldc.ir.program import Assign, Program
from unfoldc.passes.invariance import is_invariant
from unfoldc.passes.result import PassResult


def _sum_of_like_terms(e: Expr) -> bool:
    """`e` is a sum or difference of terms of its own kind: `A @ (v - 0)` is not `A @ v - A @ 0`
    (a scalar term is broadcast, so the product does not distribute over it)."""
    return (isinstance(e, Op) and e.op in ("add", "sub") and e.type.kind != "scalar"
            and all(x.type.kind == e.type.kind for x in e.args))


def _splits(e: Expr) -> bool:
    """True when pushing an invariant matrix into `e` yields an invariant product."""
    if not isinstance(e, Op):
        return False
    if e.op in ("add", "sub"):
        return _sum_of_like_terms(e) and any(is_invariant(a) or _splits(a) for a in e.args)
    if e.op == "neg":
        return _splits(e.args[0])
    if e.op == "matmul":
        return is_invariant(e.args[0]) and not is_invariant(e.args[1])
    return False


def _push(a: Expr, e: Expr) -> Expr:
    """`a @ e`, distributed over the sums in `e` and reassociated onto invariant factors."""
    if _sum_of_like_terms(e):
        return Op(e.op, tuple(_push(a, x) for x in e.args), _product_type(a, e))
    if isinstance(e, Op) and e.op == "neg":
        return Op("neg", (_push(a, e.args[0]),), _product_type(a, e))
    if isinstance(e, Op) and e.op == "matmul" and is_invariant(e.args[0]) \
            and not is_invariant(e.args[1]):
        inner = e.args[0]
        gram = Op("matmul", (a, inner), _product_type(a, inner))
        return Op("matmul", (gram, e.args[1]), _product_type(gram, e.args[1]))
    return Op("matmul", (a, e), _product_type(a, e))


def _product_type(a: Expr, b: Expr):
    """Type of `a @ b` for already shape-checked operands."""
    from unfoldc.ir.types import SCALAR, Type

    ta, tb = a.type, b.type
    batched = ta.batched or tb.batched
    if ta.kind == "vector" and tb.kind == "vector":
        return SCALAR.with_batched(batched)
    if ta.kind == "matrix" and tb.kind == "vector":
        return Type("vector", (ta.dims[0],), batched)
    if ta.kind == "vector":
        return Type("vector", (tb.dims[1],), batched)
    return Type("matrix", (ta.dims[0], tb.dims[1]), batched)


def _rewrite(e: Expr) -> Expr:
    if isinstance(e, Op) and e.op == "matmul":
        a, b = e.args
        if a.type.kind == "matrix" and is_invariant(a) and not is_invariant(b) and _splits(b):
            return _push(a, b)
    return e


def expand_gram(program: Program) -> PassResult:
    """Rewrite the layer body (only there: elsewhere nothing is repeated per layer)."""
    body = tuple(Assign(a.target, rebuild(a.value, _rewrite), a.kind, a.line)
                 for a in program.body)
    new = program.with_(body=body)
    return PassResult(new, new != program)
