"""Dead-code elimination: drop what no output needs.

Liveness runs backwards over the body to a fixpoint (a state read at the top of a layer was
written at the bottom of the previous one), starting from the outputs. Dead body statements,
dead state initializations, and unused lets and hoisted values are removed.
"""

from __future__ import annotations

from unfoldc.ir.expr import symbols
from unfoldc.ir.program import Assign, Program
from unfoldc.passes.result import PassResult


def _reads(a: Assign) -> set[str]:
    return {s.name for s in symbols(a.value)}


def _live_body(program: Program) -> tuple[list[Assign], set[str]]:
    """Live body statements, and every name the loop needs from before it."""
    live = set(program.outputs)
    while True:
        keep, needed = [], set(live)
        for a in reversed(program.body):
            if a.target in needed:
                keep.append(a)
                if a.kind == "temp":
                    needed.discard(a.target)
                needed |= _reads(a)
        if needed <= live:
            return list(reversed(keep)), needed | live
        live |= needed


def dce(program: Program) -> PassResult:
    """Remove statements and prologue/setup values that do not reach an output."""
    body, needed = _live_body(program)
    prologue = []
    for a in reversed(program.prologue):
        if a.target in needed:
            prologue.append(a)
            needed |= _reads(a)
    setup = []
    for a in reversed(program.setup):
        if a.target in needed or _used_by_symbols(program, a.target):
            setup.append(a)
            needed |= _reads(a)
    new = program.with_(body=tuple(body), prologue=tuple(reversed(prologue)),
                        setup=tuple(reversed(setup)))
    return PassResult(new, new != program)


def _used_by_symbols(program: Program, name: str) -> bool:
    """Setup lets feed trainable and parameter initial values and the spec's conditions
    (evaluated by the convergence report), which are always kept."""
    for c in program.conditions:
        if name in {x.name for e in (c.lhs, c.rhs) for x in symbols(e)}:
            return True
    for s in program.symbols:
        exprs = [s.init] if s.init is not None and s.role in ("train", "param") else []
        exprs += list(s.constraint.bounds) if s.constraint else []
        if any(name in {x.name for x in symbols(e)} for e in exprs):
            return True
    return False
