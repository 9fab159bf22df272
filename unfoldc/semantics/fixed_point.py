"""The `fixed_point(...)` declaration: its options, checked (E0311) into ir.FixedPointMode."""

from __future__ import annotations

import math

from unfoldc.ir.program import FixedPointMode
from unfoldc.syntax import nodes

BACKWARDS = ("implicit", "jfb", "unroll")  # what solve_fixed_point (runtime) accepts
OPTIONS = {  # option -> (what its value must be, an example)
    "tol": ("a positive number (the relative change at which iterating stops)", "tol = 1e-6"),
    "max_iter": ("a whole number from 1 to 10000000", "max_iter = 500"),
    "backward": ("one of " + ", ".join(f"`{b}`" for b in BACKWARDS), "backward = implicit"),
}
MAX_ITER_LIMIT = 10**7  # a larger count is a typo: it would run for days


def check_fixed_point(ck, decls: tuple[nodes.FixedPoint, ...]) -> FixedPointMode | None:
    """The mode the spec declares (None without a declaration); errors go to `ck`."""
    if not decls:
        return None
    for extra in decls[1:]:
        ck.error("E0311", "the spec declares `fixed_point` twice", extra.span, "second one",
                 help="keep one `fixed_point(...)` line")
    values: dict[str, object] = {}
    for key, text, span in decls[0].options:
        if key not in OPTIONS:
            ck.error("E0311", f"`fixed_point` has no option `{key}`", span, "unknown option",
                     help="options: " + ", ".join(OPTIONS))
        elif key in values:
            ck.error("E0311", f"option `{key}` is given twice", span, "again")
        else:
            value = _value(key, text)
            if value is None:
                what, example = OPTIONS[key]
                ck.error("E0311", f"`{key} = {text}` is not valid", span,
                         f"`{key}` must be {what}", help=f"for example `{example}`")
            values[key] = value
    if any(v is None for v in values.values()):
        return None
    return FixedPointMode(**values)


def _value(key: str, text: str):
    """The option's value, or None when `text` is not one."""
    if key == "backward":
        return text if text in BACKWARDS else None
    try:
        number = float(text)
    except ValueError:  # a name where a number belongs
        return None
    if key == "tol":
        return number if math.isfinite(number) and number > 0 else None
    whole = math.isfinite(number) and number == int(number)
    return int(number) if whole and 1 <= number <= MAX_ITER_LIMIT else None
