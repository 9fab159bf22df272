"""Recompute the types of an expression bottom-up from the operator table's shape rules.

Needed after substituting arguments into a function body: `g(v) = rho * norm1(v)` is typed with
an unbatched `v`, but `g(s)` on a batched state is batched all the way up.
"""

from __future__ import annotations

from unfoldc import ops
from unfoldc.ir.expr import Expr, Op, rebuild, substitute
from unfoldc.ir.types import DimTable


def _fix(e: Expr) -> Expr:
    if not isinstance(e, Op):
        return e
    out = ops.OPS[e.op].shape(DimTable(), list(e.args))
    if e.op == "eye" and not e.args:
        out = e.type  # its size came from unification, not from arguments
    return Op(e.op, e.args, out.with_batched(any(a.type.batched for a in e.args)))


def retype(e: Expr) -> Expr:
    """`e` with every operator's type recomputed (raises ops.ShapeError if ill-typed)."""
    return rebuild(e, _fix)


def apply(body: Expr, mapping: dict[Expr, Expr]) -> Expr:
    """Substitute `mapping` into `body` (e.g. parameters by arguments) and retype."""
    return retype(substitute(body, mapping))
