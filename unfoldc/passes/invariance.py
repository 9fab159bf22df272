"""Which values change from one layer to the next (shared by the hoisting passes)."""

from __future__ import annotations

from unfoldc.ir.expr import Const, Expr, Op, Sym, walk

# Roles whose value is the same in every layer of one call.
INVARIANT_ROLES = {"given", "param", "let", "input", "dim", "hoisted"}


def is_invariant(e: Expr) -> bool:
    """True when `e` reads nothing that differs between layers (states, temps, per-layer
    trainables). Shared trainables are invariant: one value for every layer."""
    for n in walk(e):
        if isinstance(n, Sym):
            if n.role == "train" and not n.per_layer:
                continue
            if n.role not in INVARIANT_ROLES:
                return False
    return True


def is_trivial(e: Expr) -> bool:
    """Not worth a temporary: a symbol, a number, or a transposed symbol (a free view)."""
    if isinstance(e, Sym | Const):
        return True
    return isinstance(e, Op) and e.op in ("transpose", "neg") and isinstance(e.args[0], Sym)
