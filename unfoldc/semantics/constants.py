"""Constant folding, and constants without a finite value refused where they are written (E0310).

The checker folds arithmetic on numbers as it builds each expression (`1 / 2` is 0.5 in the IR
and in generated code): shape rules read sizes off constants, so `zeros(12 / 2)` must see a 6.
The folding fact of each operator is on its entry in the operator table (ops.py).

A spec's numbers become Python floats: `1e309` or a 309-digit integer is infinite, `10 ^ 400`
overflows when folded, `1 / 0`, `0 ^ -1` and `(-1) ^ 0.5` have no (real) value. Left alone they
crashed constant folding or reached the generated code as `inf` / `nan`; here each becomes a
located diagnostic.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from unfoldc import ops
from unfoldc.ir.expr import Const, Expr

_LARGEST = f"{sys.float_info.max:.1e}"
_RANGE_HELP = ("numbers in a spec are double-precision floats (at most about "
               f"{_LARGEST}); rescale the quantity")


@dataclass(frozen=True)
class NoValue:
    """Why a constant has no finite value: the parts of an E0310 diagnostic."""

    message: str
    label: str
    help: str


def check_literal(value: float, text: str) -> NoValue | None:
    """A number literal too large for a float (it reads as infinity)."""
    if math.isfinite(value):
        return None
    return NoValue(f"the number `{_short(text)}` is too large", f"above {_LARGEST}",
                   _RANGE_HELP)


def fold(op: str, args: list) -> Expr | None:
    """`op` applied to numbers, as a number; None when an argument is not one, or the operator
    table has no folding fact for `op`."""
    if not args or not all(isinstance(a, Const) for a in args):
        return None
    fact = ops.OPS[op].fold if op in ops.OPS else None
    value = fact(*(a.value for a in args)) if fact is not None else None
    return Const(float(value)) if value is not None else None


def fold_checked(op: str, args: list, text: str) -> Expr | NoValue | None:
    """`fold(op, args)` (None: not folded), or why the result has no finite value.

    A division by a constant zero is refused even when the numerator is not constant.
    """
    if op == "div" and _is_const(args[1]) and args[1].value == 0:
        return NoValue(f"`{_short(text)}` divides by zero", "the divisor is 0",
                       "a division by zero has no value; check the constant")
    if op == "pow" and all(_is_const(a) for a in args) and args[0].value < 0 \
            and not float(args[1].value).is_integer():
        return NoValue(f"`{_short(text)}` has no real value",
                       "a negative number to a fractional power",
                       "write `-(a ^ p)` for the negative of a power")
    try:
        folded = fold(op, args)
    except ZeroDivisionError:
        return NoValue(f"`{_short(text)}` divides by zero", "0 to a negative power",
                       "0 ^ p is defined for p >= 0 only")
    except OverflowError:
        folded = Const(math.inf)
    if isinstance(folded, Const) and not math.isfinite(folded.value):
        return NoValue(f"`{_short(text)}` is too large", f"its value is above {_LARGEST}",
                       _RANGE_HELP)
    return folded


def _is_const(e) -> bool:
    return isinstance(e, Const)


def _short(text: str) -> str:
    """The expression as written, shortened for a message."""
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."
