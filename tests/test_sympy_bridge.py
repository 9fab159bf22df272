"""The IR <-> sympy bridge (ir/sympy_bridge.py) and the folding constructors (ir/fold.py).

Every operator a policy translates by its table form round-trips IR -> sympy -> IR to an
expression with the same value (the IR interpreter is the oracle) and the same sympy form; what
a policy does not translate is an opaque symbol that comes back as itself, or `Unsupported`.
"""

from __future__ import annotations

import pytest
import sympy
import torch

from unfoldc.convergence.linear import COEFFICIENTS, simplify
from unfoldc.ir import fold
from unfoldc.ir.calculus import MATRIX_CALCULUS
from unfoldc.ir.expr import Const, Op, Sym
from unfoldc.ir.interpreter import Interpreter
from unfoldc.ir.pretty import pretty
from unfoldc.ir.sympy_bridge import Policy, Unsupported, from_sympy, to_sympy
from unfoldc.ir.types import SCALAR, matrix, vector
from unfoldc.ops import OPS, ShapeError

DIMS = {"m": 3, "n": 4}
a, b = Sym("a", SCALAR, "param"), Sym("b", SCALAR, "param")
v, w = Sym("v", vector("n"), "given"), Sym("w", vector("n"), "given")
H, G = Sym("H", matrix("m", "n"), "given"), Sym("G", matrix("n", "n"), "given")
x = Sym("x", vector("m"), "input")
# Every operator and function of the table, translated where it has a sympy form.
EVERYTHING = Policy(frozenset(OPS), arrays="opaque", other="opaque")


def env(seed: int = 0) -> dict:
    """Positive scalars (log, sqrt, fractional powers) and random arrays, in float64."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64) + 0.5  # noqa: E731
    return {"a": rand(()), "b": rand(()), "v": rand(4), "w": rand(4), "H": rand(3, 4),
            "G": rand(4, 4), "x": rand(3)}


def value(e):
    return Interpreter(None, DIMS, torch.float64).eval(e, env())


def round_trip(e, policy):
    table: dict = {}
    s = to_sympy(e, policy, table)
    back = from_sympy(s, table)
    torch.testing.assert_close(value(back), value(e), rtol=1e-12, atol=1e-12)
    assert to_sympy(back, policy) == s, (pretty(e), pretty(back))
    return s, back


# ---- the convergence analysis's coefficients ----------------------------------------------------
@pytest.mark.parametrize("op", sorted(COEFFICIENTS.ops))
def test_every_coefficient_operator_round_trips(op):
    e = fold.node(op, *(a, b)[:OPS[op].arity[1]])
    s, _ = round_trip(e, COEFFICIENTS)
    assert not s.is_Symbol, f"`{op}` should be translated by its table form, not kept opaque"


def test_coefficients_keep_non_scalar_subterms_opaque():
    e = fold.node("add", fold.node("mul", a, fold.node("norm1", v)), fold.node("dot", v, w))
    s, _ = round_trip(e, COEFFICIENTS)
    assert {str(x) for x in s.free_symbols} == {"a", "[norm1(v)]", "[dot(v, w)]"}
    assert str(to_sympy(v, COEFFICIENTS)) == "[v]"


def test_simplified_sums_put_negative_terms_last():
    """`1 - 2 * lam`, not `1 + -2 * lam` (how reports read a simplified coefficient)."""
    lam = Sym("lam", SCALAR, "param")
    c = fold.node("sub", fold.node("sub", Const(1.0), lam), lam)
    assert pretty(simplify(c)) == "1 - 2 * lam"
    assert pretty(simplify(fold.node("sub", fold.node("add", lam, Const(0.5)), Const(1.0)))) \
        == "lam - 0.5"


# ---- matrix calculus ----------------------------------------------------------------------------
MATRIX_CASES = {
    "add": (v, w), "sub": (v, w), "neg": (H,), "mul": (a, v), "div": (v, a),
    "matmul": (H, v), "transpose": (H,), "sqnorm": (v,), "dot": (v, w), "pow": (a, b),
}


def test_the_cases_cover_the_policy():
    assert set(MATRIX_CASES) == MATRIX_CALCULUS.ops


@pytest.mark.parametrize("op", sorted(MATRIX_CASES))
def test_every_matrix_calculus_operator_round_trips(op):
    round_trip(fold.node(op, *MATRIX_CASES[op]), MATRIX_CALCULUS)


@pytest.mark.parametrize("e", [
    fold.node("matmul", fold.node("transpose", H), H),  # matrix @ matrix
    fold.node("sqnorm", fold.node("sub", fold.node("matmul", H, v), x)),
    fold.node("mul", v, a),  # a scalar on the right
    fold.node("dot", v, fold.node("matmul", G, w)),  # v^T G w
    fold.node("matmul", v, w),  # a vector on the left is a transposed column: v^T w
    fold.node("matmul", v, fold.node("transpose", H)),  # v @ H.T is H v
], ids=pretty)
def test_matrix_expressions_round_trip(e):
    round_trip(e, MATRIX_CALCULUS)


@pytest.mark.parametrize("e", [
    fold.node("mul", v, w),  # Hadamard product: no closed form in sympy's matrix calculus
    fold.node("div", v, w),  # elementwise division by a vector
    fold.node("pow", v, Const(2.0)),  # elementwise power (sympy's H**2 is the matrix power)
    fold.node("exp", a),  # not an operator the policy differentiates
    fold.node("soft", v, a),  # no closed form at all
], ids=pretty)
def test_matrix_calculus_rejects_what_it_has_no_form_for(e):
    with pytest.raises(Unsupported):
        to_sympy(e, MATRIX_CALCULUS)


def test_a_frobenius_norm_differentiates_to_the_matrix():
    table: dict = {}
    f = to_sympy(fold.node("sqnorm", H), MATRIX_CALCULUS, table)  # tr(H^T H)
    assert isinstance(f, sympy.Trace)
    g = from_sympy(sympy.diff(f, to_sympy(H, MATRIX_CALCULUS, table)), table)
    assert g == fold.node("mul", Const(2.0), H)


def test_a_gradient_reads_back_as_the_textbook_formula():
    table: dict = {}
    f = to_sympy(fold.node("mul", Const(0.5), fold.node(
        "sqnorm", fold.node("sub", fold.node("matmul", H, v), x))), MATRIX_CALCULUS, table)
    g = sympy.diff(f, to_sympy(v, MATRIX_CALCULUS, table))
    assert pretty(from_sympy(sympy.expand(g), table)) == "H.T @ H @ v - H.T @ x"


# ---- operators without a closed form: uninterpreted functions, read back by their head --------
def _scalar_ops():
    """Every operator of the table that takes scalars (array-only operators are skipped)."""
    out = []
    for name, d in sorted(OPS.items()):
        if d.internal or d.arity[1] == 0:
            continue
        try:
            out.append(fold.node(name, *(a, b, Const(0.25))[:d.arity[1]]))
        except ShapeError:
            continue
    return out


@pytest.mark.parametrize("e", _scalar_ops(), ids=lambda e: e.op)
def test_every_scalar_operator_round_trips_under_a_policy_taking_everything(e):
    """A closed form comes back through its sympy function (`Abs` is `abs`); an uninterpreted
    function (`soft`) is no closed form: an opaque symbol standing for the term itself."""
    s, back = round_trip(e, EVERYTHING)
    form = OPS[e.op].sympy(*(sympy.Symbol(f"x{i}", real=True) for i in range(len(e.args))))
    opaque = s.is_Symbol and str(s).startswith("[")
    assert opaque == isinstance(form, sympy.core.function.AppliedUndef), (e.op, s)
    if opaque:
        assert back == e


def test_an_operator_outside_the_policy_is_opaque_or_rejected():
    e = fold.node("soft", a, b)
    table: dict = {}
    s = to_sympy(e, COEFFICIENTS, table)
    assert str(s) == "[soft(a, b)]" and from_sympy(s, table) == e
    assert str(to_sympy(e, EVERYTHING)) == "[soft(a, b)]"  # an uninterpreted form: opaque too
    with pytest.raises(Unsupported):
        to_sympy(e, Policy(frozenset({"add"}), arrays="opaque", other="reject"))


def test_what_has_no_ir_reading_is_unsupported():
    with pytest.raises(Unsupported):
        from_sympy(sympy.Symbol("unknown"), {})
    with pytest.raises(Unsupported):
        from_sympy(sympy.zoo, {})
    with pytest.raises(Unsupported):
        from_sympy(sympy.gamma(sympy.Symbol("a", real=True)), {sympy.Symbol("a", real=True): a})


# ---- folding constructors -----------------------------------------------------------------------
def test_folding_constructors():
    assert fold.mul(Const(2.0), Const(3.0)) == Const(6.0)
    assert fold.mul(fold.ONE, v) == v and fold.mul(a, fold.ONE) == a
    assert fold.mul(a, Const(2.0)) == fold.node("mul", Const(2.0), a)  # constant first
    assert fold.mul(fold.ZERO, a) == fold.ZERO and fold.mul(fold.ZERO, v).type == v.type
    assert fold.add(fold.ZERO, a) == a and fold.add(a, fold.neg(b)) == fold.node("sub", a, b)
    assert fold.neg(fold.neg(a)) == a and fold.neg(Const(2.0)) == Const(-2.0)
    assert fold.neg(fold.mul(Const(-2.0), a)) == fold.node("mul", Const(2.0), a)
    assert fold.div(a, fold.ONE) == a


def test_node_types_by_the_shape_rule():
    batched = Sym("s", vector("n", batched=True), "state")
    e = fold.node("matmul", H, batched)
    assert e.type == vector("m", batched=True)
    assert isinstance(e, Op)
    with pytest.raises(ShapeError):
        fold.node("matmul", v, H)


def test_a_policy_names_operators_of_the_table_and_known_choices():
    with pytest.raises(ValueError, match="frobnicate"):
        Policy(frozenset({"add", "frobnicate"}), arrays="opaque", other="opaque")
    with pytest.raises(ValueError, match="arrays"):
        Policy(frozenset({"add"}), arrays="columns", other="opaque")
