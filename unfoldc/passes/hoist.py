"""Loop-invariant code motion: compute invariant subexpressions of the body once per call.

Precondition: the body is in statement order and symbols carry their roles (as built by the
semantic check). Every maximal subexpression of a body statement that reads no state, no
temporary and no per-layer trainable, and is not trivial (a symbol, a number, a transposed
symbol), becomes an assignment of kind `hoisted` at the end of the prologue, and the body reads
it instead. Identical invariant subexpressions share one hoisted value.
"""

from __future__ import annotations

from unfoldc.ir.expr import Expr, Op, Sym, is_symmetric, substitute
from unfoldc.ir.program import Assign, Program
from unfoldc.passes.invariance import is_invariant, is_trivial
from unfoldc.passes.names import NameGen
from unfoldc.passes.result import PassResult


def _maximal_invariants(e: Expr, found: list[Expr]) -> None:
    if is_invariant(e):
        if not is_trivial(e) and e not in found:
            found.append(e)
        return
    if isinstance(e, Op):
        for a in e.args:
            _maximal_invariants(a, found)


def hoist(program: Program) -> PassResult:
    """Move the body's loop-invariant work into the prologue."""
    found: list[Expr] = []
    lines: dict[Expr, int] = {}
    for a in program.body:
        before = len(found)
        _maximal_invariants(a.value, found)
        for e in found[before:]:
            lines.setdefault(e, a.line)
    if not found:
        return PassResult(program, False)
    names = NameGen(program)
    mapping = {e: Sym(names.for_expr(e), e.type, "hoisted", symmetric=is_symmetric(e))
               for e in found}
    hoisted = tuple(Assign(mapping[e].name, e, "hoisted", lines[e]) for e in found)
    body = tuple(Assign(a.target, substitute(a.value, mapping), a.kind, a.line)
                 for a in program.body)
    return PassResult(program.with_(prologue=program.prologue + hoisted, body=body), True)
