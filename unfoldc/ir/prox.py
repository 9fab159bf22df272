"""Closed-form proximal operators: `prox(c * g, v)` for the functions g a spec can declare.

g (a function of its parameter p) is split into additive terms `coef * atom(p)`, with `coef`
free of p. Supported, with scalar multiples (a = c * coef > 0):
    norm1(p), norm1(w * p) (w >= 0 elementwise)   ->  soft(v, a), soft(v, a * w)
    sqnorm(p)                                      ->  v / (1 + 2 a)
    norm2(p)                                       ->  block_soft(v, a)
    nucnorm(P)                                     ->  svt(V, a)
    ind_box(p, lo, hi), ind_nonneg, ind_simplex,
    ind_l2ball(p, r)                               ->  the projection onto the set
and these separable sums: `h + b sqnorm(p)` -> prox_{a h / (1 + 2b)}(v / (1 + 2b)), and an
elementwise h (norm1, sqnorm) plus a box or nonnegativity indicator -> the projection of
prox_h(v) (exact because both are separable into one-dimensional convex problems).

Which functions are atoms and which operator their prox is are facts of their entries in
`unfoldc/ops.py` (`OpDef.prox`); this module only splits g into atoms and combines them.
"""

from __future__ import annotations

from unfoldc.ir.calculus import additive_terms, times
from unfoldc.ir.expr import Const, Expr, Op, Sym, symbols
from unfoldc.ir.retype import retype
from unfoldc.ops import OPS

SUPPORTED = ("norm1(p)", "norm1(w * p)", "sqnorm(p)", "norm2(p)", "nucnorm(P)",
             "ind_box(p, lo, hi)", "ind_nonneg(p)", "ind_simplex(p)", "ind_l2ball(p, r)",
             "sums: h + b * sqnorm(p); norm1 or sqnorm + ind_box / ind_nonneg")
# The prox atoms and what their prox is are facts of the operator table (`OpDef.prox`).
_ATOMS = {name: d.prox for name, d in OPS.items() if d.prox is not None}
# Separable atoms: functions (scaled) and sets (indicators) combine exactly.
_SEPARABLE_FNS = {name for name, r in _ATOMS.items() if r.separable and r.scaled}
_SEPARABLE_SETS = {name for name, r in _ATOMS.items() if r.separable and not r.scaled}


class ProxError(Exception):
    """g has no closed-form proximal map here; the message says which part."""


def _op(op: str, *args: Expr) -> Expr:
    return retype(Op(op, args, args[0].type if args else None))


def _split(term: Expr, p: Sym) -> tuple[Expr, Op]:
    """`coef * atom(p)` -> (coef, atom); coef must not depend on p."""
    if isinstance(term, Op) and term.op in _ATOMS and p in symbols(term.args[0]):
        return Const(1.0), term
    if isinstance(term, Op) and term.op == "mul":
        a, b = term.args
        for coef, rest in ((a, b), (b, a)):
            if p not in symbols(coef) and coef.type.kind == "scalar":
                inner, atom = _split(rest, p)
                return times(coef, inner), atom
    if isinstance(term, Op) and term.op == "div" and p not in symbols(term.args[1]):
        inner, atom = _split(term.args[0], p)
        return _op("div", inner, term.args[1]), atom
    raise ProxError(f"cannot take the prox of `{_describe(term)}`")


def _describe(e: Expr) -> str:
    from unfoldc.ir.pretty import pretty

    return pretty(e)


def _weight(atom: Op, p: Sym) -> Expr | None:
    """For norm1(w * p) the weight w; None for norm1(p); error for anything else."""
    arg = atom.args[0]
    if arg == p:
        return None
    if _ATOMS[atom.op].weighted and isinstance(arg, Op) and arg.op == "mul":
        a, b = arg.args
        for w, q in ((a, b), (b, a)):
            if q == p and p not in symbols(w):
                return w
    raise ProxError(f"`{atom.op}` must be applied to the parameter itself, found "
                    f"`{_describe(arg)}`")


def _single(atom: Op, a: Expr, v: Expr, p: Sym) -> Expr:
    """prox of a * atom at v, for one atom (the rule is the atom's `OpDef.prox`)."""
    rule = _ATOMS.get(atom.op)
    if rule is None:
        raise ProxError(f"no proximal map for `{atom.op}`")
    w = _weight(atom, p)
    if rule.op is None:  # sqnorm: argmin_x a ||x||^2 + ||x - v||^2 / 2
        return _op("div", v, _op("add", Const(1.0), times(Const(2.0), a)))
    scale = (a if w is None else times(a, w),) if rule.scaled else ()
    return _op(rule.op, v, *scale, *atom.args[1:])


def resolve_prox(c: Expr, g_body: Expr, p: Sym, v: Expr) -> Expr:
    """The IR of prox_{c g}(v), where g's body is written in its parameter `p`."""
    parts = [(sign, *_split(t, p)) for sign, t in additive_terms(g_body) if p in symbols(t)]
    if any(sign < 0 for sign, _, _ in parts):
        raise ProxError("a term enters with a minus sign: g must be a sum of convex terms")
    if not parts:
        return v
    quad = [(coef, atom) for _, coef, atom in parts if atom.op == "sqnorm" and atom.args[0] == p]
    rest = [(coef, atom) for _, coef, atom in parts if (coef, atom) not in quad]
    if quad and rest:  # h + b sqnorm(p): scale the point and the weight by 1 / (1 + 2 c b)
        b = quad[0][0] if len(quad) == 1 else None
        if b is None:
            raise ProxError("more than one sqnorm term")
        scale = _op("add", Const(1.0), times(Const(2.0), times(c, b)))
        return resolve_prox(_op("div", c, scale), _rebuild(rest), p, _op("div", v, scale))
    if len(parts) == 1:
        _, coef, atom = parts[0]
        return _single(atom, times(c, coef), v, p)
    return _separable_with_set(parts, c, v, p)


def _rebuild(terms) -> Expr:
    out = None
    for coef, atom in terms:
        t = times(coef, atom)
        out = t if out is None else _op("add", out, t)
    return out


def _separable_with_set(parts, c: Expr, v: Expr, p: Sym) -> Expr:
    sets = [(coef, a) for _, coef, a in parts if a.op in _SEPARABLE_SETS]
    fns = [(coef, a) for _, coef, a in parts if a.op in _SEPARABLE_FNS]
    if len(sets) != 1 or len(fns) != 1 or len(parts) != 2:
        names = ", ".join(f"`{a.op}`" for _, _, a in parts)
        raise ProxError(f"no closed form for the sum of {names}")
    coef, atom = fns[0]
    inner = _single(atom, times(c, coef), v, p)
    return _single(sets[0][1], Const(1.0), inner, p)
