"""Which states carry a batch dimension: a small propagation over what each value reads.

Inputs are per sample, so anything computed from one is batched. A state is batched when its
initial value or any of its updates reads something batched: an input, a batched state, or a
`let` or temporary computed from one. A state read only by unbatched work (FISTA's momentum
scalar `t`, a step-size schedule) stays one value shared by the whole batch.

The reads are collected once from the checked IR, where function calls are inlined and `grad` or
`prox` are explicit expressions (the gradient of a linear function no longer reads its argument).
The IR's invariant that an operator is batched exactly when one of its arguments is (ir/lint.py)
makes "reads something batched" the same as "is batched". The set then grows from the states
that read an input to its least fixed point.
"""

from __future__ import annotations

from collections.abc import Iterable

from unfoldc.ir.expr import Expr, symbols
from unfoldc.ir.program import Assign, Symbol


def batched_states(declared: Iterable[Symbol], body: Iterable[Assign]) -> frozenset[str]:
    """The states that carry a batch dimension.

    Args:
        declared: the spec's symbols in declaration order (lets and states with their initial
            values).
        body: the layer body in order: updates (`kind == "update"`) and temporaries.
    """
    reads, inputs = _reads_of_states(declared, body)
    batched = set(inputs)
    grown = True
    while grown:  # one round per link of the longest chain of states feeding states
        fresh = {s for s, names in reads.items() if s not in batched and names & batched}
        batched |= fresh
        grown = bool(fresh)
    return frozenset(batched - inputs)


def _reads_of_states(declared: Iterable[Symbol], body: Iterable[Assign]):
    """For each state, the states and inputs that its initial value and updates read, seen
    through lets and temporaries; and the names of the inputs."""
    through: dict[str, frozenset[str]] = {}  # a let or temporary -> the states and inputs it reads
    reads: dict[str, set[str]] = {}
    inputs: set[str] = set()

    def read(e: Expr | None) -> set[str]:
        found: set[str] = set()
        for s in symbols(e) if e is not None else ():
            if s.role in ("input", "state"):
                found.add(s.name)
            elif s.role in ("let", "temp"):
                found |= through[s.name]
        return found

    for sym in declared:
        if sym.role == "input":
            inputs.add(sym.name)
        elif sym.role == "let":
            through[sym.name] = frozenset(read(sym.init))
        elif sym.role == "state":
            reads[sym.name] = read(sym.init)
    for a in body:  # in order: a temporary reads as the value assigned to it last before
        if a.kind == "update":
            reads[a.target] |= read(a.value)
        else:
            through[a.target] = frozenset(read(a.value))
    return reads, frozenset(inputs)
