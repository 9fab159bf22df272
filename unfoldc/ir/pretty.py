"""Print IR expressions in the spec's own notation (graph labels, goldens, internal errors)."""

from __future__ import annotations

from unfoldc import ops
from unfoldc.codegen.exprs import format_number
from unfoldc.ir.expr import Const, Expr, Sym

_PREC = {"add": 1, "sub": 1, "mul": 2, "div": 2, "matmul": 2, "neg": 3, "pow": 4}


def _p(e: Expr) -> tuple[str, int]:
    if isinstance(e, Sym):
        return e.name, 9
    if isinstance(e, Const):
        return format_number(e.value), 9
    args = e.args
    if e.op in ("add", "sub", "mul", "div", "matmul"):
        prec = _PREC[e.op]
        (a, pa), (b, pb) = _p(args[0]), _p(args[1])
        a = a if pa >= prec else f"({a})"
        b = b if pb > prec else f"({b})"
        return f"{a} {ops.OPS[e.op].spelling} {b}", prec
    if ops.OPS[e.op].boolean:  # a comparison binds loosest and does not chain
        (a, pa), (b, pb) = _p(args[0]), _p(args[1])
        sym = ops.OPS[e.op].spelling
        return f"{a if pa >= 1 else f'({a})'} {sym} {b if pb >= 1 else f'({b})'}", 0
    if e.op == "neg":
        a, pa = _p(args[0])
        return "-" + (a if pa >= 3 else f"({a})"), 3
    if e.op == "pow":
        (a, pa), (b, pb) = _p(args[0]), _p(args[1])
        return f"{a if pa > 4 else f'({a})'}^{b if pb >= 4 else f'({b})'}", 4
    if e.op == "transpose":
        a, pa = _p(args[0])
        return f"{a if pa == 9 else f'({a})'}.T", 9
    if e.op == "eye" and not args:
        return "I", 9
    return f"{ops.OPS[e.op].spelling}({', '.join(_p(a)[0] for a in args)})", 9


def pretty(e: Expr) -> str:
    """`e` in spec notation with minimal parentheses."""
    return _p(e)[0]
