"""Typed IR constructors, and the folding ones the symbolic stages build expressions with.

`node(op, *args)` is an `Op` typed by the operator table's shape rule (batched when an argument
is). `add`, `mul`, `neg` and `div` fold the trivial cases on the way (`1 * x = x`, `0 + x = x`,
`2 * 3 = 6`, `-(-x) = x`, `a + -b = a - b`): symbolic gradients (ir/calculus.py), closed-form
proxes (ir/prox.py), sympy's answers read back (ir/sympy_bridge.py) and the coefficients of the
convergence analysis (convergence/linear.py) are all built with them, so an expression reads the
same whichever stage wrote it.
"""

from __future__ import annotations

from unfoldc import ops
from unfoldc.ir.expr import Const, Expr, Op
from unfoldc.ir.types import DimTable

ONE, ZERO = Const(1.0), Const(0.0)


def node(op: str, *args: Expr) -> Op:
    """`op` applied to `args`, typed by its shape rule (raises ops.ShapeError if ill-typed)."""
    out = ops.OPS[op].shape(DimTable(), list(args))
    return Op(op, args, out.with_batched(any(a.type.batched for a in args)))


def mul(a: Expr, b: Expr) -> Expr:
    """a * b: 1 * x = x, constants multiplied, a zero scalar product zero, a constant first."""
    if isinstance(a, Const) and isinstance(b, Const):
        return Const(a.value * b.value)
    if a == ONE:
        return b
    if b == ONE:
        return a
    if ZERO in (a, b) and a.type.kind == b.type.kind == "scalar":
        return ZERO
    if isinstance(b, Const):
        a, b = b, a  # `2 * x`, not `x * 2`
    return node("mul", a, b)


def neg(a: Expr) -> Expr:
    """-a: a constant negated, `-(-x) = x`, `-(-2 * x) = 2 * x`."""
    if isinstance(a, Const):
        return Const(-a.value)
    if isinstance(a, Op) and a.op == "neg":
        return a.args[0]
    if isinstance(a, Op) and a.op == "mul" and (isinstance(a.args[0], Const)
                                                 or negative(a.args[0])):
        return mul(neg(a.args[0]), a.args[1])  # -(-1 * a * b) -> a * b
    return node("neg", a)


def add(a: Expr, b: Expr) -> Expr:
    """a + b: 0 + x = x, constants added, `a + -b = a - b`."""
    if a == ZERO:
        return b
    if b == ZERO:
        return a
    if isinstance(a, Const) and isinstance(b, Const):
        return Const(a.value + b.value)
    if isinstance(b, Op) and b.op == "neg":
        return node("sub", a, b.args[0])
    return node("add", a, b)


def div(a: Expr, b: Expr) -> Expr:
    """a / b: x / 1 = x."""
    if b == ONE:
        return a
    return node("div", a, b)


def negative(c: Expr) -> bool:
    """Written with a leading minus sign (`-a`, `-2 * a`, `(-1 * a) * b`)."""
    if isinstance(c, Op) and c.op == "mul":
        return negative(c.args[0])
    return isinstance(c, Op) and c.op == "neg" or isinstance(c, Const) and c.value < 0
