"""The IR verifier: run after the program is built and after every pass.

Checks that each expression's recorded type is the one its operator's shape rule gives, and that
every symbol is defined before it is read, phase by phase. A failure here is a compiler bug, never
a user error: it raises `LintError` naming the pass that broke the invariant.
"""

from __future__ import annotations

from unfoldc import ops
from unfoldc.ir.expr import Expr, Op, Sym, walk
from unfoldc.ir.program import Program
from unfoldc.ir.types import DimTable


class LintError(AssertionError):
    """An IR invariant does not hold."""


def _check_types(e: Expr, where: str) -> None:
    for n in walk(e):
        if not isinstance(n, Op):
            continue
        if n.op not in ops.OPS:
            raise LintError(f"{where}: unknown operator {n.op!r}")
        try:
            want = ops.OPS[n.op].shape(DimTable(), list(n.args))
        except ops.ShapeError as err:
            raise LintError(f"{where}: {n.op} is ill-typed: {err.message}") from None
        batched = any(a.type.batched for a in n.args)
        if (want.kind, batched) != (n.type.kind, n.type.batched) or (
                n.op not in ("eye",) and want.dims != n.type.dims):
            raise LintError(f"{where}: {n.op} has type {n.type}, its rule gives {want}")


def lint(program: Program, after: str = "build") -> Program:
    """Verify `program`; return it unchanged, or raise LintError."""
    defined = {s.name for s in program.symbols if s.role in ("given", "param", "train", "net")}
    defined |= {b.dim for b in program.dims}
    phases = (("setup", program.setup), ("prologue", program.prologue), ("body", program.body))
    for phase, assigns in phases:
        if phase == "prologue":
            defined |= {s.name for s in program.symbols if s.role == "input"}
        if phase == "body":
            defined |= {s.name for s in program.symbols if s.role == "state"}
        for a in assigns:
            where = f"after {after}: {phase} `{a.target}` (line {a.line})"
            _check_types(a.value, where)
            for n in walk(a.value):
                if isinstance(n, Sym) and n.role not in ("dim", "arg", "layer") \
                        and n.name not in defined:
                    raise LintError(f"{where}: reads `{n.name}` before it is defined")
            defined.add(a.target)
    for o in program.outputs:
        if o not in defined:
            raise LintError(f"after {after}: output `{o}` is never defined")
    return program
