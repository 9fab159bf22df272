"""Per-compile name generator for values the passes introduce (hoisted values, temporaries)."""

from __future__ import annotations

import re

from unfoldc.ir.expr import Expr, Op, Sym
from unfoldc.ir.program import Program


class NameGen:
    """Readable names that clash with nothing in the program: `HtH`, `Htx`, else `t0`, `t1`."""

    def __init__(self, program: Program):
        self.taken = {s.name for s in program.symbols}
        self.taken |= {a.target for a in program.setup + program.prologue + program.body}
        self.taken |= {b.dim for b in program.dims}  # a dim `t0` must not meet a temp `t0`
        self.count = 0

    def for_expr(self, e: Expr) -> str:
        """A descriptive name for simple products, a numbered temporary otherwise."""
        name = _describe(e)
        if name and name not in self.taken:
            self.taken.add(name)
            return name
        return self.temp()

    def temp(self) -> str:
        """The next free `tK`."""
        while f"t{self.count}" in self.taken:
            self.count += 1
        name = f"t{self.count}"
        self.taken.add(name)
        return name


def _describe(e: Expr) -> str:
    """`A.T @ B` -> `AtB`, `A @ B` -> `AB` for symbols A, B; '' otherwise."""
    if isinstance(e, Op) and e.op == "eye":
        return "I_" + re.sub(r"\W+", "_", str(e.type.dims[0]))  # `n - 1` -> I_n_1
    if not (isinstance(e, Op) and e.op == "matmul"):
        return ""
    a, b = e.args
    if isinstance(a, Op) and a.op == "transpose" and isinstance(a.args[0], Sym):
        left = a.args[0].name + "t"
    elif isinstance(a, Sym):
        left = a.name
    else:
        return ""
    return left + b.name if isinstance(b, Sym) else ""
