"""Enforce the derived conditions by construction: reparametrize trainables (compile option
`Options(enforce_convergence=True)`, `unfoldc compile --enforce-convergence`).

    step size a (trainable; G constant, Gram-like)  ->  a in [1e-6, 1] * 0.999 * 2 / lambda_max(G)
                                                        (interval: tanh around the init)
    prox threshold t = product of trainables         ->  each unconstrained factor nonneg
    ADMM penalty c (a trainable)                     ->  c positive

Initial values are kept exactly: the interval and positive parametrizations equal the initial
value where the raw parameter is 0, and `nonneg` stores the initial value itself. A condition
whose bound reads per-layer values or whose trainable appears in other ways is left alone.
"""

from __future__ import annotations

from dataclasses import replace

from unfoldc.convergence.derive import derive
from unfoldc.convergence.quantity import QEig, QExpr, QProd
from unfoldc.ir.expr import Const, Op, Sym, walk
from unfoldc.ir.program import Constraint, Program
from unfoldc.ir.types import SCALAR
from unfoldc.passes.result import PassResult

MARGIN = 0.999  # tanh saturates to exactly 1 in floating point: stay strictly below 2/L
FLOOR = 1e-6  # ... and to exactly -1: the smallest step is FLOOR * the largest, not 0


def enforce_pass(program: Program) -> PassResult:
    """The pass `enforce_convergence` (first in pipeline.PASSES, off unless asked for)."""
    result = enforce_convergence(program)
    return PassResult(result, result != program)


def enforce_convergence(program: Program) -> Program:
    """`program` with its trainables' constraints tightened to the derived conditions."""
    an = derive(program)
    new: dict[str, Constraint] = {}
    train = {s.name: s for s in program.by_role("train")}
    # The tightest upper bound on each trainable step: 2/L for a gradient step, 1/L for an
    # accelerated one (FISTA diverges between the two).
    steps: dict[str, tuple[float, Op]] = {}
    for c in an.conditions:
        if c.kind in ("step", "momentum_step") and c.op in ("<", "<=") and \
                isinstance(c.lhs, QProd):
            a, lam = c.lhs.parts[0], c.lhs.parts[1] if len(c.lhs.parts) == 2 else None
            hi = _lambda_expr(lam)
            if _trainable(a, train) and hi is not None:
                # a strict bound keeps a margin (tanh saturates to exactly 1); `<=` needs none
                limit = float(c.rhs.expr.value) * (MARGIN if c.op == "<" else 1.0)
                if a.expr.name not in steps or limit < steps[a.expr.name][0]:
                    steps[a.expr.name] = (limit, hi)
    for name, (limit, hi) in steps.items():
        bound = Op("div", (Const(limit), hi), SCALAR)
        lo = Op("mul", (Const(FLOOR), bound), SCALAR)
        new[name] = Constraint("interval", (lo, bound))
    for c in an.conditions:
        if c.kind == "threshold" and c.op == ">=":
            for node in _factors(c.lhs.expr):
                if isinstance(node, Sym) and node.name in train and node.name not in new \
                        and train[node.name].constraint is None:
                    new[node.name] = Constraint("nonneg")
        elif c.kind == "penalty" and _trainable(c.lhs, train) \
                and train[c.lhs.expr.name].constraint is None:
            new[c.lhs.expr.name] = Constraint("positive")
    symbols = tuple(replace(s, constraint=new[s.name]) if s.name in new else s
                    for s in program.symbols)
    return program.with_(symbols=symbols)


def _trainable(q, train) -> bool:
    return isinstance(q, QExpr) and isinstance(q.expr, Sym) and q.expr.name in train \
        and q.expr.type.kind == "scalar"


def _lambda_expr(lam):
    """lambda_max as a construction-time IR expression, when it only reads givens/lets."""
    if isinstance(lam, QExpr) and isinstance(lam.expr, Const):
        return lam.expr
    if not isinstance(lam, QEig) or len(lam.lin.terms) != 1:
        return None
    m, c = lam.lin.terms[0]
    if not isinstance(c, Const) or len(m) != 2 or any(
            s.role not in ("given", "param", "let") for f in m for s in _syms(f)):
        return None
    # lambda_max(c * B.T @ B) = c * opnorm(B)^2
    b = m[1]
    norm = Op("pow", (Op("opnorm", (b,), SCALAR), Const(2.0)), SCALAR)
    return norm if c.value == 1 else Op("mul", (c, norm), SCALAR)


def _syms(e):
    return [n for n in walk(e) if isinstance(n, Sym)]


def _factors(e):
    if isinstance(e, Op) and e.op == "mul":
        return [x for a in e.args for x in _factors(a)]
    return [e]
