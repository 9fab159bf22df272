"""Which textbook theorem covers a layer: the structure of the updates, not their spelling.

The layer is first put in a *prox-linear normal form*: every proximal map applied to a
state-dependent argument becomes a pseudo-state `u_i = P_i(E_i)`, and every new state value is
then linearized (analyze.py) over the layer-start states and the pseudo-states:

    s_new = sum_j A_j s_j + sum_i B_i u_i + (input terms) + c,     u_i = P_i(E_i)

Whatever is not affine in that form (products of two state-dependent values, an operator that is
not a proximal map) has no normal form and no theorem here. The families recognized on it:

    forward-backward   one state, s_new = P(E) or E, E = s - a G s + r (G structurally PSD):
                       0 < a lambda_max(G) < 2 (Combettes-Wajs 2005, Thm 3.4; Baillon-Haddad),
                       with a minimizer (r in range(G), or a coercive regularizer)
    accelerated        two states, s_new = P(z - a G z + r), z_new = s_new + beta (s_new - s) with
                       beta = (t - 1) / t_new for a schedule state t: 0 < a lambda_max(G) <= 1 and
                       t_new^2 - t_new <= t^2, t >= 1 (Beck-Teboulle 2009; Chambolle-Dossal 2015)
    linear             every update affine in the states, each block c0 I + c1 G for one symmetric
                       PSD G: per eigenvalue lambda of G a small matrix M(lambda); the iteration
                       converges iff every M(lambda) has spectral radius < 1 (Polyak 1964 for heavy
                       ball, Lessard-Recht-Packard 2016 for Nesterov on quadratics)
    relaxation         a state moved by a common scalar lam times a displacement with numeric
                       coefficients, s_new = s + lam (T s - s): 0 < lam < 2 (Krasnosel'skii-Mann;
                       Eckstein-Bertsekas 1992)
    primal-dual        p_new = P1(p + sigma K v), x_new = P2(x - tau K^T w), xbar = x_new +
                       theta (x_new - x): tau, sigma > 0, tau sigma ||K||^2 < 1, theta in [0, 1],
                       certified for theta = 1 (Chambolle-Pock 2011, Thm 1)

Each returns `Match`es: conditions to add (by kind) and, when the theorem certifies convergence,
the keys of the conditions that must hold on every layer for the certificate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from unfoldc.convergence.analyze import Affine, Analyzer, _row_dim
from unfoldc.convergence.linear import (
    ONE,
    ZERO,
    Lin,
    has_linop,
    is_zero,
    lin_of_matrix,
    mono_psd,
    mono_transpose,
    psd_shift,
    ratio_number,
    simplify,
    to_sympy,
)
from unfoldc.ir import fold
from unfoldc.ir.expr import Const, Expr, Op, Sym, symbols
from unfoldc.ir.program import Program
from unfoldc.ops import OPS

# Proximal maps of closed convex functions (firmly nonexpansive), and those whose function is
# coercive for a positive threshold or the indicator of a bounded set: the operator table's facts.
PROX_OPS = frozenset(name for name, d in OPS.items() if d.lipschitz.kind == "prox")
COERCIVE = frozenset(n for n in PROX_OPS if OPS[n].lipschitz.minimizer == "threshold")
BOUNDED_SET = frozenset(n for n in PROX_OPS if OPS[n].lipschitz.minimizer == "bounded")


MAX_STATES = 8  # families relate every pair of states (k x k blocks); textbook layers have <= 3


@dataclass(frozen=True)
class Pseudo:
    """`name` = op(arg, *params): a proximal map of a state-dependent argument."""

    name: str
    op: str
    arg: Affine
    params: tuple[Expr, ...]
    expr: Expr


@dataclass
class NormalForm:
    states: list[str]
    pseudo: list[Pseudo]
    updates: dict[str, Affine]  # new value of each state over states + pseudo-states
    lines: dict[str, int]
    schedule: dict[str, Expr]  # schedule state -> its update (layer-start values)
    types: dict = field(default_factory=dict)  # state -> its type


@dataclass
class Match:
    """One theorem that applies to the layer's structure."""

    name: str
    theorem: str
    line: int
    conditions: list[tuple] = field(default_factory=list)  # (kind, lhs, op, rhs, note)
    certifies: bool = True  # False: conditions only (necessary), no convergence claim
    extra: dict = field(default_factory=dict)


def normal_form(program: Program) -> NormalForm | None:
    """The prox-linear normal form of one layer, or None when the layer has none."""
    an = Analyzer(program)
    states = [s for s in an.state_syms if s not in an.schedule]
    if not states or len(states) > MAX_STATES:
        return None
    body = an._inlined_body()
    final: dict[str, Expr] = {}
    lines: dict[str, int] = {}
    for a, v in body:
        if a.kind != "temp" and a.target in states:
            final[a.target], lines[a.target] = v, a.line
    stateful = set(states)
    pseudo: dict[Expr, Pseudo] = {}

    def abstract(e: Expr) -> Expr:
        if not isinstance(e, Op):
            return e
        e = Op(e.op, tuple(abstract(x) for x in e.args), e.type)
        moving = stateful | {p.name for p in pseudo.values()}
        if e.op in PROX_OPS and _reads_any(e.args[0], moving):
            if any(_reads_any(x, moving) for x in e.args[1:]):
                raise _NoForm  # a threshold that moves with the state: not one fixed prox
            if e not in pseudo:
                name = f"__u{len(pseudo)}"
                lin = _linearize(program, an, e.args[0], states, list(pseudo.values()))
                if lin is None:
                    raise _NoForm
                pseudo[e] = Pseudo(name, e.op, lin, e.args[1:], e)
            return Sym(pseudo[e].name, e.type, "state")
        return e

    try:
        abstracted = {s: abstract(final[s]) for s in states if s in final}
        updates = {}
        for s, e in abstracted.items():
            lin = _linearize(program, an, e, states, list(pseudo.values()))
            if lin is None:
                return None
            updates[s] = lin
    except _NoForm:
        return None
    if set(updates) != set(states):
        return None
    sched = {a.target: v for a, v in body if a.kind != "temp" and a.target in an.schedule}
    types = {s: an.state_syms[s].type for s in states}
    return NormalForm(states, list(pseudo.values()), updates, lines, sched, types)


class _NoForm(Exception):
    pass


def _reads_any(e: Expr, names: set[str]) -> bool:
    return any(s.name in names and s.role == "state" for s in symbols(e))


def _linearize(program, an0, e: Expr, states, pseudo) -> Affine | None:
    """`e` as an exact Affine over the states and pseudo-states (None if not affine)."""
    an = Analyzer(program, an0.schedule)  # one linearization: no schedule search again
    for s in states:
        sym = an.state_syms[s]
        an.env[s] = Affine({s: Lin.identity(_row_dim(sym.type))}, Sym(s, sym.type, "state"))
    for t in an0.schedule:
        sym = an.state_syms[t]
        an.env[t] = Affine({}, Sym(t, sym.type, "state"))
    for p in pseudo:
        t = p.expr.type
        an.env[p.name] = Affine({p.name: Lin.identity(_row_dim(t))}, Sym(p.name, t, "state"))
    an.layer.states = list(states) + [p.name for p in pseudo]
    v = an.visit(e, 0)
    if not isinstance(v, Affine):
        return None
    return v


# ---- structure helpers --------------------------------------------------------------------------
def state_blocks(v: Affine, names) -> dict[str, Lin]:
    return {k: lin.simplified() for k, lin in v.blocks.items() if k in names}


def is_scaled_identity(lin: Lin, c: Expr | None = None) -> bool:
    """lin = c I (any c when c is None)."""
    if not lin.identity_only or len(lin.terms) > 1:
        return False
    if c is None:
        return True
    have = lin.coef(())
    return sympy.simplify(to_sympy(have) - to_sympy(c)) == 0


def gradient_step(j: Lin) -> tuple[Expr, Lin] | None:
    """J = I - a G with G a positive combination of structurally PSD products (an identity
    term included: a ridge term c I): (a, G), else None."""
    d = (Lin.identity(j.dim) + (-j)).simplified()
    terms = [(m, c) for m, c in d.terms if not is_zero(c)]
    if not terms:
        return None
    terms.sort(key=lambda t: t[0] == ())  # prefer a non-identity term's coefficient as `a`
    a = simplify(terms[0][1])
    g = []
    for m, c in terms:
        r = ratio_number(c, a)
        if r is None or not r > 0 or not mono_psd(m) or m != mono_transpose(m):
            return None
        g.append((m, Const(float(r))))
    return a, Lin(tuple(g), d.dim)


def offset_in_range(v: Affine, g: Lin, inputs: set[str], variables: set[str]) -> bool:
    """Whether the state-free part of `v` lies in range(G), structurally.

    Input terms must start with the left factor B.T of G = B.T @ ... @ B, and the value must
    have no constant (state- and input-free) term.
    """
    if any(m == () for m, _ in g.terms):
        return True  # G has a positive identity term: positive definite, range(G) is all
    if v.opaque or has_constant(v.expr, variables | inputs):
        return False
    lefts = {m[0] for m, _ in g.terms if m}
    if len(lefts) != 1:
        return False
    (left,) = lefts
    for k, lin in v.blocks.items():
        if k in inputs and any(not m or m[0] != left for m, c in lin.simplified().terms):
            return False
    return True


def has_constant(e: Expr, variables: set[str]) -> bool:  # noqa: C901 - one case per operator
    """Conservatively: whether the affine expression `e` may have a nonzero constant term."""
    if isinstance(e, Const):
        return e.value != 0
    if isinstance(e, Sym):
        return e.name not in variables or e.role not in ("state", "input")
    reads = {s.name for s in symbols(e) if s.role in ("state", "input")} & variables
    if not reads:
        return not (isinstance(e, Op) and e.op == "mul" and any(
            isinstance(a, Const) and a.value == 0 for a in e.args))
    if e.op in ("add", "sub"):
        return any(has_constant(a, variables) for a in e.args)
    if e.op == "neg" or e.op == "transpose":
        return has_constant(e.args[0], variables)
    if e.op in ("mul", "matmul"):
        a, b = e.args
        var_a = bool({s.name for s in symbols(a)} & variables)
        var_b = bool({s.name for s in symbols(b)} & variables)
        if var_a and var_b:
            return True
        return has_constant(a if var_a else b, variables)
    if e.op == "div":
        return has_constant(e.args[0], variables)
    if e.op == "solve":
        return has_constant(e.args[1], variables)
    return True


# ---- the families -------------------------------------------------------------------------------
def forward_backward(nf: NormalForm, inputs: set[str]) -> Match | None:
    """One state: s_new = P(s - a G s + r) or s - a G s + r."""
    if len(nf.states) != 1:
        return None
    (s,) = nf.states
    upd = nf.updates[s]
    blocks = state_blocks(upd, {s} | {p.name for p in nf.pseudo})
    prox = None
    if len(nf.pseudo) == 1 and set(blocks) == {nf.pseudo[0].name} and \
            is_scaled_identity(blocks[nf.pseudo[0].name], ONE) and not _other(upd, blocks):
        prox = nf.pseudo[0]
        step = prox.arg
    elif not nf.pseudo:
        step = upd
    else:
        return None
    sb = state_blocks(step, {s})
    if set(sb) != {s} or any(k not in inputs and k != s for k in step.blocks):
        return None
    split = gradient_step(sb[s])
    if split is None:
        return None
    a, g = split
    line = nf.lines[s]
    m = Match("forward-backward" if prox else "gradient descent",
              "forward-backward splitting converges to a minimizer for 0 < a < 2/L "
              "(Combettes-Wajs 2005, Thm 3.4; Baillon-Haddad)" if prox else
              "gradient descent on a convex quadratic converges for 0 < a < 2/L", line,
              extra={"step": a, "gram": g})
    m.conditions += [("step", a, ">", ZERO, "step size positive"),
                     ("step", a, "<", ("lambda", g, 2.0), "step size below 2/L")]
    if not offset_in_range(step, g, inputs, {s}):  # else the smooth part is bounded below
        _existence(m, [prox] if prox is not None else [])
    return m


def _other(upd: Affine, blocks) -> bool:
    """Terms besides the named blocks (inputs, constants)."""
    return bool(set(upd.blocks) - set(blocks)) or upd.opaque


def accelerated(nf: NormalForm, inputs: set[str]) -> Match | None:
    """s_new = P(z - a G z + r); z_new = s_new + beta (s_new - s), beta from a t-sequence."""
    if len(nf.states) != 2 or len(nf.pseudo) > 1:
        return None
    for s, z in (nf.states, nf.states[::-1]):
        got = _accelerated(nf, inputs, s, z)
        if got is not None:
            return got
    return None


def _accelerated(nf, inputs, s, z) -> Match | None:
    names = {s, z} | {p.name for p in nf.pseudo}
    if nf.pseudo:
        u = nf.pseudo[0]
        step, new = u.arg, u.name
        bs = state_blocks(nf.updates[s], names)
        if set(bs) != {new} or not is_scaled_identity(bs[new], ONE) or _other(nf.updates[s], bs):
            return None
    else:
        return None  # without a prox the layer is linear: the `linear` family judges it
    sb = state_blocks(step, {s, z})
    if set(sb) != {z} or any(k not in inputs and k not in (s, z) for k in step.blocks):
        return None
    split = gradient_step(sb[z])
    if split is None:
        return None
    a, g = split
    bz = state_blocks(nf.updates[z], names)
    if set(bz) != {new, s} or _other(nf.updates[z], bz) or not all(
            is_scaled_identity(x) for x in bz.values()):
        return None
    beta = simplify(fold.neg(bz[s].coef(())))
    if sympy.simplify(to_sympy(bz[new].coef(())) - 1 - to_sympy(beta)) != 0:
        return None
    line = max(nf.lines[s], nf.lines[z])
    m = Match("accelerated proximal gradient",
              "FISTA: 0 < a <= 1/L and beta_k = (t_k - 1)/t_(k+1) with t_1 >= 1, "
              "t_(k+1)^2 - t_(k+1) <= t_k^2 give F(s_k) - F* = O(1/t_k^2) and bounded iterates "
              "(Beck-Teboulle 2009; Chambolle-Dossal 2015)", line,
              extra={"step": a, "gram": g, "beta": beta})
    m.conditions += [("step", a, ">", ZERO, "step size positive"),
                     ("momentum_step", a, "<=", ("lambda", g, 1.0),
                      "accelerated step at most 1/L")]
    t = _t_sequence(nf, beta)
    if t is None:
        m.certifies = False
        m.extra["why"] = ("its momentum coefficient is not (t - 1)/t_new for a schedule state "
                          "t: no theorem for this momentum")
        return m
    tsym, tnew = t
    m.conditions += [("schedule", tsym, ">=", ONE, "momentum sequence t >= 1"),
                     ("schedule", Op("sub", (Op("mul", (tnew, tnew), tnew.type), tnew),
                                     tnew.type), "<=", Op("mul", (tsym, tsym), tsym.type),
                      "FISTA condition t_new^2 - t_new <= t^2")]
    if not offset_in_range(step, g, inputs, {s, z}):
        _existence(m, [u])
    return m


def _t_sequence(nf: NormalForm, beta: Expr):
    for t, tnew in nf.schedule.items():
        tsym = next((x for x in symbols(tnew) if x.name == t), None)
        if tsym is None or tsym.type.kind != "scalar":
            continue
        want = Op("div", (Op("sub", (tsym, ONE), tsym.type), tnew), tsym.type)
        if sympy.simplify(to_sympy(beta) - to_sympy(want)) == 0:
            return tsym, tnew
    return None


def linear(nf: NormalForm, inputs: set[str]) -> Match | None:
    """Every update affine in the states; every block c0 I + c1 G for one symmetric PSD G."""
    if nf.pseudo or len({nf.types[s] for s in nf.states}) > 1:
        return None
    gram = None
    coef: dict[tuple[str, str], tuple[Expr, Expr]] = {}
    for i in nf.states:
        upd = nf.updates[i]
        if any(k not in inputs and k not in nf.states for k in upd.blocks):
            return None
        for j in nf.states:
            lin = upd.blocks.get(j)
            lin = lin.simplified() if lin is not None else Lin((), None)
            c0, c1 = ZERO, ZERO
            for mono, c in lin.terms:
                if mono == ():
                    c0 = fold.add(c0, c)
                    continue
                if mono != mono_transpose(mono) or not mono_psd(mono) or has_linop(mono):
                    return None  # an abstract operator has no eigenvalues to evaluate
                if gram is None:
                    gram = mono
                elif mono != gram:
                    return None
                c1 = fold.add(c1, c)
            coef[i, j] = (simplify(c0), simplify(c1))
    polyak = _heavy_ball(nf, coef) if gram is not None else None
    in_range = gram is not None and all(
        offset_in_range(nf.updates[s], Lin(((gram, ONE),), None), inputs, set(nf.states))
        for s in nf.states)
    line = max(nf.lines.values())
    m = Match("linear iteration",
              "a linear iteration x <- J x + c with every block c0 I + c1 G (G symmetric) "
              "converges iff each M(lambda) = C0 + C1 lambda over G's eigenvalues has spectral "
              "radius < 1 (on null(G) one eigenvalue 1 is allowed when c is in range(G)) "
              "(Polyak 1964; Lessard-Recht-Packard 2016)", line,
              extra={"coef": coef, "gram": gram, "in_range": in_range,
                     "shared": _shared_fixed_point(nf, coef, inputs)})
    if polyak is not None:
        alpha, beta = polyak
        g = Lin(((gram, ONE),), None)
        two = Op("mul", (Const(2.0), Op("add", (ONE, beta), beta.type)), beta.type)
        m.extra["polyak"] = [
            ("momentum", beta, ">", Const(-1.0), "heavy-ball momentum |beta| < 1"),
            ("momentum", beta, "<", ONE, "heavy-ball momentum |beta| < 1"),
            ("step", alpha, ">", ZERO, "step size positive"),
            ("momentum", alpha, "<", ("lambda_div", g, two),
             "heavy-ball step alpha < 2 (1 + beta) / L")]
    return m


def _heavy_ball(nf: NormalForm, coef):
    """(alpha, beta) when the layer is s_new = s - alpha G s + beta (s - s_prev) + r,
    s_prev_new = s (Polyak's heavy ball)."""
    if len(nf.states) != 2:
        return None
    for s, sp in (nf.states, nf.states[::-1]):
        (a0, a1), (b0, b1) = coef[s, s], coef[s, sp]
        (c0, c1), (d0, d1) = coef[sp, s], coef[sp, sp]
        if not (is_zero(c1) and is_zero(b1) and is_zero(d0) and is_zero(d1)
                and is_zero(fold.add(c0, fold.neg(ONE)))):
            continue
        beta = simplify(fold.neg(b0))
        if not is_zero(fold.add(a0, fold.neg(fold.add(ONE, beta)))) or is_zero(a1):
            continue
        return simplify(fold.neg(a1)), beta
    return None


def _shared_fixed_point(nf: NormalForm, coef, inputs) -> bool:
    """Whether every layer has the same fixed points: I - J and the input terms are one
    layer-varying scalar times layer-invariant parts (DU-GD: a_k (G s - H^T x))."""
    parts = []
    for (i, j), (c0, c1) in coef.items():
        parts.append(fold.add(c0, fold.neg(ONE)) if i == j else c0)
        parts.append(c1)
    for s in nf.states:
        upd = nf.updates[s]
        if upd.opaque or has_constant(upd.expr, set(nf.states) | inputs):
            return False
        for k, lin in upd.blocks.items():
            if k in inputs:
                parts += [c for _, c in lin.simplified().terms]
    parts = [p for p in parts if not is_zero(p)]
    if not parts:
        return False
    pivot = parts[0]
    return all(_layer_free(sympy.simplify(to_sympy(p) / to_sympy(pivot))) for p in parts)


def _layer_free(q: sympy.Expr) -> bool:
    """A ratio that cannot change from layer to layer: a number (conservative)."""
    return q.is_number and q.is_finite and q != 0


def joint_forward_backward(nf: NormalForm, inputs: set[str]) -> Match | None:
    """Several states, each s_i_new = P_i(E_i), E = s - a (R kron I) s + r with R a numeric
    symmetric PSD matrix (robust PCA: R = [[1, 1], [1, 1]])."""
    if len(nf.states) < 2 or len(nf.pseudo) != len(nf.states):
        return None
    own = {}
    for s in nf.states:
        u = next((p for p in nf.pseudo if _is_output(nf, s, p)), None)
        if u is None or u in own.values():
            return None
        own[s] = u
    entries = {}
    for i in nf.states:
        arg = own[i].arg
        if any(k not in inputs and k not in nf.states for k in arg.blocks):
            return None
        for j in nf.states:
            lin = arg.blocks.get(j)
            lin = lin.simplified() if lin is not None else Lin((), None)
            if lin.terms and not is_scaled_identity(lin):
                return None
            entries[i, j] = fold.add(ONE if i == j else ZERO, fold.neg(lin.coef(())))
    nonzero = [c for c in entries.values() if not is_zero(c)]
    if not nonzero:
        return None
    a = simplify(nonzero[0])
    ratios = [[ratio_number(entries[i, j], a) if not is_zero(entries[i, j]) else 0
               for j in nf.states] for i in nf.states]
    if any(r is None for row in ratios for r in row):
        return None
    g = sympy.Matrix(ratios)
    if g != g.T or any(ev < 0 for ev in g.eigenvals()):
        return None
    lam = float(max(g.eigenvals()))
    line = max(nf.lines.values())
    m = Match("joint forward-backward", "forward-backward splitting on the product space "
              "(G = R kron I) converges to a minimizer for 0 < a lambda_max(R) < 2 "
              "(Combettes-Wajs 2005, Thm 3.4)", line)
    m.conditions += [("step", a, ">", ZERO, "step size positive"),
                     ("step", Op("mul", (a, Const(lam)), a.type), "<", Const(2.0),
                      "step size below 2/L")]
    _existence(m, list(own.values()))
    return m


def _existence(m: Match, proxes) -> None:
    """A minimizer exists when every state passes a coercive prox (t > 0) or a bounded set."""
    if not proxes or not all(p.op in COERCIVE | BOUNDED_SET for p in proxes):
        m.certifies = False
        m.extra["why"] = "the objective may have no minimizer (a regularizer that is not coercive)"
        return
    for p in proxes:
        if p.op in COERCIVE:
            m.conditions.append(("coercive", p.params[0], ">", ZERO,
                                 f"{p.op} threshold positive: the objective is coercive"))


def admm(nf: NormalForm, inputs: set[str]) -> Match | None:
    """Scaled ADMM for s = z, optionally over-relaxed (alpha):

        x = alpha S + (1 - alpha) z,  S = inv(P + b I) (q + b (z - u)),
        z_new = P_g(x + u),           u_new = u + x - z_new
    """
    if len(nf.states) != 2 or len(nf.pseudo) != 1:
        return None
    w = nf.pseudo[0]
    for z, u in (nf.states, nf.states[::-1]):
        if not _is_output(nf, z, w):
            continue
        arg = {k: b.simplified() for k, b in w.arg.blocks.items()}
        new_u = {k: b.simplified() for k, b in nf.updates[u].blocks.items()}
        if w.arg.opaque or nf.updates[u].opaque:
            continue
        # u_new = (x + u) - z_new: the same blocks as the prox argument, minus the output
        keys = set(arg) | set(new_u)
        diff_ok = all(not (new_u.get(k, Lin((), None)) + -arg.get(k, Lin((), None)) + (
            Lin.identity(None) if k == w.name else Lin((), None))).simplified().terms
            for k in keys)
        if not diff_ok or u not in arg or z not in arg:
            continue
        xu = (arg[u] + -Lin.identity(arg[u].dim)).simplified()
        xz = arg[z]
        if len(xu.terms) != 1 or len(xu.terms[0][0]) != 1:
            continue
        (inv,), c = xu.terms[0]
        if not (isinstance(inv, Op) and inv.op == "inv"):
            continue
        b = psd_shift(inv.args[0], xu.dim)
        if b is None:
            continue
        alpha = simplify(Op("div", (fold.neg(c), b), b.type))
        rest_z = (xz + xu).simplified()  # (1 - alpha) I
        if rest_z.terms and not is_scaled_identity(rest_z):
            continue
        if sympy.simplify(to_sympy(rest_z.coef(())) - (1 - to_sympy(alpha))) != 0:
            continue
        m = Match("ADMM", "scaled ADMM converges for any penalty b > 0 and relaxation "
                  "0 < alpha < 2 (Boyd et al. 2011, Sec. 3.2; Eckstein-Bertsekas 1992)",
                  max(nf.lines.values()))
        m.conditions.append(("penalty", b, ">", ZERO, "penalty positive"))
        if sympy.simplify(to_sympy(alpha) - 1) != 0:
            m.conditions += [("relaxation", alpha, ">", ZERO, "relaxation factor"),
                             ("relaxation", alpha, "<", Const(2.0), "relaxation factor")]
        _existence(m, [w])
        return m
    return None


def douglas_rachford(nf: NormalForm, inputs: set[str]) -> Match | None:
    """z_new = z + lam (w - s), s = R1(z), w = P2(2 s - z); R1 a prox of z or an affine
    resolvent inv(I + g P) (z + ...) with P PSD."""
    if len(nf.states) != 1 or not 1 <= len(nf.pseudo) <= 2:
        return None
    (z,) = nf.states
    upd = {k: b.simplified() for k, b in nf.updates[z].blocks.items()}
    for w in nf.pseudo:
        if w.name not in upd or not is_scaled_identity(upd[w.name]):
            continue
        lam = simplify(upd[w.name].coef(()))
        arg = {k: b.simplified() for k, b in w.arg.blocks.items()}
        others = [p for p in nf.pseudo if p is not w]
        if others:  # s = P1(z): z_new = z + lam w - lam u1, w = P2(2 u1 - z)
            u1 = others[0]
            u1_arg = {k: b.simplified() for k, b in u1.arg.blocks.items()}
            ok = (set(u1_arg) == {z} and is_scaled_identity(u1_arg[z], ONE)
                  and set(arg) == {u1.name, z} and is_scaled_identity(arg[u1.name], Const(2.0))
                  and is_scaled_identity(arg[z], Const(-1.0))
                  and set(upd) == {z, w.name, u1.name} and is_scaled_identity(upd[z], ONE)
                  and is_scaled_identity(upd[u1.name], fold.neg(lam)))
            gamma = None
            proxes = [u1, w]
        else:  # s = inv(I + g P) (z + g q): affine in z
            sz = arg.get(z)
            if sz is None or set(upd) - {z, w.name} - inputs:
                continue
            # z_new's z-block is I - lam S_z; w's argument is 2 S_z - I (and 2 S's inputs)
            s_z = (Lin.identity(sz.dim) + -upd.get(z, Lin((), sz.dim))).simplified()
            if not s_z.terms:
                continue
            s_z = s_z.scale(Op("div", (ONE, lam), lam.type)).simplified()
            want = (s_z.scale(Const(2.0)) + -Lin.identity(sz.dim)).simplified()
            if (want + -sz).simplified().terms:
                continue
            gamma = _resolvent_gamma(s_z)
            ok = gamma is not None
            proxes = [w]
        if not ok:
            continue
        m = Match("Douglas-Rachford", "Douglas-Rachford z + lam (P2(2 s - z) - s), s = P1(z), "
                  "converges for 0 < lam < 2 and any prox parameter > 0 (Lions-Mercier 1979; "
                  "Bauschke-Combettes 2017, Thm 26.11)", nf.lines[z])
        m.conditions += [("relaxation", lam, ">", ZERO, "relaxation factor"),
                         ("relaxation", lam, "<", Const(2.0), "relaxation factor")]
        if gamma is not None and not to_sympy(gamma).is_number:
            m.conditions.append(("penalty", gamma, ">", ZERO, "prox parameter positive"))
        _existence(m, [p for p in proxes])
        return m
    return None


def _resolvent_gamma(s_z: Lin) -> Expr | None:
    """g when S = inv(I + g P) with P structurally PSD (a single inverse term)."""
    if len(s_z.terms) != 1 or len(s_z.terms[0][0]) != 1 or not is_zero(
            fold.add(s_z.terms[0][1], fold.neg(ONE))):
        return None
    inv = s_z.terms[0][0][0]
    if not (isinstance(inv, Op) and inv.op == "inv"):
        return None
    system = lin_of_matrix(inv.args[0], s_z.dim)
    if system is None:
        return None
    system = system.simplified()
    rest = [(mm, k) for mm, k in system.terms if mm != ()]
    if not is_zero(fold.add(system.coef(()), fold.neg(ONE))) or len(rest) != 1:
        return None
    mono, g = rest[0]
    return g if mono_psd(mono) else None


def relaxations(nf: NormalForm) -> list[Match]:
    """s_new = s + lam * (T s - s), T built from proximal maps with numeric weights: lam.

    Only displacements made of scaled identities of the state and of prox outputs count
    (Douglas-Rachford's `z + lam (w - s)`); a gradient step `s - a G s` is not a relaxation.
    """
    out = []
    pseudo = {p.name for p in nf.pseudo}
    for s in nf.states:
        upd = nf.updates[s]
        blocks = {k: lin.simplified() for k, lin in upd.blocks.items()}
        if not set(blocks) & pseudo or _other(upd, {k: b for k, b in blocks.items()
                                                     if k in pseudo or k == s}):
            continue
        if any(not is_scaled_identity(b) for b in blocks.values() if b.terms):
            continue
        coefs = [fold.add(blocks[s].coef(()), fold.neg(ONE)) if s in blocks else fold.neg(ONE)]
        coefs += [b.coef(()) for k, b in blocks.items() if k != s]
        coefs = [c for c in coefs if not is_zero(c)]
        if len(coefs) < 2 or all(to_sympy(c).is_number for c in coefs):
            continue
        lam = _common_factor(coefs)
        if lam is None:
            continue
        out.append(Match("relaxation", "Krasnosel'skii-Mann: s + lam (T s - s) with T firmly "
                         "nonexpansive converges for 0 < lam < 2 (Eckstein-Bertsekas 1992)",
                         nf.lines[s], [("relaxation", lam, ">", ZERO, "relaxation factor"),
                                       ("relaxation", lam, "<", Const(2.0),
                                        "relaxation factor")], certifies=False))
    return out


def _common_factor(coefs: list[Expr]) -> Expr | None:
    """lam with every coefficient a numeric multiple of lam, and lam not a number."""
    for cand in coefs:
        sc = to_sympy(cand)
        if sc.is_number:
            continue
        if isinstance(sc, sympy.Mul):  # -lam -> lam
            num, rest = sc.as_coeff_Mul()
            if num.is_number and num < 0:
                cand = simplify(fold.neg(cand))
        if all(ratio_number(c, cand) is not None for c in coefs):
            return simplify(cand)
    return None


def primal_dual(nf: NormalForm, inputs: set[str]) -> Match | None:
    """Chambolle-Pock: a dual prox step with K, a primal step with -K^T (a prox, or the
    resolvent s0 (x - tau K^T y) + ... of a convex quadratic), then over-relaxation."""
    dual, d0 = None, None
    for dual in nf.pseudo:
        found = _cp_steps(nf, dual, inputs)
        if found is not None:
            break
    else:
        found = _cp_affine_dual(nf, inputs)
        if found is None:
            return None
        dual, d0 = None, found[-1]
        found = found[:-1]
    sigma, tau, kmat, x, v, primal, s0 = found
    theta = ZERO if v == x else _extrapolation(nf, x, v)
    # A saddle point exists when the dual is a projection onto a bounded set, or the primal
    # function is coercive (a coercive prox, or a strongly convex quadratic: s0 < 1).
    bounded_dual = dual is not None and dual.op in BOUNDED_SET
    saddle = bounded_dual or (primal is not None and primal.op in COERCIVE | BOUNDED_SET) \
        or s0 is not None
    m = Match("primal-dual", "Chambolle-Pock: tau, sigma > 0 and tau sigma ||K||^2 < 1 with "
              "theta = 1 converge (Chambolle-Pock 2011, Thm 1)", max(nf.lines.values()))
    kk = Lin(((mono_transpose(kmat) + kmat, ONE),), None)
    m.conditions += [("primal_dual", tau, ">", ZERO, "primal step tau positive"),
                     ("primal_dual", sigma, ">", ZERO, "dual step sigma positive"),
                     ("primal_dual", Op("mul", (tau, sigma), tau.type), "<", ("lambda", kk, 1.0),
                      "tau sigma ||K||^2 < 1")]
    if s0 is not None:
        m.conditions += [("primal_dual", s0, ">", ZERO, "primal resolvent factor in (0, 1]"),
                         ("primal_dual", s0, "<=", ONE, "primal resolvent factor in (0, 1]")]
        if not bounded_dual:  # then existence rests on strong convexity: s0 < 1
            m.conditions.append(("coercive", s0, "<", ONE, "primal quadratic strongly convex"))
    if d0 is not None:  # the dual step is the resolvent of a convex quadratic f*
        m.conditions += [("primal_dual", d0, ">", ZERO, "dual resolvent factor in (0, 1]"),
                         ("primal_dual", d0, "<=", ONE, "dual resolvent factor in (0, 1]")]
    if primal is not None and primal.op in COERCIVE and not bounded_dual and s0 is None:
        m.conditions.append(("coercive", primal.params[0], ">", ZERO,
                             f"{primal.op} threshold positive: a saddle point exists"))
    if theta is None or not saddle:
        m.certifies = False
        m.extra["why"] = ("the extrapolation step was not recognized" if theta is None else
                          "a saddle point may not exist (an unbounded dual set and a primal "
                          "function that is not coercive)")
        return m
    m.conditions += [("primal_dual", theta, ">=", ZERO, "extrapolation theta in [0, 1]"),
                     ("primal_dual", theta, "<=", ONE, "extrapolation theta in [0, 1]"),
                     ("extrapolation", theta, "==", ONE, "theta = 1 (Chambolle-Pock, Thm 1)")]
    return m


def _cp_steps(nf, dual: Pseudo, inputs):
    """dual.arg = p + sigma K v with p_new = dual; x_new = P(x - tau K^T y) or
    s0 (x - tau K^T y) + (input terms), y the dual's new value (or p)."""
    db = {k: lin.simplified() for k, lin in dual.arg.blocks.items() if k not in inputs}
    for p in nf.states:
        if p not in db or not is_scaled_identity(db[p], ONE) or not _is_output(nf, p, dual):
            continue
        rest = {k: lin for k, lin in db.items() if k != p}
        if len(rest) != 1:
            continue
        (v, kl), = rest.items()
        if len(kl.terms) != 1 or not kl.terms[0][0]:
            continue
        kmat, sigma = kl.terms[0]
        for x in nf.states:
            if x == p:
                continue
            got = _cp_primal(nf, x, (dual.name, p), mono_transpose(kmat), inputs)
            if got is not None:
                tau, primal, s0 = got
                if v not in (x,) and v not in nf.states:
                    continue
                return simplify(sigma), tau, kmat, x, v, primal, s0
    return None


def _cp_affine_dual(nf, inputs):
    """p_new = d0 (p + sigma K v) + (input terms): the resolvent of a convex quadratic f*, and
    x's step argument is x - tau K^T p_new (a prox of it, or s0 times it plus input terms).
    Returns (sigma, tau, K, x, v, primal, s0, d0)."""
    for p in nf.states:
        upd = nf.updates[p]
        bl = {k: b.simplified() for k, b in upd.blocks.items() if k not in inputs}
        if upd.opaque or p not in bl or not is_scaled_identity(bl[p]) or len(bl) != 2:
            continue
        d0 = simplify(bl[p].coef(()))
        (v, kl), = ((k, b) for k, b in bl.items() if k != p)
        if len(kl.terms) != 1 or not kl.terms[0][0] or v == p:
            continue
        kmat, c = kl.terms[0]
        sigma = simplify(Op("div", (c, d0), c.type))
        kt = Lin(((mono_transpose(kmat), ONE),), None)
        p_new = {k: b.simplified() for k, b in upd.blocks.items()}
        for x in nf.states:
            if x == p:
                continue
            got = _cp_primal_of(nf, x, p, kt, p_new, d0, inputs)
            if got is not None:
                tau, primal, s0 = got
                return sigma, tau, kmat, x, v, primal, s0, d0
    return None


def _cp_primal_of(nf, x, p, kt, p_new, d0, inputs):
    """x's step argument A with A - x = -tau K^T p_new, key by key: (tau, primal, s0)."""
    upd = nf.updates[x]
    bl = {k: b.simplified() for k, b in upd.blocks.items()}
    primal, s0 = None, None
    outs = [q for q in nf.pseudo if _is_output(nf, x, q)]
    if outs:
        primal = outs[0]
        arg = {k: b.simplified() for k, b in primal.arg.blocks.items()}
        if primal.arg.opaque:
            return None
    else:
        if upd.opaque or x not in bl or not is_scaled_identity(bl[x]):
            return None
        s0 = simplify(bl[x].coef(()))
        inv = Op("div", (ONE, s0), s0.type)
        arg = {k: b.scale(inv).simplified() for k, b in bl.items()}
    ap = arg.get(p)
    if ap is None or len(ap.terms) != 1 or ap.terms[0][0] != kt.terms[0][0]:
        return None
    tau = simplify(Op("div", (fold.neg(ap.terms[0][1]), d0), d0.type))
    for k in (set(arg) | set(p_new)) - {x}:
        want = kt.compose(p_new.get(k, Lin((), None))).scale(fold.neg(tau))
        if (arg.get(k, Lin((), None)) + -want).simplified().terms:
            return None
    if x not in arg or not is_scaled_identity(arg[x], ONE) and not (
            x in p_new and not (arg[x] + -Lin.identity(None)
                                + -kt.compose(p_new[x]).scale(fold.neg(tau))).simplified().terms):
        return None
    return tau, primal, s0


def _cp_primal(nf, x, duals, kt, inputs):
    """(tau, primal pseudo or None, s0 or None) for x's update, else None."""
    upd = nf.updates[x]
    bl = {k: b.simplified() for k, b in upd.blocks.items() if k not in inputs}
    if len(bl) == 1:  # x_new = P(arg)
        (u, b), = bl.items()
        prim = next((q for q in nf.pseudo if q.name == u), None)
        if prim is None or not is_scaled_identity(b, ONE) or not _is_output(nf, x, prim):
            return None
        bl = {k: c.simplified() for k, c in prim.arg.blocks.items() if k not in inputs}
        s0 = None
    else:
        prim = None
        if x not in bl or not is_scaled_identity(bl[x]):
            return None
        s0 = simplify(bl[x].coef(()))
    ys = [k for k in bl if k != x]
    if len(ys) != 1 or ys[0] not in duals or (prim is not None and
                                              not is_scaled_identity(bl[x], ONE)):
        return None
    tl = bl[ys[0]]
    if len(tl.terms) != 1 or tl.terms[0][0] != kt:
        return None
    c = tl.terms[0][1]
    tau = simplify(fold.neg(c) if s0 is None else Op("div", (fold.neg(c), s0), c.type))
    return tau, prim, s0


def _extrapolation(nf, x, v):
    """theta with v_new = x_new + theta (x_new - x), compared block by block."""
    if v not in nf.updates:
        return None
    xb = {k: b.simplified() for k, b in nf.updates[x].blocks.items()}
    vb = {k: b.simplified() for k, b in nf.updates[v].blocks.items()}
    if nf.updates[x].opaque or nf.updates[v].opaque:
        return None
    pivot = next((k for k, b in xb.items() if k != x and len(b.terms) == 1), None)
    if pivot is None or pivot not in vb or len(vb[pivot].terms) != 1 or \
            vb[pivot].terms[0][0] != xb[pivot].terms[0][0]:
        return None
    theta = simplify(Op("sub", (Op("div", (vb[pivot].terms[0][1], xb[pivot].terms[0][1]),
                                   vb[pivot].terms[0][1].type), ONE), ONE.type))
    one_theta = Op("add", (ONE, theta), ONE.type)
    for k in set(xb) | set(vb):
        want = xb.get(k, Lin((), None)).scale(one_theta)
        if k == x:
            want = want + -Lin.identity(None).scale(theta)
        if (want + -vb.get(k, Lin((), None))).simplified().terms:
            return None
    return theta


def _is_output(nf, s, u: Pseudo) -> bool:
    """The state's new value is exactly the pseudo-state u."""
    upd = nf.updates[s]
    bl = state_blocks(upd, set(nf.states) | {u.name})
    return set(bl) == {u.name} and is_scaled_identity(bl[u.name], ONE) and not _other(upd, bl)


__all__ = ["Match", "NormalForm", "normal_form", "forward_backward", "accelerated", "linear",
           "relaxations", "primal_dual", "joint_forward_backward", "admm", "douglas_rachford"]
