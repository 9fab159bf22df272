"""Canonicalize products: scalar factors move out of matrix products, double transposes go.

`(mu * H.T) @ r` becomes `mu * (H.T @ r)`: the same value, but a matrix-vector product instead
of scaling a whole matrix first, and it exposes `H.T @ ...` to the Gram rewrite and hoisting.
"""

from __future__ import annotations

from unfoldc.ir.expr import Expr, Op, rebuild
from unfoldc.ir.program import Assign, Program
from unfoldc.passes.result import PassResult


def _scalar_factor(e: Expr):
    """(c, X) when `e` is `c * X` or `X * c` with scalar c and non-scalar X, else None."""
    if isinstance(e, Op) and e.op == "mul":
        a, b = e.args
        if a.type.kind == "scalar" and b.type.kind != "scalar":
            return a, b
        if b.type.kind == "scalar" and a.type.kind != "scalar":
            return b, a
    return None


def _rewrite(e: Expr) -> Expr:
    if not isinstance(e, Op):
        return e
    if e.op == "matmul":
        for i in (0, 1):
            found = _scalar_factor(e.args[i])
            if found:
                c, x = found
                args = list(e.args)
                args[i] = x
                # Without `c` the product may be unbatched (`c` a per-sample scalar).
                batched = any(a.type.batched for a in args)
                inner = _rewrite(Op("matmul", tuple(args), e.type.with_batched(batched)))
                return Op("mul", (c, inner), e.type)
    if e.op == "transpose" and isinstance(e.args[0], Op) and e.args[0].op == "transpose":
        return e.args[0].args[0]
    return e


def canonicalize(program: Program) -> PassResult:
    """Apply the rewrites bottom-up to every expression of the program."""
    def fix(assigns):
        return tuple(Assign(a.target, rebuild(a.value, _rewrite), a.kind, a.line) for a in assigns)
    new = program.with_(setup=fix(program.setup), prologue=fix(program.prologue),
                        body=fix(program.body))
    return PassResult(new, new != program)
