"""Derive the convergence conditions of a Program from its linearized layer (analyze.py).

Each rule reads the exact Jacobian blocks and the operators found in the layer:

    gradient step   E = v - a G v + ...  (one state, G = sum of positive multiples of
                    structurally PSD products such as H.T @ H): a > 0, a lambda_max(G) < 2,
                    and inside a proximal map a lambda_max(G) <= 1 (monotone descent, info);
    joint step      the same over several states updated from one residual (robust PCA);
    threshold       soft/svt thresholds and l2-ball radii >= 0, box bounds lo <= hi;
    coupling        E = A s + B x with a given H mapping s's space to x's: A + B H = I
                    (holds symbolically for ISTA-like layers; checked per layer for LISTA);
    penalty         solve(P + c I, ...) with P structurally PSD: c > 0 (ADMM);
    relaxation      a X + (1 - a) Y: 0 < a < 2;
    lipschitz       the block bound of the layer map w.r.t. the states (info; the product over
                    layers below 1 is a contraction certificate);
    require/assume  the spec's own conditions.

Every condition has a level: `require` (a hypothesis of a theorem that covers the update, or a
necessary condition: when it fails the report is "violated"), `certify` (sufficient only: when
it fails the theorem does not certify, nothing more) or `info`. Certificates (theorems.py, plus
the contraction test) name the conditions that must hold on every layer; the report is
"certified" only when one certificate holds, "uncertified" when none does and nothing required
fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from unfoldc.convergence.analyze import Affine, Layer, TooLarge, Unknown, analyze
from unfoldc.convergence.linear import (
    ONE,
    Lin,
    cancel_inverses,
    is_zero,
    psd_shift,
    ratio_number,
    simplify,
    to_sympy,
)
from unfoldc.convergence.quantity import (
    QBlock,
    QEig,
    QExpr,
    QInf,
    QNorm,
    QSpectral,
    q_mul,
    q_symbols,
)
from unfoldc.convergence.theorems import (
    accelerated,
    admm,
    douglas_rachford,
    forward_backward,
    gradient_step,
    joint_forward_backward,
    linear,
    normal_form,
    primal_dual,
    relaxations,
)
from unfoldc.ir.expr import Const, Expr, Op, walk
from unfoldc.ir.pretty import pretty
from unfoldc.ir.program import Program
from unfoldc.ops import OPS, Arg

THEOREMS = {
    "step": "gradient step on an L-smooth convex f: averaged (converges) for 0 < a < 2/L "
            "(descent lemma, Baillon-Haddad)",
    "descent": "proximal gradient with a <= 1/L decreases the objective monotonically, "
               "O(1/k) (Beck-Teboulle 2009)",
    "threshold": "soft/svt/projections are proximal maps (1-Lipschitz) only for thresholds "
                 ">= 0 and nonempty sets",
    "coupling": "LISTA weight coupling W2 = I - W1 H is necessary for convergence "
                "(Chen et al. 2018, LISTA-CP)",
    "penalty": "ADMM penalty > 0 (Boyd et al. 2011); makes the x-update system positive "
               "definite",
    "relaxation": "over-relaxation factor in (0, 2) (Eckstein-Bertsekas 1992)",
    "lipschitz": "layer bound < 1: the layer is a contraction; product over layers < 1: "
                 "a contraction certificate (Banach fixed point)",
    "require": "stated in the spec (require)",
    "assume": "stated in the spec (assume: a premise about the givens)",
    "momentum_step": "accelerated proximal gradient needs 0 < a <= 1/L (Beck-Teboulle 2009)",
    "schedule": "FISTA momentum beta_k = (t_k - 1)/t_(k+1) with t_k >= 1 and "
                "t_(k+1)^2 - t_(k+1) <= t_k^2 (Beck-Teboulle 2009; Chambolle-Dossal 2015)",
    "coercive": "a positive threshold makes the objective coercive: a minimizer exists",
    "primal_dual": "Chambolle-Pock 2011, Thm 1: tau, sigma > 0, tau sigma ||K||^2 < 1, "
                   "theta in [0, 1]",
    "extrapolation": "Chambolle-Pock 2011, Thm 1 proves convergence for theta = 1",
    "momentum": "heavy ball on a convex quadratic converges iff |beta| < 1 and "
                "0 < alpha lambda < 2 (1 + beta) for every eigenvalue lambda > 0 (Polyak 1964)",
    "spectral": "a linear iteration converges iff its spectral radius is < 1 (per eigenvalue of "
                "G; Polyak 1964, Lessard-Recht-Packard 2016)",
}
REQUIRED = {"step", "threshold", "coupling", "penalty", "relaxation", "require", "assume",
            "momentum_step", "primal_dual", "momentum"}
CERTIFY = {"lipschitz", "schedule", "coercive", "extrapolation", "spectral"}


@dataclass(frozen=True)
class QTol:
    """The coupling tolerance: 10 sqrt(machine epsilon) of the network's dtype."""

    def text(self) -> str:
        return "tol"


@dataclass(frozen=True)
class Condition:
    """One condition `lhs op rhs`, evaluated per layer by the generated report."""

    key: str
    kind: str
    lhs: object
    op: str
    rhs: object
    line: int
    note: str = ""
    premises: tuple[str, ...] = ()
    written: str = ""  # the spec's own text (require/assume)

    @property
    def level(self) -> str:
        if self.kind in REQUIRED:
            return "require"
        return "certify" if self.kind in CERTIFY else "info"

    @property
    def theorem(self) -> str:
        return THEOREMS[self.kind]

    def text(self) -> str:
        if self.written:
            return self.written
        return f"{self.lhs.text()} {self.op} {self.rhs.text()}"


@dataclass(frozen=True)
class Certificate:
    """A theorem that certifies convergence when all of `keys` hold on every layer."""

    name: str
    theorem: str
    line: int
    keys: tuple[str, ...]


@dataclass
class Analysis:
    """The conditions of one program, facts that hold by construction, and what was skipped."""

    program: Program
    layer: Layer
    conditions: list[Condition] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    certificates: list[Certificate] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)  # why no theorem covers an update
    linear: object = None  # the `linear` family's Match (spectral analysis, network bound)
    _index: dict = field(default_factory=dict, repr=False)  # (kind, text, line) -> condition
    _keys: set = field(default_factory=set, repr=False)
    _by_text: dict = field(default_factory=dict, repr=False)

    def add(self, kind: str, lhs, op: str, rhs, line: int, **kw) -> Condition:
        """The condition, or the equal one already derived (same kind and text, on the same
        line; relaxations on any line). Indexed: N states do not cost N^2 comparisons."""
        c = Condition("", kind, lhs, op, rhs, line, **kw)
        text = c.text()
        same = self._index.get((kind, text, None if kind == "relaxation" else line))
        if same is not None:
            return same
        base = f"{kind}@{line}"
        key, k = base, 2
        while key in self._keys:
            key, k = f"{base}#{k}", k + 1
        c = Condition(key, kind, lhs, op, rhs, line, **kw)
        self._keys.add(key)
        self._index[kind, text, None if kind == "relaxation" else line] = c
        self._by_text.setdefault((kind, text), c)
        self.conditions.append(c)
        return c

    def find(self, kind: str, text: str) -> Condition | None:
        """An already derived condition of `kind` with `text`, on any line."""
        return self._by_text.get((kind, text))


def derive(program: Program) -> Analysis:
    """All conditions of `program` (checked or optimized: the passes do not change them)."""
    try:
        layer = analyze(program)
    except TooLarge as exc:
        an = Analysis(program, Layer(program, [], {}, {}))
        an.notes.append(f"convergence analysis skipped: {exc}")
        an.uncovered.append(f"not analyzed: {exc}")
        return an
    an = Analysis(program, layer)
    _thresholds(an)
    _steps(an)
    _joint_step(an)
    _couplings(an)
    _penalties(an)
    _theorems(an)
    _relaxations(an)
    _lipschitz(an)
    for c in program.conditions:
        an.add(c.kind, QExpr(c.lhs), c.op, QExpr(c.rhs), c.line, written=c.text)
    return an


# ---- theorems that cover the whole update (theorems.py) ------------------------------------------
def _theorems(an: Analysis) -> None:
    p = an.program
    inputs = {s.name for s in p.by_role("input")}
    nf = normal_form(p)
    if nf is None:
        if an.layer.states:
            an.uncovered.append("the layer has no prox-linear normal form (a product of "
                                "state-dependent values or an operator that is not a proximal "
                                "map): no textbook theorem applies")
        return
    families = (forward_backward, joint_forward_backward, accelerated, admm, douglas_rachford,
                primal_dual, linear)
    matches = [m for m in (f(nf, inputs) for f in families) if m is not None]
    matches += relaxations(nf)
    for m in matches:
        if m.name == "linear iteration":
            an.linear = m
            for c in m.extra.get("polyak", ()):
                _add_match_condition(an, m, *c)
            _linear_conditions(an, m)
            continue
        added = [_add_match_condition(an, m, *c) for c in m.conditions]
        keys = [c.key for c in added if c is not None]
        if m.certifies:
            thresholds = [c.key for c in an.conditions if c.kind == "threshold"]
            an.certificates.append(Certificate(m.name, m.theorem, m.line,
                                               tuple(keys + thresholds)))
        elif "why" in m.extra:
            an.uncovered.append(f"{p.source_name}:{m.line} {m.name}: {m.extra['why']}")
    required = {c.text() for c in an.conditions if c.kind == "momentum_step"}
    an.conditions = [c for c in an.conditions  # FISTA's `<= 1/L` is required, not info
                     if not (c.kind == "descent" and c.text() in required)]
    if not an.certificates and an.linear is None:
        names = ", ".join(f"`{s}`" for s in nf.states)
        an.uncovered.append(f"the updates of {names} match none of: gradient descent, "
                            "forward-backward, accelerated proximal gradient (t-sequence), "
                            "Chambolle-Pock, a linear iteration in one symmetric matrix")


def _add_match_condition(an: Analysis, m, kind, lhs, op, rhs, note) -> Condition | None:
    """The condition, or None when it holds identically (proved with sympy, kept as a fact)."""
    lq = QExpr(lhs)
    if isinstance(rhs, tuple) and rhs[0] == "lambda":
        _, g, bound = rhs
        lq, rq = q_mul(lq, _lambda_max(g)), QExpr(Const(bound))
    elif isinstance(rhs, tuple) and rhs[0] == "lambda_div":  # a lambda_max(G) < c (an expr)
        _, g, bound = rhs
        lq, rq = q_mul(QExpr(lhs), _lambda_max(g)), QExpr(bound)
    else:
        rq = QExpr(rhs)
        if op in ("<=", ">=", "==") and sympy.simplify(to_sympy(lhs) - to_sympy(rhs)) == 0:
            an.facts.append(f"line {m.line}: {note} holds identically (sympy)")
            return None
    return an.find(kind, f"{lq.text()} {op} {rq.text()}") or an.add(kind, lq, op, rq, m.line,
                                                                      note=note)


def _linear_conditions(an: Analysis, m) -> None:
    """The spectral condition of a linear iteration (evaluated per layer by the report)."""
    c = an.add("spectral", QSpectral(m.extra["coef"], m.extra["gram"], tuple(an.layer.states),
                                     m.extra["in_range"]), "<", QExpr(ONE), m.line,
               note="spectral radius of the layer's linear part")
    an.certificates.append(Certificate(m.name, m.theorem, m.line, (c.key,)))


def _zero() -> QExpr:
    return QExpr(Const(0.0))


# ---- thresholds ---------------------------------------------------------------------------------
def _thresholds(an: Analysis) -> None:
    """The conditions each proximal map on a state puts on its further arguments: facts of the
    operator table (ops.py `OpDef.conditions`), e.g. soft's threshold >= 0."""
    for use in an.layer.prox:
        for c in OPS[use.op].conditions or ():
            an.add("threshold", _arg_side(use, c.lhs), c.op, _arg_side(use, c.rhs), use.line,
                   note=c.note)


def _arg_side(use, x: Arg | float) -> QExpr:
    """One side of a table condition: the operator's argument (of this use), or a number."""
    return QExpr(use.params[x.index - 1]) if isinstance(x, Arg) else QExpr(Const(float(x)))


# ---- gradient steps -----------------------------------------------------------------------------
def _lambda_max(g: Lin):
    if g.identity_only:
        return QExpr(Const(sum(c.value for _, c in g.terms)))
    return QEig(g, "max")


def _steps(an: Analysis) -> None:
    states = an.layer.states
    for v, line, in_prox in an.layer.steps:
        mine = [k for k in v.blocks if k in states]
        if len(mine) != 1:
            continue
        split = gradient_step(v.blocks[mine[0]].simplified())
        if split is None:
            continue
        a, g = split
        _step_conditions(an, QExpr(a), _lambda_max(g), line, in_prox)


def _step_conditions(an: Analysis, a, lam, line: int, in_prox: bool) -> None:
    an.add("step", a, ">", _zero(), line, note="step size positive")
    an.add("step", q_mul(a, lam), "<", QExpr(Const(2.0)), line, note="step size below 2/L")
    if in_prox:
        an.add("descent", q_mul(a, lam), "<=", QExpr(ONE), line,
               note="step size at most 1/L")


def _joint_step(an: Analysis) -> None:
    """Several states updated as prox(E_i) from the same layer-start states (Jacobi)."""
    layer = an.layer
    args = {}
    for target, v, line in layer.updates:
        use = next((u for u in layer.prox if u.line == line and isinstance(u.arg, Affine)), None)
        e = use.arg if use is not None else v
        if isinstance(e, Affine) and len([k for k in e.blocks if k in layer.states]) >= 2:
            args[target] = (e, line, use is not None)
    group = list(args)
    if len(group) < 2 or any(set(k for k in e.blocks if k in layer.states) != set(group)
                             for e, _, _ in args.values()):
        return
    entries = {}
    for i in group:
        for j in group:
            lin = args[i][0].blocks[j].simplified()
            d = ((Lin.identity(lin.dim) if i == j else Lin((), lin.dim)) + (-lin)).simplified()
            if not d.identity_only:
                an.notes.append("joint gradient step with non-scalar blocks: not checked")
                return
            entries[i, j] = d.coef(())
    nonzero = [c for c in entries.values() if not is_zero(c)]
    if not nonzero:
        return
    a = simplify(nonzero[0])
    ratios = [[ratio_number(entries[i, j], a) if not is_zero(entries[i, j]) else 0
               for j in group] for i in group]
    if any(r is None for row in ratios for r in row):
        return
    g = sympy.Matrix(ratios)
    if g != g.T or any(ev < 0 for ev in g.eigenvals()):
        return
    lam = QExpr(Const(float(max(g.eigenvals()))))
    line = max(args[i][1] for i in group)
    _step_conditions(an, QExpr(a), lam, line, all(args[i][2] for i in group))


# ---- LISTA coupling ------------------------------------------------------------------------------
def _couplings(an: Analysis) -> None:
    p = an.program
    inputs = {s.name: s for s in p.by_role("input")}
    updates = [id(u) for _, u, _ in an.layer.updates]
    for v, line, in_prox in an.layer.steps:
        if not in_prox and id(v) not in updates:
            continue  # a temporary (a gradient, a residual) is not an estimate of the state
        st = [k for k in v.blocks if k in an.layer.states]
        xs = [k for k in v.blocks if k in inputs]
        if len(st) != 1 or len(xs) != 1 or v.opaque:
            continue
        s_t, x_t = p.symbol(st[0]).type, inputs[xs[0]].type
        if s_t.kind != "vector" or x_t.kind != "vector" or v.expr.type.dims != s_t.dims:
            continue  # the coupling is about values in the state's own space
        ops_ = [g for g in p.by_role("given") if g.type.kind == "matrix"
                and g.type.dims == (x_t.dims[0], s_t.dims[0])]
        if len(ops_) != 1:
            continue
        from unfoldc.ir.expr import Sym

        h = Sym(ops_[0].name, ops_[0].type, "given")
        js, jx = v.blocks[st[0]].simplified(), v.blocks[xs[0]].simplified()
        resid = cancel_inverses((js + jx.rmul(h) + (-Lin.identity(js.dim))).simplified())
        form = f"{js.text()} + ({jx.text()}) @ {h.name} = I"
        if not resid.terms:
            an.facts.append(f"line {line}: coupling {form} holds by construction")
        else:
            an.add("coupling", QNorm(resid), "<=", QTol(), line,
                   note=f"coupling residual of {form}")


# ---- ADMM penalties and relaxation ---------------------------------------------------------------
def _penalties(an: Analysis) -> None:
    for a, line in an.layer.solves:
        c = psd_shift(a, a.type.dims[0])
        if c is None or to_sympy(c).is_number:
            continue
        an.add("penalty", QExpr(c), ">", _zero(), line, note="penalty positive")


def _relaxations(an: Analysis) -> None:
    for e, line in an.layer.raw:
        for node in walk(e):
            a = _relaxation_factor(node)
            if a is not None:
                an.add("relaxation", QExpr(a), ">", _zero(), line, note="relaxation factor")
                an.add("relaxation", QExpr(a), "<", QExpr(Const(2.0)), line,
                       note="relaxation factor")


def _relaxation_factor(node) -> Expr | None:
    if not (isinstance(node, Op) and node.op == "add"):
        return None
    left, right = node.args
    for x, y in ((left, right), (right, left)):
        if _is_mul(x) and _is_mul(y):
            a = x.args[0]
            one_minus = y.args[0]
            if (a.type.kind == "scalar" and isinstance(one_minus, Op) and one_minus.op == "sub"
                    and one_minus.args[0] == ONE and one_minus.args[1] == a):
                return a
    return None


def _is_mul(e) -> bool:
    return isinstance(e, Op) and e.op == "mul"


# ---- the layer bound -----------------------------------------------------------------------------
MAX_BLOCK_STATES = 32  # the block bound is a k x k matrix of quantities, emitted per layer


def _lipschitz(an: Analysis) -> None:
    layer = an.layer
    if not layer.states:
        return
    if len(layer.states) > MAX_BLOCK_STATES:
        an.notes.append(f"no layer bound: {len(layer.states)} states (the block bound is "
                        f"computed for at most {MAX_BLOCK_STATES})")
        an.uncovered.append(f"{len(layer.states)} states: too many for the analysis")
        return
    for s in layer.states:
        v = layer.values[s]
        if isinstance(v, Unknown):
            an.notes.append(f"no Lipschitz bound for `{s}`: {v.reason}")
    unknown = [v for v in layer.values.values() if isinstance(v, Unknown)]
    rows = ((QInf(unknown[0].reason),),) if unknown else tuple(tuple(r) for r in layer.rows())
    premises = tuple(c.key for c in an.conditions if c.kind == "threshold")
    line = max(line for _, _, line in layer.updates) if layer.updates else 0
    c = an.add("lipschitz", QBlock(rows, tuple(layer.states)), "<", QExpr(ONE), line,
               premises=premises,
               note="Lipschitz bound of the layer w.r.t. " + ", ".join(layer.states))
    if not unknown:
        an.certificates.append(Certificate(
            "contraction", "a layer with Lipschitz bound < 1 is a contraction: iterated, it "
            "converges to its unique fixed point (Banach)", line, (c.key,)))


def reads(c: Condition):
    """The IR symbols a condition's two sides read."""
    return q_symbols(c.lhs) | q_symbols(c.rhs)


def symbolic_text(an: Analysis) -> list[str]:
    """The conditions as readable lines (docstrings, `unfoldc check` without data)."""
    src = an.program.source_name
    out = [f"[{c.level}] {src}:{c.line} {c.kind}: {c.text()}" for c in an.conditions]
    out += [f"[fact] {f}" for f in an.facts]
    out += [f"[skipped] {n}" for n in an.notes]
    out += [f"[certificate] {c.name} ({src}:{c.line}): {c.theorem}" for c in an.certificates]
    out += [f"[uncertified] {u}" for u in an.uncovered]
    return out


__all__ = ["Analysis", "Condition", "QTol", "derive", "pretty", "symbolic_text"]
