"""Closed-form proximal operators: `prox(c * g, v)` for the functions g a spec can declare.

g (a function of its parameter p) is split into additive terms `coef * atom(p)`, with `coef`
free of p. Supported, with scalar multiples (a = c * coef > 0):
    norm1(p), norm1(w * p) (w >= 0 elementwise)   ->  soft(v, a), soft(v, a * w)
    norm2(p)                                       ->  block_soft(v, a)
    nucnorm(P)                                     ->  svt(V, a)
    ind_box(p, lo, hi), ind_nonneg, ind_simplex,
    ind_l2ball(p, r)                               ->  the projection onto the set
    quadratics sum_i b_i sqnorm(p - y_i)           ->  (v + 2 c sum_i b_i y_i) / (1 + 2 c B),
        B = sum_i b_i (so 0.5 * sqnorm(p - y) gives (v + c y) / (1 + c))
    least squares b sqnorm(A @ p - y), plus such
    quadratics                                     ->  solve((1 + 2 c B) I + 2 c b A^T A,
                                                             v + 2 c (sum_i b_i y_i + b A^T y))
                                                        (0.5 * sqnorm(A @ p - y) gives
                                                         solve(I + c A^T A, v + c A^T y))
and these sums and translations:
    h + sum_i b_i sqnorm(p - y_i)   ->  prox_{c h / (1 + 2 c B)}((v + 2 c sum_i b_i y_i) /
                                        (1 + 2 c B)) (completing the square);
    h(p - d), every atom of h read at the same translation p - d (or p + e, d = -e)
                                                      ->  d + prox_{c h}(v - d);
    an elementwise h (norm1, sqnorm) plus a box or nonnegativity indicator -> the projection of
    prox_h(v) (exact because both are separable into one-dimensional convex problems).

Which functions are atoms and which operator their prox is are facts of their entries in
`unfoldc/ops.py` (`OpDef.prox`); this module only splits g into atoms and combines them.
"""

from __future__ import annotations

from dataclasses import dataclass

from unfoldc.ir.calculus import additive_terms
from unfoldc.ir.expr import Const, Expr, Op, Sym, dim_value, substitute, symbols, walk
from unfoldc.ir.fold import mul, node
from unfoldc.ir.types import matrix
from unfoldc.ops import OPS

SUPPORTED = ("norm1(p)", "norm1(w * p)", "sqnorm(p)", "norm2(p)", "nucnorm(P)",
             "ind_box(p, lo, hi)", "ind_nonneg(p)", "ind_simplex(p)", "ind_l2ball(p, r)",
             "quadratics b * sqnorm(p - y) and b * sqnorm(A @ p - y)",
             "translations h(p - d) of these", "sums: h + b * sqnorm(p - y); "
             "norm1 or sqnorm + ind_box / ind_nonneg")
# The prox atoms and what their prox is are facts of the operator table (`OpDef.prox`).
_ATOMS = {name: d.prox for name, d in OPS.items() if d.prox is not None}
# Separable atoms: functions (scaled) and sets (indicators) combine exactly.
_SEPARABLE_FNS = {name for name, r in _ATOMS.items() if r.separable and r.scaled}
_SEPARABLE_SETS = {name for name, r in _ATOMS.items() if r.separable and not r.scaled}


class ProxError(Exception):
    """g has no closed-form proximal map here; the message says which part."""


def _split(term: Expr, p: Sym) -> tuple[Expr, Op]:
    """`coef * atom(p)` -> (coef, atom); coef must not depend on p."""
    if isinstance(term, Op) and term.op in _ATOMS and p in symbols(term.args[0]):
        return Const(1.0), term
    if isinstance(term, Op) and term.op == "mul":
        a, b = term.args
        for coef, rest in ((a, b), (b, a)):
            if p not in symbols(coef) and coef.type.kind == "scalar":
                inner, atom = _split(rest, p)
                return mul(coef, inner), atom
    if isinstance(term, Op) and term.op == "div" and p not in symbols(term.args[1]):
        inner, atom = _split(term.args[0], p)
        return node("div", inner, term.args[1]), atom
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
    raise ProxError(f"`{atom.op}` must be applied to the parameter itself or to a translation "
                    f"`p - d` of it, found `{_describe(arg)}`")


def _single(atom: Op, a: Expr, v: Expr, p: Sym) -> Expr:
    """prox of a * atom at v, for one atom (the rule is the atom's `OpDef.prox`)."""
    rule = _ATOMS.get(atom.op)
    if rule is None:
        raise ProxError(f"no proximal map for `{atom.op}`")
    w = _weight(atom, p)
    if rule.op is None:  # sqnorm's own closed form is taken before (`_with_quadratics`)
        raise ProxError(f"`{atom.op}` must be applied to the parameter itself")
    scale = (a if w is None else mul(a, w),) if rule.scaled else ()
    return node(rule.op, v, *scale, *atom.args[1:])


@dataclass(frozen=True)
class _Quad:
    """`coef * sqnorm(A @ p - y)`: A None is the identity, y None is zero."""

    coef: Expr
    a: Expr | None
    y: Expr | None


def _affine(arg: Expr, p: Sym) -> tuple[Expr | None, Expr | None] | None:
    """(A, y) with arg = +-(A @ p - y) (sqnorm is even), A None for p itself, y None for 0;
    None when arg is not of that form with A and y free of p."""
    if arg == p:
        return None, None
    if isinstance(arg, Op) and arg.op == "matmul" and arg.args[1] == p \
            and p not in symbols(arg.args[0]) and arg.args[0].type.kind == "matrix":
        return arg.args[0], None
    if isinstance(arg, Op) and arg.op in ("add", "sub"):
        lhs, rhs = arg.args
        for inner, off in ((lhs, rhs), (rhs, lhs)):
            if p in symbols(off):
                continue
            got = _affine(inner, p)
            if got is None or got[1] is not None:
                continue
            # A p + off = A p - (-off); A p - off and off - A p = -(A p - off) share y = off
            return got[0], node("neg", off) if arg.op == "add" else off
    return None


def _as_quad(coef: Expr, atom: Op, p: Sym) -> _Quad | None:
    if atom.op != "sqnorm":
        return None
    got = _affine(atom.args[0], p)
    return _Quad(coef, *got) if got is not None else None


def resolve_prox(c: Expr, g_body: Expr, p: Sym, v: Expr) -> Expr:
    """The IR of prox_{c g}(v), where g's body is written in its parameter `p`."""
    parts = [(sign, *_split(t, p)) for sign, t in additive_terms(g_body) if p in symbols(t)]
    if any(sign < 0 for sign, _, _ in parts):
        raise ProxError("a term enters with a minus sign: g must be a sum of convex terms")
    if not parts:
        return v
    quads = [q for q in (_as_quad(coef, atom, p) for _, coef, atom in parts) if q is not None]
    rest = [(coef, atom) for _, coef, atom in parts if _as_quad(coef, atom, p) is None]
    if quads:
        return _with_quadratics(c, quads, rest, p, v)
    found = _translation(g_body, p)
    if found is not None:  # prox of h(p - d) at v is d + prox_h(v - d)
        shift, nodes = found
        inner = substitute(g_body, nodes)
        return node("add", shift, resolve_prox(c, inner, p, node("sub", v, shift)))
    if len(parts) == 1:
        _, coef, atom = parts[0]
        return _single(atom, mul(c, coef), v, p)
    return _separable_with_set(parts, c, v, p)


def _with_quadratics(c: Expr, quads: list[_Quad], rest, p: Sym, v: Expr) -> Expr:
    """Complete the square: sum_i b_i ||p - y_i||^2 = B ||p||^2 - 2 <p, sum_i b_i y_i> + const,
    so the quadratics rescale the point and the weight; a least-squares term makes it a solve."""
    plain = [q for q in quads if q.a is None]
    ls = [q for q in quads if q.a is not None]
    if len(ls) > 1:
        raise ProxError("more than one least-squares term `sqnorm(A @ p - y)`")
    if ls and rest:
        names = ", ".join(f"`{a.op}`" for _, a in rest)
        raise ProxError(f"no closed form for a least-squares term `sqnorm(A @ p - y)` plus "
                        f"{names}; split g and take the prox of each part in turn (e.g. "
                        f"Douglas-Rachford)")
    # 2 c b_i with the numbers folded first, so 0.5 * sqnorm(p - y) reads (v + c * y) / (1 + c)
    big_b = _sum([mul(Const(2.0), q.coef) for q in plain])
    pull = _sum([mul(mul(Const(2.0), q.coef), q.y) for q in plain if q.y is not None])
    scale = node("add", Const(1.0), mul(c, big_b)) if big_b is not None else Const(1.0)
    rhs = v if pull is None else node("add", v, mul(c, pull))
    if ls:
        (q,) = ls
        if q.y is not None and q.y.type.kind == "scalar":
            raise ProxError("the offset of a least-squares term `sqnorm(A @ p - y)` must be a "
                            "vector or matrix, found a scalar")
        k = mul(c, mul(Const(2.0), q.coef))
        at = q.a.type
        gram = node("matmul", node("transpose", q.a), q.a)
        eye = Op("eye", (dim_value(at.dims[1]),), matrix(at.dims[1], at.dims[1]))
        system = node("add", eye if scale == Const(1.0) else mul(scale, eye), mul(k, gram))
        if q.y is not None:
            rhs = node("add", rhs, mul(k, node("matmul", node("transpose", q.a), q.y)))
        return node("solve", system, rhs)
    point = rhs if scale == Const(1.0) else node("div", rhs, scale)
    if not rest:
        return point
    return resolve_prox(node("div", c, scale) if scale != Const(1.0) else c, _rebuild(rest), p,
                        point)


def _sum(xs: list[Expr]) -> Expr | None:
    out = None
    for x in xs:
        out = x if out is None else node("add", out, x)
    return out


def _translation(body: Expr, p: Sym) -> tuple[Expr, dict[Expr, Expr]] | None:
    """(d, {each `p - d`, `p + e`, `e + p` node: p}) when p occurs in `body` only translated by
    one d free of p (d = -e for a sum); None otherwise."""
    found: dict[Expr, Expr] = {}  # node -> its shift
    for n in walk(body):
        if not isinstance(n, Op) or n.op not in ("add", "sub"):
            continue
        a, b = n.args
        if a == p and p not in symbols(b):
            found[n] = b if n.op == "sub" else node("neg", b)
        elif n.op == "add" and b == p and p not in symbols(a):
            found[n] = node("neg", a)
    if len(set(found.values())) != 1:
        return None
    nodes = dict.fromkeys(found, p)
    if p in symbols(substitute(body, dict.fromkeys(found, Const(0.0)))):
        return None  # p also occurs untranslated
    return next(iter(found.values())), nodes


def _rebuild(terms) -> Expr:
    out = None
    for coef, atom in terms:
        t = mul(coef, atom)
        out = t if out is None else node("add", out, t)
    return out


def _separable_with_set(parts, c: Expr, v: Expr, p: Sym) -> Expr:
    sets = [(coef, a) for _, coef, a in parts if a.op in _SEPARABLE_SETS]
    fns = [(coef, a) for _, coef, a in parts if a.op in _SEPARABLE_FNS]
    if len(sets) != 1 or len(fns) != 1 or len(parts) != 2:
        names = ", ".join(f"`{a.op}`" for _, _, a in parts)
        raise ProxError(f"no closed form for the sum of {names}")
    coef, atom = fns[0]
    inner = _single(atom, mul(c, coef), v, p)
    return _single(sets[0][1], Const(1.0), inner, p)
