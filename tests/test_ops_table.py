"""The operator table is complete: every entry of `unfoldc.ops.OPS` states every fact the compiler
reads about it (semantics, Lipschitz behaviour, conditions, prox atom), and the facts agree with
the code that uses them (the interpreter, the generated torch code, the convergence analysis)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import unfoldc
from unfoldc.codegen.helpers import HELPERS
from unfoldc.convergence.analyze import Analyzer
from unfoldc.convergence.derive import derive
from unfoldc.ir import interpreter
from unfoldc.ir.expr import Op, Sym
from unfoldc.ir.types import SCALAR, matrix, vector
from unfoldc.ops import (
    LIPSCHITZ_KINDS,
    OPS,
    PREC_ATOM,
    Arg,
    Code,
    OpDef,
    missing_facts,
    semantics_fn,
)
from unfoldc.source import Source


# ---- completeness -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_operator_states_every_fact(name):
    assert missing_facts(OPS[name]) == []


def _bare(name: str = "frobnicate", arity=(2, 2), **facts) -> OpDef:
    """An entry as someone adding an operator to ops.py alone might write it."""
    d = OpDef(name, name, arity, shape=lambda dims, args: SCALAR,
              render=lambda a, out: ("x", PREC_ATOM), sympy=lambda *a: None, doc="new")
    return dataclasses.replace(d, **facts)


def test_an_operator_added_without_facts_fails_the_check():
    gaps = missing_facts(_bare())
    for fact in ("semantics", "lipschitz", "conditions"):
        assert any(g.startswith(fact) for g in gaps), (fact, gaps)


def test_the_check_catches_inconsistent_facts():
    base = OPS["soft"]
    assert missing_facts(dataclasses.replace(base, conditions=())) != []  # a forgotten threshold
    named = dataclasses.replace(base, semantics=dataclasses.replace(base.semantics, fn="nope"))
    assert any("no function `nope`" in g for g in missing_facts(named))
    bad_prox = dataclasses.replace(OPS["norm1"], prox=dataclasses.replace(OPS["norm1"].prox,
                                                                         op="abs"))
    assert any(g.startswith("prox") for g in missing_facts(bad_prox))  # abs is not a prox
    one_arg = _bare(arity=(1, 1), semantics=OPS["abs"].semantics, lipschitz=OPS["abs"].lipschitz)
    assert missing_facts(one_arg) == []  # no further arguments: nothing to condition


def test_the_interpreter_names_an_operator_without_semantics(monkeypatch):
    monkeypatch.setitem(OPS, "frobnicate", _bare())
    with pytest.raises(interpreter.InterpreterError, match="`frobnicate`.*no reference semantics"):
        interpreter.semantics("frobnicate")


def test_exact_operators_are_exactly_those_with_an_analyzer_rule():
    rules = {m[len("_op_"):] for m in dir(Analyzer) if m.startswith("_op_")}
    exact = {name for name, d in OPS.items() if d.lipschitz.kind == "exact"}
    assert rules == exact
    assert all(d.lipschitz.kind in LIPSCHITZ_KINDS for d in OPS.values())


def test_prox_atoms_name_proximal_maps():
    atoms = {name: d.prox.op for name, d in OPS.items() if d.prox is not None}
    assert atoms == {"norm1": "soft", "sqnorm": None, "norm2": "block_soft", "nucnorm": "svt",
                     "ind_box": "proj_box", "ind_nonneg": "proj_nonneg",
                     "ind_simplex": "proj_simplex", "ind_l2ball": "proj_l2ball"}


@pytest.mark.parametrize("values", [(2.5, 3.0, -1.0), (3.0, 2.5, 0.0), (0.0, 2.5, 3.0)])
@pytest.mark.parametrize("name", [n for n, d in OPS.items() if d.fold is not None])
def test_constant_folding_agrees_with_the_semantics(name, values):
    d = OPS[name]
    args = values[:d.arity[0]]
    if d.fold(*args) is None:
        return  # not folded (0 ^ -1 ...): nothing to agree on
    want = semantics_fn(d)(*(torch.tensor(a, dtype=torch.float64) for a in args))
    assert d.fold(*args) == pytest.approx(float(want))


# ---- semantics against the generated code ------------------------------------------------------
def _gen(seed: int):
    return torch.Generator().manual_seed(seed)


def _vec(g, n=7, lo=-2.0, hi=2.0):
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def _mat(g, m=5, n=4):
    return torch.randn(m, n, generator=g, dtype=torch.float64)


def _spd(g, n=4):
    a = _mat(g, n, n)
    return a @ a.T + n * torch.eye(n, dtype=torch.float64)


def _num(x):
    return torch.tensor(float(x), dtype=torch.float64)


# Random arguments per operator: a function of a generator returning the argument values.
# Elementwise operators not listed get `_default_args`; the others are compared where listed.
ARGS = {
    "add": lambda g: (_vec(g), _vec(g)),
    "sub": lambda g: (_vec(g), _num(0.3)),
    "mul": lambda g: (_vec(g), _vec(g)),
    "div": lambda g: (_vec(g), _vec(g, lo=0.5, hi=2.0)),
    "pow": lambda g: (_vec(g, lo=0.1, hi=2.0), _num(1.7)),
    "abs": lambda g: (_vec(g),),
    "sign": lambda g: (_vec(g),),
    "sqrt": lambda g: (_vec(g, lo=0.0, hi=3.0),),
    "exp": lambda g: (_vec(g),),
    "log": lambda g: (_vec(g, lo=0.1, hi=3.0),),
    "relu": lambda g: (_vec(g),),
    "min": lambda g: (_vec(g), _vec(g)),
    "max": lambda g: (_vec(g), _num(0.2)),
    "clamp": lambda g: (_vec(g), _num(-0.5), _num(0.7)),
    "proj_box": lambda g: (_vec(g), _num(-0.5), _num(0.7)),
    "soft": lambda g: (_vec(g), _vec(g, lo=0.0, hi=1.0)),
    "hard": lambda g: (_vec(g), _num(0.6)),
    "neg": lambda g: (_vec(g),),
    "matmul": lambda g: (_mat(g), _vec(g, n=4)),
    "dot": lambda g: (_vec(g), _vec(g)),
    "transpose": lambda g: (_mat(g),),
    "solve": lambda g: (_spd(g), _vec(g, n=4)),
    "inv": lambda g: (_spd(g),),
    "pinv": lambda g: (_mat(g),),
    "chol": lambda g: (_spd(g),),
    "eigvals": lambda g: (_spd(g),),
    "opnorm": lambda g: (_mat(g),),
    "norm1": lambda g: (_vec(g),),
    "norm2": lambda g: (_mat(g),),
    "sqnorm": lambda g: (_vec(g),),
    "nucnorm": lambda g: (_mat(g),),
    "sum": lambda g: (_mat(g),),
    "mean": lambda g: (_vec(g),),
    "svt": lambda g: (_mat(g), _num(0.8)),
    "block_soft": lambda g: (_vec(g, lo=-0.3, hi=0.3), _num(0.5)),
    "proj_nonneg": lambda g: (_vec(g),),
    "proj_simplex": lambda g: (_vec(g),),
    "proj_l2ball": lambda g: (_vec(g), _num(1.0)),
    "soft_ss": lambda g: (_vec(g), _num(0.3), _num(0.25)),
    "ind_box": lambda g: (_vec(g, lo=-0.4, hi=0.4), _num(-0.5), _num(0.5)),
    "ind_nonneg": lambda g: (_vec(g),),
    "ind_l2ball": lambda g: (_vec(g), _num(100.0)),
    "lt": lambda g: (_vec(g), _vec(g)),
    "ge": lambda g: (_vec(g), _num(0.1)),
    # where's condition reaches the rendering as a boolean (the printer makes it one)
    "where": lambda g: (_vec(g) > 0, _vec(g), _num(-3.0)),
    "trace": lambda g: (_mat(g, 4, 4),),
    "outer": lambda g: (_vec(g, n=3), _vec(g, n=5)),
    "diag": lambda g: (_vec(g),),
    "logsumexp": lambda g: (_mat(g) * 300,),  # exp(300) overflows float64 without the shift
    "logsumexp_rows": lambda g: (_mat(g) * 300,),
}
VARIANTS = {"min": [1, 2], "max": [1, 2], "block_soft": [2]}  # min(v) is a reduction


def _type(x: torch.Tensor):
    if x.dim() == 0:
        return SCALAR
    return vector(x.shape[0]) if x.dim() == 1 else matrix(*x.shape)


@dataclasses.dataclass(frozen=True)
class _Typed:
    type: object


class _Dims:
    """A DimTable stand-in for shape rules on concrete sizes."""

    def unify(self, a, b):
        return a == b

    def find(self, a):
        return a

    def resolve(self, t):
        return t

    def fresh(self):
        return 0


def _generated_value(name, args):
    d = OPS[name]
    names = [f"a{i}" for i in range(len(args))]
    codes = [Code(n, PREC_ATOM, _type(a)) for n, a in zip(names, args)]
    out_type = d.shape(_Dims(), [_Typed(c.type) for c in codes])
    text, _ = d.render(codes, out_type)
    scope = {"torch": torch, "like": torch.empty((), dtype=torch.float64)} | dict(zip(names, args))
    if d.helper:
        exec(HELPERS[d.helper], scope)  # noqa: S102 - the project's own helper source
    return eval(text, scope)  # noqa: S307 - code the table printed


def _default_args(name: str):
    """For an elementwise operator not listed in ARGS: a vector in (0.1, 2), then scalars."""
    further = OPS[name].arity[0] - 1
    return lambda g: (_vec(g, lo=0.1, hi=2.0), *(_num(0.5 + 0.25 * i) for i in range(further)))


COMPARED = sorted(set(ARGS) | {n for n, d in OPS.items() if d.elementwise})


@pytest.mark.parametrize("name", COMPARED)
def test_semantics_match_the_generated_code(name):
    fn, call = interpreter.semantics(name)
    assert call == "values"
    make = ARGS.get(name) or _default_args(name)
    for arity in VARIANTS.get(name, [None]):
        for seed in range(3):
            args = make(_gen(seed))[:arity]
            want = _generated_value(name, args)
            got = fn(*args)
            torch.testing.assert_close(got, torch.as_tensor(want, dtype=got.dtype),
                                       check_dtype=False, msg=f"{name}{tuple(args)}")


def test_block_soft_semantics_on_both_sides_of_the_threshold():
    v = torch.tensor([3.0, 4.0], dtype=torch.float64)  # ||v|| = 5
    fn, _ = interpreter.semantics("block_soft")
    torch.testing.assert_close(fn(v, _num(1.0)), v * 0.8)
    torch.testing.assert_close(fn(v, _num(6.0)), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(_generated_value("block_soft", (v, _num(1.0))), v * 0.8)


def test_binder_and_net_semantics_run_in_the_interpreter():
    """`autograd` evaluates its own arguments (it binds the parameter); `net` applies the
    callable the caller supplies."""
    v = Sym("v", vector(3), "arg")
    s = Sym("s", vector(3), "state")
    it = interpreter.Interpreter(None, {}, torch.float64)
    point = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    grad = Op("autograd", (v, Op("sqnorm", (v,), SCALAR), s), vector(3))
    torch.testing.assert_close(it.eval(grad, {"s": point}), 2 * point)
    psi = Sym("psi", vector(3), "net")
    applied = Op("net", (psi, s), vector(3))
    torch.testing.assert_close(it.eval(applied, {"s": point, "psi": torch.tanh}),
                               torch.tanh(point))


# ---- the convergence analysis reads the facts ---------------------------------------------------
HEADER = """algorithm T "test."
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
let    L = opnorm(H)^2
train  mu : scalar shared = 1 / L
train  t : scalar shared = 0.1
layers 4:
    s <- {update}
output s
"""


def _derived(update: str):
    art = unfoldc.compile_source(Source("t.unf", HEADER.format(update=update)))
    return derive(art.program)


def test_abs_of_a_gradient_step_is_not_a_proximal_gradient_step():
    """Regression: `abs` was treated as a proximal map, so the report claimed monotone descent."""
    an = _derived("abs(s - mu * H.T @ (H @ s - x))")
    assert not any(c.kind == "descent" for c in an.conditions)
    assert not an.layer.prox  # no threshold or prox use either
    bound = next(c for c in an.conditions if c.kind == "lipschitz")
    assert bound.text() == "||I - mu * (H.T @ H)|| < 1"  # still 1-Lipschitz: the bound stands


def test_group_lasso_block_soft_gets_its_threshold_condition():
    """Regression: `block_soft` (the prox of t ||.||_2) was missing from the analysis."""
    an = _derived("block_soft(s - mu * H.T @ (H @ s - x), t)")
    conds = {(c.kind, c.text(), c.note) for c in an.conditions}
    assert ("threshold", "t >= 0", "block_soft threshold") in conds
    assert any(c.kind == "descent" for c in an.conditions)  # a proximal-gradient step
    bound = next(c for c in an.conditions if c.kind == "lipschitz")
    assert bound.text() == "||I - mu * (H.T @ H)|| < 1"


MATRIX_HEADER = HEADER.replace("input  x : vector[m]", "input  x : matrix[m, k]").replace(
    "state  s : vector[n] = 0", "state  s : matrix[n, k] = 0")
PARAMS = ["mu", "t"]  # the further arguments of a call, by position (both state-free)


def _prox_call(name: str) -> str:
    further = PARAMS[-(OPS[name].arity[1] - 1):] if OPS[name].arity[1] > 1 else []
    return f"{name}({', '.join(['s - mu * H.T @ (H @ s - x)'] + further)})"


def _derived_on_any_state(update: str):
    """On a vector state, or a matrix state for operators that need one (svt)."""
    try:
        return _derived(update)
    except unfoldc.UserError:
        art = unfoldc.compile_source(Source("t.unf", MATRIX_HEADER.format(update=update)))
        return derive(art.program)


@pytest.mark.parametrize("name", sorted(n for n, d in OPS.items() if d.lipschitz.kind == "prox"))
def test_every_proximal_map_gets_the_conditions_of_its_entry(name):
    an = _derived_on_any_state(_prox_call(name))
    assert [u.op for u in an.layer.prox] == [name]
    further = PARAMS[-(OPS[name].arity[1] - 1):] if OPS[name].arity[1] > 1 else []

    def side(x):
        return further[x.index - 1] if isinstance(x, Arg) else f"{x:g}"
    want = [(f"{side(c.lhs)} {c.op} {side(c.rhs)}", c.note) for c in OPS[name].conditions]
    assert [(c.text(), c.note) for c in an.conditions if c.kind == "threshold"] == want
    assert any(c.kind == "descent" for c in an.conditions)  # a proximal-gradient step
