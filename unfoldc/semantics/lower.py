"""Lowering: a checked spec (check.py's `Checked`) -> the math IR `Program` (ir/program.py).

The checker has found every user error and typed every expression by shape; what is left is
mechanical and cannot fail on a spec's mistake:
- batchedness: which states carry a batch dimension is propagated once (batching.py), then every
  symbol and operator is marked batched or not from it;
- dimensions: each inferred one (`?k`, from `I` or `zeros`) becomes what it was unified with;
- phases: a `let` of construction-time values is setup work, other lets and the states' initial
  values are prologue work (per call), the body is the layer;
- where each dimension is read at run time (`DimBinding`s), and the spec's hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from unfoldc.ir.expr import Expr, Op, Sym, rebuild, walk
from unfoldc.ir.program import Assign, DimBinding, Program, Symbol
from unfoldc.ir.types import DimTable
from unfoldc.semantics.batching import batched_states
from unfoldc.semantics.check import Checked
from unfoldc.semantics.roles import per_call_lets


def lower(checked: Checked) -> Program:
    """The Program of a spec that checked without errors."""
    types = _FinalTypes(checked.dims, batched_states(checked.symbols, checked.body))
    symbols = tuple(types.symbol(s) for s in checked.symbols)
    body = tuple(types.assign(a) for a in checked.body)
    setup, prologue = _phases(symbols)
    spec, source = checked.spec, checked.source
    sha = hashlib.sha256(source.text.encode("utf-8")).hexdigest()
    program = Program(
        spec.name, spec.doc, source.basename, sha, spec.num_layers, symbols,
        _dim_bindings(symbols), setup, prologue, body, checked.outputs, notes=checked.notes,
        conditions=tuple(replace(c, lhs=types.expr(c.lhs), rhs=types.expr(c.rhs))
                         for c in checked.conditions),
        objective=types.expr(checked.objective),
        functions=tuple((f.name, f.body) for f in checked.functions),
        fixed_point=checked.fixed_point)
    _assert_closed(program)
    return program


class _FinalTypes:
    """Types as the Program has them: dimensions resolved, and batched exactly where what is
    read is batched. Symbols and body statements must be given in order (lets and temporaries
    take the batchedness of their values)."""

    def __init__(self, dims: DimTable, states: frozenset[str]):
        self.dims = dims
        self.batched: dict[str, bool] = dict.fromkeys(states, True)  # states, lets, temps

    def expr(self, e: Expr | None) -> Expr | None:
        """`e` with its final types."""
        return rebuild(e, self._fix) if e is not None else None

    def _fix(self, e: Expr) -> Expr:
        if isinstance(e, Sym):
            t = self.dims.resolve(e.type)
            if e.role in ("state", "let", "temp"):
                t = t.with_batched(self.batched.get(e.name, False))
            return replace(e, type=t)
        if isinstance(e, Op):  # the arguments are final: an operator is batched when one is
            batched = any(a.type.batched for a in e.args)
            return replace(e, type=self.dims.resolve(e.type).with_batched(batched))
        return e

    def symbol(self, s: Symbol) -> Symbol:
        """A declared symbol with its final type, initial value and constraint."""
        init = self.expr(s.init)
        t = self.dims.resolve(s.type)
        if s.role == "let":
            t = init.type
            self.batched[s.name] = t.batched
        elif s.role == "state":
            t = t.with_batched(self.batched.get(s.name, False))
        c = s.constraint
        if c is not None:
            c = replace(c, bounds=tuple(self.expr(b) for b in c.bounds))
        return replace(s, type=t, init=init, constraint=c)

    def assign(self, a: Assign) -> Assign:
        """A body statement with its final types."""
        value = self.expr(a.value)
        if a.kind != "update":
            self.batched[a.target] = value.type.batched
        return replace(a, value=value)


def _phases(symbols: tuple[Symbol, ...]) -> tuple[tuple[Assign, ...], tuple[Assign, ...]]:
    """Setup (construction-time lets) and prologue (other lets, states' initial values)."""
    setup, prologue = [], []
    per_call = per_call_lets(symbols)
    for s in symbols:
        if s.role == "let":
            a = Assign(s.name, s.init, "let", s.line)
            (prologue if s.name in per_call else setup).append(a)
        elif s.role == "state":
            prologue.append(Assign(s.name, s.init, "init", s.line))
    return tuple(setup), tuple(prologue)


def _dim_bindings(symbols) -> tuple[DimBinding, ...]:
    """Where each dimension is read at run time: givens first (known at construction)."""
    found: dict[str, DimBinding] = {}
    for role in ("given", "input"):
        for s in symbols:
            if s.role == role:
                for axis, d in enumerate(s.type.dims):
                    if isinstance(d, str) and d not in found:
                        found[d] = DimBinding(d, s.name, axis)
    return tuple(found.values())


def _assert_closed(program: Program) -> None:
    """Internal invariant: every symbol in the IR is declared, a temp, or a dim."""
    names = {s.name for s in program.symbols} | {a.target for a in program.body}
    for a in program.setup + program.prologue + program.body:
        for n in walk(a.value):
            if isinstance(n, Sym) and n.role not in ("dim", "arg", "layer") \
                    and n.name not in names:
                raise AssertionError(f"IR refers to unknown symbol {n.name}")
