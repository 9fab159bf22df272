"""Common-subexpression elimination in the layer body, respecting Gauss-Seidel order.

A subexpression computed twice gets a temporary assigned just before the first statement that
uses it, provided no statement in between changes a value it reads (a state update or a
temporary re-assignment ends its lifetime). Largest repeated expressions are taken first.
"""

from __future__ import annotations

from collections import defaultdict

from unfoldc.ir.expr import Expr, Op, Sym, substitute, symbols, walk
from unfoldc.ir.program import Assign, Program
from unfoldc.passes.invariance import is_trivial
from unfoldc.passes.names import NameGen
from unfoldc.passes.result import PassResult


def _candidates(body: tuple[Assign, ...]) -> list[tuple[Expr, list[int]]]:
    """(expression, statement indices) for every expression repeated within its lifetime."""
    live: dict[Expr, list[int]] = defaultdict(list)
    readers: dict[str, set[Expr]] = defaultdict(set)  # name -> live expressions reading it
    found: list[tuple[Expr, list[int]]] = []
    for i, a in enumerate(body):
        for e in walk(a.value):
            # Never lift a subexpression out of an autograd lambda (it reads the lambda's `arg`).
            if isinstance(e, Op) and not is_trivial(e) and not _reads_arg(e):
                if e not in live:
                    for s in symbols(e):
                        readers[s.name].add(e)
                live[e].append(i)  # twice in one statement counts twice
        dead = readers.pop(a.target, None)  # assigning a name ends what reads it
        if dead:
            for e in [e for e in live if e in dead]:  # in live order: deterministic
                _finish(e, live.pop(e), found)
    for e, uses in live.items():
        _finish(e, uses, found)
    return found


def _reads_arg(e: Expr) -> bool:
    return any(s.role == "arg" for s in symbols(e))


def _finish(e: Expr, uses: list[int], found: list) -> None:
    if len(uses) >= 2:
        found.append((e, uses))


def cse(program: Program) -> PassResult:
    """Give repeated body subexpressions one temporary each (iterated to a fixpoint)."""
    names = NameGen(program)
    body = program.body
    changed = False
    while True:
        cands = _candidates(body)
        if not cands:
            break
        e, uses = max(cands, key=lambda c: (_size(c[0]), -c[1][0]))
        temp = Sym(names.temp(), e.type, "temp")
        first = uses[0]
        span = set(uses)  # statements in the expression's lifetime that use it
        new = [Assign(a.target, substitute(a.value, {e: temp}) if i in span else a.value,
                      a.kind, a.line) for i, a in enumerate(body)]
        new.insert(first, Assign(temp.name, e, "temp", body[first].line))
        body, changed = tuple(new), True
    return PassResult(program.with_(body=body), changed)


def _size(e: Expr) -> int:
    return sum(1 for _ in walk(e))
