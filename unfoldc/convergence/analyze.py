"""Linearize one layer of a Program: exact Jacobian blocks where the map is affine, Lipschitz
bounds by composition rules elsewhere.

Each body value gets an abstract value:

    Affine(blocks)   the value is affine in the layer-start states (and inputs); `blocks` maps
                     each state/input to its exact Jacobian block, a `Lin`.
    Bounded(row)     ||v(a) - v(b)|| <= sum_j row[j] * ||a_j - b_j|| over the states j.
    Unknown(reason)  no bound (a product of two state-dependent values, an unknown operator).

Rules: sums and state-free scalings/matrix products keep Affine exact (so `s - mu H^T (H s - x)`
has the block `I - mu H^T H`, not the bound 1 + mu ||H||^2); `soft`, `svt`, the projections,
`relu`, `clamp`, `abs` and elementwise `min`/`max` with a state-free operand are 1-Lipschitz in
their first argument and turn an Affine argument into the row of its block norms; a Hadamard
product with a state-free array scales a bound by its largest entry; a learned sub-network
`net(a_1, ..., a_r)` is Lipschitz in each a_i with the constant `QNet` (the product of its
weights' spectral norms times the activation's constant per hidden layer, +1 for a residual's
first argument), so its row is the sum of QNet_i times a_i's row (chain rule).

"Schedule" states are those whose update reads only themselves and state-free values (FISTA's
momentum scalar t): they are the same for every sample, so the report runs their recurrence and
treats them as per-layer constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unfoldc.convergence.linear import Lin, lin_of, lin_of_matrix, linop_factor
from unfoldc.convergence.quantity import QExpr, QInf, QNet, q_add, q_mul, q_norm
from unfoldc.ir import fold
from unfoldc.ir.expr import Const, Expr, Op, Sym, substitute, symbols
from unfoldc.ir.program import Assign, Program
from unfoldc.ir.types import SCALAR
from unfoldc.ops import OPS, Lipschitz, unanalyzed
from unfoldc.semantics.nets import ACTIVATIONS


def lipschitz_fact(op: str) -> Lipschitz:
    """The operator table's Lipschitz fact of `op` (ops.py `OpDef.lipschitz`): what the rules
    below may assume about it when its further arguments are state-free."""
    d = OPS.get(op)
    return d.lipschitz if d is not None and d.lipschitz is not None else unanalyzed()


@dataclass
class Affine:
    blocks: dict[str, Lin]
    expr: Expr
    opaque: bool = False  # depends on inputs non-linearly (no block for them)


@dataclass
class Bounded:
    row: dict
    expr: Expr


@dataclass
class Unknown:
    reason: str
    expr: Expr


@dataclass(frozen=True)
class ProxUse:
    """`op(arg, *params)` applied to a state-dependent argument on spec line `line`."""

    op: str
    arg: object
    params: tuple[Expr, ...]
    line: int


@dataclass
class Layer:
    """What the analysis found about one layer of `program`."""

    program: Program
    states: list[str]  # non-schedule states, declaration order
    schedule: dict[str, Expr]  # schedule state -> its new value (in layer-start values)
    values: dict[str, object]  # final abstract value of each state
    steps: list[tuple] = field(default_factory=list)  # (Affine value, line, inside a prox)
    updates: list[tuple[str, object, int]] = field(default_factory=list)
    prox: list[ProxUse] = field(default_factory=list)
    solves: list[tuple[Expr, int]] = field(default_factory=list)
    raw: list[tuple[Expr, int]] = field(default_factory=list)  # statement values, inlined

    def rows(self) -> list[list]:
        """The block bound matrix: rows[i][j] bounds d(state_i) / d(state_j)."""
        return [[row_of(self.values[s]).get(t, QExpr(Const(0.0))) for t in self.states]
                if not isinstance(self.values[s], Unknown) else
                [QInf(self.values[s].reason)] * len(self.states) for s in self.states]


def is_const(v) -> bool:
    """State-free and input-free: a per-layer constant."""
    return isinstance(v, Affine) and not v.blocks and not v.opaque


def state_free(v, inputs: set[str]) -> bool:
    return isinstance(v, Affine) and set(v.blocks) <= inputs


def row_of(v) -> dict:
    if isinstance(v, Bounded):
        return v.row
    if isinstance(v, Affine):
        return {k: q_norm(lin.simplified()) for k, lin in v.blocks.items()}
    return {}


class Analyzer:
    def __init__(self, program: Program, schedule: set[str] | None = None):
        """`schedule`: the schedule states when already known (skips finding them again)."""
        self.p = program
        self.inputs = {s.name for s in program.by_role("input")}
        self.pro = {a.target: a.value for a in program.prologue if a.kind != "init"}
        self.inits = {a.target: a.value for a in program.prologue if a.kind == "init"}
        self._expanded: dict[str, Expr] = {}  # prologue value -> its definition, expanded
        live = set(self.inits) | {a.target for a in program.body if a.kind != "temp"}
        self.state_syms = {s.name: s for s in program.by_role("state") if s.name in live}
        self.schedule = self._schedule_states() if schedule is None else set(schedule)
        self.env: dict[str, object] = {}
        self.inline: dict[str, Expr] = {}
        self.layer = Layer(program, [s for s in self.state_syms if s not in self.schedule],
                           {}, {})

    # ---- which states are schedules -------------------------------------------------------------
    def _inlined_body(self) -> list[tuple[Assign, Expr]]:
        """Each statement's value in layer-start values (temporaries and earlier updates
        substituted). Refuses, with TooLarge, layers whose inlined values pass MAX_NODES: a
        chain of updates `s <- f(s)` doubles the tree each time."""
        sub: dict[Expr, Expr] = {}
        out = []
        sizes: dict[int, int] = {}
        for a in self.p.body:
            v = self._expand(a.value)
            # Substituting only grows a tree: refuse before walking (and hashing) a huge one.
            if tree_size(v, sizes) > MAX_NODES:
                raise TooLarge(a.line, tree_size(v, sizes))
            v = substitute(v, sub)  # lets and hoisted values are state-free
            if tree_size(v, sizes) > MAX_NODES:
                raise TooLarge(a.line, tree_size(v, sizes))
            out.append((a, v))
            sub[Sym(a.target, a.value.type, "temp" if a.kind == "temp" else "state")] = v
            if a.kind != "temp":
                s = self.state_syms[a.target]
                sub[Sym(s.name, s.type, "state")] = v
        return out

    def _expand(self, e: Expr) -> Expr:
        """Replace prologue values (hoisted, lets) by their definitions, all the way down.

        Each name is expanded once and its expansion shared, so a chain of lets that each read
        two earlier ones costs one step per let here, and `tree_size` then sees (and refuses)
        the size its tree would have when analyzed.
        """
        done = self._expanded

        def expand(x: Expr) -> Expr:
            if isinstance(x, Sym) and x.role in ("hoisted", "let") and x.name in self.pro:
                if x.name not in done:
                    done[x.name] = expand(self.pro[x.name])
                return done[x.name]
            if isinstance(x, Op):
                return Op(x.op, tuple(expand(a) for a in x.args), x.type)
            return x

        return expand(e)

    def _schedule_states(self) -> set[str]:
        body = self._inlined_body()
        final = {a.target: v for a, v in body if a.kind != "temp"}
        # Scalars only: a schedule is a per-layer constant (FISTA's t, a decaying step); a vector
        # state that happens not to read the input is still an iterate, not a schedule.
        cand = {s for s, sym in self.state_syms.items() if sym.type.kind == "scalar"
                and not ({x.name for x in symbols(self.inits.get(s, Const(0.0)))}
                        & (self.inputs | set(self.pro)))}
        while True:
            bad = {s for s in cand if s in final and any(
                x.role in ("state", "input", "temp") and x.name not in cand
                for x in symbols(final[s]))}
            if not bad:
                return cand
            cand -= bad

    # ---- interpretation -------------------------------------------------------------------------
    def run(self) -> Layer:
        for s, sym in self.state_syms.items():
            ref = Sym(s, sym.type, "state")
            self.env[s] = Affine({} if s in self.schedule else
                                 {s: Lin.identity(_row_dim(sym.type))}, ref)
        for a in self.p.body:
            v = self.visit(a.value, a.line)
            self.layer.raw.append((v.expr, a.line))
            if isinstance(v, Affine) and v.blocks and any(k in self.layer.states
                                                           for k in v.blocks):
                self.layer.steps.append((v, a.line, False))
            if a.kind != "temp":
                self.layer.updates.append((a.target, v, a.line))
            self.env[a.target] = v
        self.layer.values = {s: self.env[s] for s in self.layer.states}
        self.layer.schedule = {s: self.env[s].expr for s in self.schedule}
        return self.layer

    def visit(self, e: Expr, line: int):
        if isinstance(e, Const):
            return Affine({}, e)
        if isinstance(e, Sym):
            return self._sym(e, line)
        args = [self.visit(a, line) for a in e.args]
        expr = Op(e.op, tuple(a.expr for a in args), e.type)
        if all(is_const(a) for a in args):
            return Affine({}, expr)
        if any(isinstance(a, Unknown) for a in args):
            return next(a for a in args if isinstance(a, Unknown))
        rule = getattr(self, f"_op_{e.op}", None)
        if rule is not None:
            return rule(e, args, expr, line)
        kind = lipschitz_fact(e.op).kind
        if kind in ("prox", "lipschitz") and all(state_free(a, set()) for a in args[1:]):
            return self._lipschitz1(e, args, expr, line)
        if kind == "minmax" and len(args) == 2:
            return self._minmax(e, args, expr, line)
        if kind == "linear":
            return self._linear(e, args[0], expr)
        if all(state_free(a, self.inputs) for a in args):
            return Affine({}, expr, opaque=True)
        d = OPS.get(e.op)
        spelled = d.spelling if d is not None and d.infix else e.op  # `>`, not `gt`
        why = lipschitz_fact(e.op).why
        return Unknown(f"`{spelled}` of a state-dependent value is not analyzed"
                       + (f" ({why})" if why else ""), expr)

    def _sym(self, e: Sym, line: int):
        if e.name in self.env and e.role in ("state", "temp"):
            return self.env[e.name]
        if e.role == "input":
            return Affine({e.name: Lin.identity(_row_dim(e.type))}, e)
        if e.role in ("hoisted", "let") and e.name in self.pro:
            return self.visit(self.pro[e.name], line)
        return Affine({}, e)

    # ---- rules ----------------------------------------------------------------------------------
    def _op_add(self, e, args, expr, line, sign=1):
        a, b = (self._broadcast(x, e, expr) for x in args)
        if a is None or b is None:
            return Unknown("a state-dependent scalar added to an array", expr)
        if isinstance(a, Affine) and isinstance(b, Affine):
            blocks = dict(a.blocks)
            for k, lin in b.blocks.items():
                lin = lin if sign > 0 else -lin
                blocks[k] = blocks[k] + lin if k in blocks else lin
            return Affine(blocks, expr, a.opaque or b.opaque)
        ra, rb = row_of(a), row_of(b)
        return Bounded({k: q_add(ra.get(k, QExpr(Const(0.0))), rb.get(k, QExpr(Const(0.0))))
                        for k in self.layer.states if k in ra or k in rb}, expr)

    def _broadcast(self, x, e, expr):
        """A scalar operand of an array sum: a per-sample scalar has no exact block."""
        if x.expr.type.kind != "scalar" or e.type.kind == "scalar" or is_const(x):
            return x
        if isinstance(x, Affine) and not (set(x.blocks) - self.inputs):
            return Affine({}, x.expr, opaque=True)
        return None

    def _op_sub(self, e, args, expr, line):
        return self._op_add(e, args, expr, line, sign=-1)

    def _op_neg(self, e, args, expr, line):
        (a,) = args
        if isinstance(a, Affine):
            return Affine({k: -v for k, v in a.blocks.items()}, expr, a.opaque)
        return Bounded(a.row, expr)

    def _op_mul(self, e, args, expr, line):
        a, b = args
        if not is_const(a) and is_const(b):
            a, b = b, a
        if not is_const(a):
            if state_free(a, self.inputs) and state_free(b, self.inputs):
                return Affine({}, expr, opaque=True)
            return Unknown("a product of two state-dependent values", expr)
        if a.expr.type.kind == "scalar":
            return self._scale(b, a.expr, expr)
        if b.expr.type.kind == "scalar":  # a constant array times a state-dependent scalar
            return self._bound_scale(b, Op("norm2", (a.expr,), SCALAR), expr)
        return self._bound_scale(b, Op("max", (Op("abs", (a.expr,), a.expr.type),), SCALAR),
                                 expr)

    def _op_div(self, e, args, expr, line):
        a, b = args
        if is_const(b) and b.expr.type.kind == "scalar":
            return self._scale(a, fold.div(Const(1.0), b.expr), expr)
        if state_free(a, self.inputs) and state_free(b, self.inputs):
            return Affine({}, expr, opaque=True)
        return Unknown("division by a state-dependent value", expr)

    def _scale(self, v, c: Expr, expr):
        if isinstance(v, Affine):
            return Affine({k: lin.scale(c) for k, lin in v.blocks.items()}, expr, v.opaque)
        return self._bound_scale(v, Op("abs", (c,), SCALAR), expr)

    def _bound_scale(self, v, c: Expr, expr):
        return Bounded({k: q_mul(QExpr(c), q) for k, q in row_of(v).items()}, expr)

    def _op_matmul(self, e, args, expr, line):
        a, b = args
        if is_const(a) and a.expr.type.kind == "matrix":
            if isinstance(b, Affine):
                # (I - mu * H.T @ H) @ s: distribute the sum, so the block is I - mu H^T H
                # (one opaque factor would hide the gradient step)
                la = lin_of_matrix(a.expr, None)
                if la is not None and (len(la.terms) > 1 or la.identity_only):
                    return Affine({k: la.compose(lin) for k, lin in b.blocks.items()}, expr,
                                  b.opaque)
                return Affine({k: lin.lmul(a.expr) for k, lin in b.blocks.items()}, expr,
                              b.opaque)
            return Bounded({k: q_mul(q_norm(lin_of(a.expr)), q)
                            for k, q in b.row.items()}, expr)
        if is_const(b) and b.expr.type.kind == "matrix":  # right multiplication: a bound
            nb = q_norm(lin_of(b.expr))
            return Bounded({k: q_mul(nb, q) for k, q in row_of(a).items()}, expr)
        if is_const(a) and a.expr.type.kind == "vector":  # inner product with a constant
            return self._bound_scale(b, Op("norm2", (a.expr,), SCALAR), expr)
        if state_free(a, self.inputs) and state_free(b, self.inputs):
            return Affine({}, expr, opaque=True)
        return Unknown("a product of two state-dependent values", expr)

    def _op_solve(self, e, args, expr, line):
        a, b = args
        if not is_const(a):
            return Unknown("a system matrix that depends on the state", expr)
        self.layer.solves.append((a.expr, line))
        inv = Op("inv", (a.expr,), a.expr.type)
        if isinstance(b, Affine):
            return Affine({k: lin.lmul(inv) for k, lin in b.blocks.items()}, expr, b.opaque)
        return Bounded({k: q_mul(q_norm(lin_of(inv)), q)
                        for k, q in b.row.items()}, expr)

    def _op_net(self, e, args, expr, line):
        """psi(a_1, ..., a_r): row = sum_i Lip_i(psi) * row(a_i) (the chain rule, summed)."""
        if all(state_free(a, self.inputs) for a in args):
            return Affine({}, expr, opaque=True)
        net = args[0].expr
        spec = self.p.symbol(net.name).net
        act = ACTIVATIONS[spec.act]
        zero = QExpr(Const(0.0))
        row: dict = {}
        for i, a in enumerate(args[1:]):
            lip = QNet(net, i, act, len(args) - 1)
            for k, q in row_of(a).items():
                if k in self.layer.states:
                    row[k] = q_add(row.get(k, zero), q_mul(lip, q))
        return Bounded(row, expr)

    def _op_soft_ss(self, e, args, expr, line):
        # Its thresholds are checked like soft's; its own support selection is discontinuous
        # in the value (an entry jumps by t when it enters the selected set): no bound.
        if all(state_free(a, set()) for a in args[1:]):
            self.layer.prox.append(ProxUse(e.op, args[0], tuple(a.expr for a in args[1:]),
                                           line))
        if all(state_free(a, self.inputs) for a in args):
            return Affine({}, expr, opaque=True)
        return Unknown("`soft_ss` selects its support from the value itself (discontinuous): "
                       "no Lipschitz bound", expr)

    def _lipschitz1(self, e, args, expr, line):
        """A proximal map (its use is recorded for its conditions, and an affine argument is a
        gradient step inside a prox), or an operator Lipschitz with constant c (row c * row)."""
        fact = lipschitz_fact(e.op)
        if fact.kind == "prox":
            self.layer.prox.append(ProxUse(e.op, args[0], tuple(a.expr for a in args[1:]),
                                           line))
            if isinstance(args[0], Affine) and args[0].blocks:
                self.layer.steps.append((args[0], line, True))
        if fact.const == 1:
            return Bounded(row_of(args[0]), expr)
        return self._bound_scale(args[0], Const(float(fact.const)), expr)

    def _linear(self, e, a, expr):
        """A fixed linear operator (diff, grad2d, their adjoints): an abstract factor K of the
        blocks, so K and K^T pair up in the theorems; its norm bound scales a bound."""
        if isinstance(a, Affine):
            f = linop_factor(e.op, e.type, e.args[0].type)
            return Affine({k: lin.lmul(f) for k, lin in a.blocks.items()}, expr, a.opaque)
        return self._bound_scale(a, Const(float(lipschitz_fact(e.op).const)), expr)

    def _minmax(self, e, args, expr, line):
        a, b = args
        if not state_free(b, set()):
            a, b = b, a
        if not state_free(b, set()):
            return Unknown("min/max of two state-dependent values", expr)
        return Bounded(row_of(a), expr)


MAX_NODES = 1000  # inlined operations per statement the analysis affords (12x the largest
# textbook layer, Chambolle-Pock at 81): a chain of updates doubles the tree, compile stays linear


class TooLarge(Exception):
    """The layer's inlined update is too large to analyze (reported as skipped)."""

    def __init__(self, line: int, nodes: int):
        super().__init__(f"line {line}: the inlined update has {nodes} operations "
                         f"(the analysis affords {MAX_NODES})")
        self.line, self.nodes = line, nodes


def tree_size(e: Expr, memo: dict[int, int]) -> int:
    """Nodes of `e` as a tree, counted over its shared subtrees once (memo by identity)."""
    key = id(e)
    if key not in memo:
        memo[key] = 1 + sum(tree_size(a, memo) for a in e.args) if isinstance(e, Op) else 1
    return memo[key]


def _row_dim(t):
    return t.dims[0] if t.dims else None


def analyze(program: Program) -> Layer:
    """Linearize one layer of `program` (before or after the optimization passes)."""
    return Analyzer(program).run()


def neg(e: Expr) -> Expr:
    return fold.neg(e)
