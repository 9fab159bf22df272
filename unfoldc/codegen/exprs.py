"""Print IR expressions as torch code: infix operators, minimal parentheses, batch-aware.

The printer owns parentheses (through `Code.at`) and the broadcasting of batched scalars: a
per-sample scalar has shape (B,), so before it meets a batched vector (B, n) or matrix
(B, m, n) elementwise it is indexed `a[:, None]` (or `a[:, None, None]`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from unfoldc import ops
from unfoldc.ir.expr import Const, Expr, Op, Sym
from unfoldc.ir.types import SCALAR, Type
from unfoldc.ops import PREC_ATOM, PREC_NEG, Code


def format_number(value: float) -> str:
    """Shortest round-tripping text of a number (integers without `.0` where exact).

    Infinities and NaN (which the front end refuses in specs, E0310) are spelled as calls:
    `repr` would give a bare `inf`, a NameError in the generated module.
    """
    if not math.isfinite(value):
        return f'float("{float(value)!r}")'
    if float(value).is_integer() and abs(value) < 1e16:
        return f"{int(value)}"
    return repr(float(value))


class ExprPrinter:
    """Prints expressions; `name_of` says how each symbol is spelled in the current scope."""

    def __init__(self, name_of: Callable[[Sym], str]):
        self.name_of = name_of
        self.helpers: set[str] = set()

    def code(self, e: Expr) -> Code:
        """`e` printed, with its precedence and type."""
        if isinstance(e, Sym):
            return Code(self.name_of(e), PREC_ATOM, e.type, e.symmetric)
        if isinstance(e, Const):
            text = format_number(e.value)
            return Code(text, PREC_NEG if text.startswith("-") else PREC_ATOM, e.type)
        if isinstance(e, Op):
            return self._op(e)
        raise TypeError(f"cannot print IR node {type(e).__name__}")

    def __call__(self, e: Expr) -> str:
        return self.code(e).text

    def _op(self, e: Op) -> Code:
        opdef = ops.OPS[e.op]
        args = [_tensor(self.code(a)) if as_tensor else self.code(a)
                for a, as_tensor in zip(e.args, tensor_args(e))]
        if opdef.condition_first:
            args[0] = self._condition(e.args[0])
        if opdef.elementwise:
            args = [_align(a, e.type.rank) for a in args]
        if opdef.helper:
            self.helpers.add(opdef.helper)
        text, prec = opdef.render(args, self._spelled(e.type))
        return Code(text, prec, e.type)

    def _condition(self, e: Expr) -> Code:
        """`e` as a boolean: a comparison as itself (`a < b`), anything else `e != 0`."""
        if isinstance(e, Op) and ops.OPS[e.op].boolean:
            args = [_align(self.code(a), e.type.rank) for a in e.args]
            if condition_tensor(e):  # `m < n` of two ints is a Python bool
                args[0] = _tensor(args[0])
            return Code(ops.compare_text(ops.OPS[e.op].boolean, args), 0, e.type)
        c = _tensor(self.code(e)) if condition_tensor(e) else self.code(e)
        return Code(f"{c.at(ops.PREC_ADD)} != 0", 0, e.type)

    def _spelled(self, t: Type) -> Type:
        """`t` with its named dimensions spelled as in the generated code (sized operators like
        `eye(n)` print them; a dimension `K` is renamed so as not to clash with the layer count)."""
        dims = tuple(self.name_of(Sym(d, SCALAR, "dim")) if isinstance(d, str) else d
                     for d in t.dims)
        return replace(t, dims=dims)


def tensor_args(e: Op) -> list[bool]:
    """Which operands of `e` the printer writes as tensors (`like.new_tensor(...)`): numbers
    where torch (or Python arithmetic that may raise) needs a tensor. Decided from the IR, so
    codegen/liveness.py knows that the printed code reads `like` before anything is printed."""
    opdef = ops.OPS[e.op]
    if e.op in ("div", "pow"):  # infix: `1 / layer` raises in layer 0 where a tensor gives inf
        return [i == 0 and _may_raise(e) and all(is_number(a) for a in e.args)
                for i in range(len(e.args))]
    if opdef.infix:
        return [False] * len(e.args)
    # torch's overloads take tensors, or numbers beside a tensor first argument, but
    # not numbers beside tensor further arguments (`torch.clamp(v, 0, hi)`, hi a tensor)
    mixed = not all(is_number(a) for a in e.args[1:])
    return [is_number(a) and (i == 0 or mixed or not opdef.numbers_after_first)
            for i, a in enumerate(e.args)]


def condition_tensor(e: Expr) -> bool:
    """Whether the condition `e` (the first operand of a `condition_first` operator) is printed
    with a tensor first operand: a comparison of numbers, or a number compared with 0."""
    if isinstance(e, Op) and ops.OPS[e.op].boolean:
        return all(is_number(a) for a in e.args)
    return is_number(e)


_PYTHON_ARITHMETIC = {"add", "sub", "mul", "div", "pow", "neg"}


def is_number(e: Expr) -> bool:
    """Whether `e` is a plain Python number in generated code: a literal, a dimension (an int
    read off a shape), or infix arithmetic of those (`m / n`). Calls need a tensor there:
    `torch.sqrt(m)` raises a TypeError."""
    if isinstance(e, Const):
        return True
    if isinstance(e, Sym):
        return e.role in ("dim", "layer")  # the layer index is a Python int too
    return e.op in _PYTHON_ARITHMETIC and all(is_number(a) for a in e.args) \
        and not _may_raise(e)


def _may_raise(e: Op) -> bool:
    """Python arithmetic that can raise where tensors give inf or nan: a division by a number
    that may be 0 (`1 / layer` in layer 0, `1 / (m - n)`), a power of one that may be 0 or
    negative (`layer ^ -1`, `(m - n) ^ 0.5` is complex). Its left operand is printed as a tensor."""
    if e.op == "div":
        return not _positive(e.args[1])
    return e.op == "pow" and not _positive(e.args[0])


def _positive(e: Expr) -> bool:
    """A number known > 0: a positive literal, a dimension, sums, products and quotients of
    those (the layer index starts at 0)."""
    if isinstance(e, Const):
        return e.value > 0
    if isinstance(e, Sym):
        return e.role == "dim"
    return e.op in ("add", "mul", "div", "pow") and _positive(e.args[0]) and (
        e.op == "pow" or _positive(e.args[1]))


def _tensor(c: Code) -> Code:
    """A number as a tensor in the dtype/device of `like` (`torch.sqrt(5)` is an error)."""
    return Code(f"like.new_tensor({c.text})", PREC_ATOM, c.type)


def _align(a: Code, rank: int) -> Code:
    """Index a batched lower-rank operand so that it broadcasts against rank-`rank` values."""
    missing = rank - a.type.rank
    if not a.type.batched or missing <= 0:
        return a
    return Code(f"{a.at(PREC_ATOM)}[:, {', '.join(['None'] * missing)}]", PREC_ATOM, a.type)
