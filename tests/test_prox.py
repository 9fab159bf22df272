"""`prox(c * g, v)`: every closed form of ir/prox.py against brute-force minimization.

p = prox_{c g}(z) minimizes F(u) = c g(u) + 0.5 ||u - z||^2, which is 1-strongly convex, so
    F(u) >= F(p) + 0.5 ||u - p||^2   for every u          (optimality, checked on many u)
and, for separable g, p is found coordinate by coordinate by a dense grid search (brute force).
Indicators are checked through feasibility and the projection inequality
<z - p, u - p> <= 0 for feasible u. Unsupported functions give E0308 with the supported list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import torch

import unfoldc
from unfoldc.diagnostics import UserError
from unfoldc.ir.interpreter import run as interpret
from unfoldc.ir.pretty import pretty
from unfoldc.source import Source

F64 = torch.float64
N, H, W = 6, 4, 5
C = 0.7  # the weight c in prox(c * g, v)
INF = float("inf")


def box(lo, hi):
    return lambda u: torch.where(((u >= lo - 1e-12) & (u <= hi + 1e-12)).all(-1), 0.0, INF)


def nonneg(u):
    return torch.where((u >= -1e-12).all(-1), 0.0, INF)


def simplex(u):
    ok = (u >= -1e-12).all(-1) & ((u.sum(-1) - 1).abs() < 1e-9)
    return torch.where(ok, 0.0, INF)


def ball(r):
    return lambda u: torch.where(u.norm(dim=-1) <= r + 1e-12, 0.0, INF)


def l1(u):
    return u.abs().sum(-1)


def sq(u):
    return (u**2).sum(-1)


WEIGHT = torch.tensor([0.0, 0.5, 1.0, 2.0, 0.3, 1.5], dtype=F64)
Y0 = torch.tensor([0.4, -1.2, 0.0, 2.5, -0.3, 0.9], dtype=F64)  # a translation / data vector
A0 = torch.linspace(-1.0, 1.3, 4 * N, dtype=F64).reshape(4, N).sin()  # a 4 x N operator
Y4 = torch.tensor([1.0, -0.5, 0.25, 2.0], dtype=F64)  # data of A0 @ u
Z0 = torch.linspace(-1.0, 1.0, H * W, dtype=F64).reshape(H, W)  # a matrix translation
# given name -> (declared type, value)
GIVENS = {"wt": ("vector[n]", WEIGHT), "y0": ("vector[n]", Y0), "A0": ("matrix[k, n]", A0),
          "y4": ("vector[k]", Y4), "Z0": ("matrix[h, w]", Z0)}


@dataclass
class Case:
    body: str
    g: object  # u -> g(u) (per row; +inf outside a set)
    separable: bool = True
    feasible: object = None  # sampler of feasible points (for indicators)
    matrix: bool = False


def feasible_box(lo, hi):
    return lambda k, g: lo + (hi - lo) * torch.rand(k, N, generator=g, dtype=F64)


def feasible_simplex(k, g):
    e = -torch.log(torch.rand(k, N, generator=g, dtype=F64))
    return e / e.sum(-1, keepdim=True)


def feasible_ball(r):
    def draw(k, g):
        d = torch.randn(k, N, generator=g, dtype=F64)
        return r * torch.rand(k, 1, generator=g, dtype=F64) ** (1 / N) * d / d.norm(dim=-1,
                                                                                  keepdim=True)
    return draw


def nuc(U):
    return torch.linalg.svdvals(U).sum(-1)


CASES = {
    "norm1": Case("norm1(v)", l1),
    "scaled_norm1": Case("rho * norm1(v) / 2", lambda u: 0.4 * l1(u) / 2),
    "weighted_norm1": Case("norm1(wt * v)", lambda u: (WEIGHT * u).abs().sum(-1)),
    "sqnorm": Case("sqnorm(v)", sq),
    "half_sqnorm": Case("0.5 * sqnorm(v)", lambda u: 0.5 * sq(u)),
    "norm2": Case("norm2(v)", lambda u: u.norm(dim=-1), separable=False),
    "nucnorm": Case("nucnorm(V)", nuc, separable=False, matrix=True),
    "box": Case("ind_box(v, -0.5, 0.3)", box(-0.5, 0.3), feasible=feasible_box(-0.5, 0.3)),
    "nonneg": Case("ind_nonneg(v)", nonneg, feasible=feasible_box(0.0, 3.0)),
    "simplex": Case("ind_simplex(v)", simplex, separable=False, feasible=feasible_simplex),
    "l2ball": Case("ind_l2ball(v, 0.8)", ball(0.8), separable=False, feasible=feasible_ball(0.8)),
    "norm1_plus_sqnorm": Case("norm1(v) + 0.5 * sqnorm(v)", lambda u: l1(u) + 0.5 * sq(u)),
    "weighted_norm1_plus_sqnorm": Case("norm1(wt * v) + rho * sqnorm(v)",
                                       lambda u: (WEIGHT * u).abs().sum(-1) + 0.4 * sq(u)),
    "norm2_plus_sqnorm": Case("2 * norm2(v) + sqnorm(v)", lambda u: 2 * u.norm(dim=-1) + sq(u),
                              separable=False),
    "nucnorm_plus_sqnorm": Case("nucnorm(V) + 0.3 * sqnorm(V)",
                                lambda U: nuc(U) + 0.3 * (U**2).sum((-2, -1)), separable=False,
                                matrix=True),
    "norm1_plus_box": Case("0.5 * norm1(v) + ind_box(v, -0.2, 0.5)",
                           lambda u: 0.5 * l1(u) + box(-0.2, 0.5)(u),
                           feasible=feasible_box(-0.2, 0.5)),
    "norm1_plus_nonneg": Case("norm1(v) + ind_nonneg(v)", lambda u: l1(u) + nonneg(u),
                              feasible=feasible_box(0.0, 3.0)),
    "sqnorm_plus_box": Case("sqnorm(v) + ind_box(v, -0.2, 0.5)",
                            lambda u: sq(u) + box(-0.2, 0.5)(u), feasible=feasible_box(-0.2, 0.5)),
    "sqnorm_plus_nonneg": Case("ind_nonneg(v) + 2 * sqnorm(v)", lambda u: nonneg(u) + 2 * sq(u),
                               feasible=feasible_box(0.0, 3.0)),
    "simplex_plus_sqnorm": Case("ind_simplex(v) + sqnorm(v)", lambda u: simplex(u) + sq(u),
                                separable=False, feasible=feasible_simplex),
    "l2ball_plus_sqnorm": Case("ind_l2ball(v, 0.8) + sqnorm(v)", lambda u: ball(0.8)(u) + sq(u),
                               separable=False, feasible=feasible_ball(0.8)),
    "two_sqnorms_and_norm1": Case("norm1(v) + sqnorm(v) + 2 * sqnorm(v)",
                                  lambda u: l1(u) + 3 * sq(u)),
    # quadratics and translations (issue 12, construct 7)
    "half_sqnorm_translated": Case("0.5 * sqnorm(v - y0)", lambda u: 0.5 * sq(u - Y0)),
    "sqnorm_reversed": Case("rho * sqnorm(y0 - v)", lambda u: 0.4 * sq(Y0 - u)),
    "sqnorm_plus_offset": Case("sqnorm(v + y0)", lambda u: sq(u + Y0)),
    "two_translated_sqnorms": Case("0.5 * sqnorm(v - y0) + sqnorm(v - wt)",
                                   lambda u: 0.5 * sq(u - Y0) + sq(u - WEIGHT)),
    "norm1_plus_translated_sqnorm": Case("rho * norm1(v) + 0.5 * sqnorm(v - y0)",
                                         lambda u: 0.4 * l1(u) + 0.5 * sq(u - Y0)),
    "least_squares": Case("0.5 * sqnorm(A0 @ v - y4)", lambda u: 0.5 * sq(u @ A0.T - Y4),
                          separable=False),
    "least_squares_no_data": Case("2 * sqnorm(A0 @ v)", lambda u: 2 * sq(u @ A0.T),
                                  separable=False),
    "least_squares_reversed": Case("sqnorm(y4 - A0 @ v) / 2", lambda u: sq(Y4 - u @ A0.T) / 2,
                                   separable=False),
    "ridge_least_squares": Case("0.5 * sqnorm(A0 @ v - y4) + rho * sqnorm(v - y0)",
                                lambda u: 0.5 * sq(u @ A0.T - Y4) + 0.4 * sq(u - Y0),
                                separable=False),
    "norm1_translated": Case("norm1(v - y0)", lambda u: l1(u - Y0)),
    "norm1_translated_by_scalar": Case("norm1(v - 0.5)", lambda u: l1(u - 0.5)),
    "norm1_translated_by_a_sum": Case("norm1(v + y0)", lambda u: l1(u + Y0)),
    "box_translated_by_a_sum": Case("ind_box(y0 + v, -0.5, 0.3)", lambda u: box(-0.5, 0.3)(u + Y0),
                                    feasible=lambda k, g: -Y0 + feasible_box(-0.5, 0.3)(k, g)),
    "weighted_norm1_translated": Case("rho * norm1(wt * (v - y0))",
                                      lambda u: 0.4 * (WEIGHT * (u - Y0)).abs().sum(-1)),
    "norm2_translated": Case("norm2(v - y0)", lambda u: (u - Y0).norm(dim=-1), separable=False),
    "nucnorm_translated": Case("nucnorm(V - Z0)", lambda U: nuc(U - Z0), separable=False,
                               matrix=True),
    "box_translated": Case("ind_box(v - y0, -0.5, 0.3)", lambda u: box(-0.5, 0.3)(u - Y0),
                           feasible=lambda k, g: Y0 + feasible_box(-0.5, 0.3)(k, g)),
    "l2ball_translated": Case("ind_l2ball(v - y0, 0.8)", lambda u: ball(0.8)(u - Y0),
                              separable=False,
                              feasible=lambda k, g: Y0 + feasible_ball(0.8)(k, g)),
    "norm1_plus_box_translated": Case(
        "0.5 * norm1(v - y0) + ind_box(v - y0, -0.2, 0.5)",
        lambda u: 0.5 * l1(u - Y0) + box(-0.2, 0.5)(u - Y0),
        feasible=lambda k, g: Y0 + feasible_box(-0.2, 0.5)(k, g)),
    "translated_plus_translated_sqnorm": Case(
        "norm2(v - y0) + sqnorm(v - wt)", lambda u: (u - Y0).norm(dim=-1) + sq(u - WEIGHT),
        separable=False),
}


def spec(case: Case) -> str:
    typ = "matrix[h, w]" if case.matrix else "vector[n]"
    var = "V" if case.matrix else "v"
    givens = [f"given {k} : {t}" for k, (t, _) in GIVENS.items() if _reads(case.body, k)]
    return "\n".join([
        "algorithm P", *givens,
        f"input z : {typ}", f"state s : {typ} = z", "param rho : scalar = 0.4",
        f"param c : scalar = {C}", f"func g({var} : {typ}) = {case.body}", "layers 1:",
        "    s <- prox(c * g, s)", "output s"]) + "\n"


def _reads(body: str, name: str) -> bool:
    return re.search(rf"\b{name}\b", body) is not None


def prox_at(case: Case, z: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model_of(case)(z=z)


def model_of(case: Case) -> torch.nn.Module:
    cls = unfoldc.load_source(spec(case))
    default = torch.get_default_dtype()
    torch.set_default_dtype(F64)  # without givens, parameters take the default dtype
    try:
        model = cls(**{k: v for k, (_, v) in GIVENS.items() if k in cls.GIVENS})
    finally:
        torch.set_default_dtype(default)
    return model


def points(case: Case, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (4, H, W) if case.matrix else (4, N)
    return 1.5 * torch.randn(*shape, generator=g, dtype=F64)


def F(case, u, z):
    return C * case.g(u) + 0.5 * ((u - z) ** 2).flatten(-2 if case.matrix else -1).sum(-1)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_prox_satisfies_strong_convexity_optimality(name, seed):
    case = CASES[name]
    z = points(case, seed)
    p = prox_at(case, z)
    g = torch.Generator().manual_seed(seed + 10)
    for b in range(z.shape[0]):
        fp = F(case, p[b], z[b])
        assert torch.isfinite(fp), "the prox must be feasible"
        cands = [p[b] + t * torch.randn(200, *p.shape[1:], generator=g, dtype=F64)
                 for t in (1e-4, 1e-2, 0.3)]
        if case.feasible is not None:  # feasible points far away and near p (convexity)
            far = case.feasible(200, g)
            cands += [far] + [p[b] + t * (far - p[b]) for t in (1e-3, 0.1)]
        u = torch.cat(cands)
        gap = F(case, u, z[b]) - fp - 0.5 * ((u - p[b]) ** 2).flatten(1).sum(-1)
        assert float(gap.min()) >= -1e-9, f"{name}: a point beats the prox by {-gap.min()}"


@pytest.mark.parametrize("name", [k for k, c in CASES.items() if c.separable])
def test_separable_prox_equals_grid_search(name):
    """Brute force, coordinate by coordinate: a grid of step 1e-4 on [-6, 6], then refined."""
    case = CASES[name]
    z = points(case, 2)
    p = prox_at(case, z)
    for b in range(z.shape[0]):
        best = z[b].clone()
        for i in range(N):
            lo, hi, step = -6.0, 6.0, 1e-3
            for _ in range(3):
                grid = torch.arange(lo, hi + step / 2, step, dtype=F64)
                u = z[b].repeat(len(grid), 1)
                u[:, i] = grid
                vals = F(case, _coordinate_only(case, u, i, z[b]), z[b])
                k = int(vals.argmin())
                lo, hi, step = float(grid[k]) - step, float(grid[k]) + step, step / 100
            best[i] = grid[k]
        torch.testing.assert_close(p[b], best, rtol=0, atol=1e-6)


def _coordinate_only(case, u, i, z):
    """F is a sum over coordinates, so the others only add a constant; for a set, hold them
    at one feasible point so that the constant is finite."""
    if case.feasible is None:
        return u
    rest = case.feasible(1, torch.Generator().manual_seed(0))[0]
    out = rest.repeat(u.shape[0], 1)
    out[:, i] = u[:, i]
    return out


def test_nucnorm_prox_thresholds_singular_values():
    case = CASES["nucnorm"]
    z = points(case, 3)
    p = prox_at(case, z)
    U, s, Vh = torch.linalg.svd(z, full_matrices=False)
    torch.testing.assert_close(p, U * torch.relu(s - C)[..., None, :] @ Vh, rtol=1e-9,
                               atol=1e-10)


# ---- unsupported functions: E0308 with the list of what is supported ----------------------
UNSUPPORTED = {
    "sum_of_norms": "norm1(v) + norm2(v)",
    "exp": "sum(exp(v))",
    "composite": "norm1(H2 @ v)",
    "negative": "sqnorm(v) - norm1(v)",
    "least_squares_plus_norm1": "0.5 * sqnorm(H2 @ v - z) + norm1(v)",
    "two_least_squares": "sqnorm(H2 @ v) + sqnorm(H2.T @ v)",
    "mixed_translations": "norm1(v - z) + norm2(v)",
    "translated_and_not": "norm1(v - z) + ind_box(v, 0, 1)",
    "least_squares_right": "sqnorm(v @ H2)",
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_prox_is_E0308(name):
    body = UNSUPPORTED[name]
    text = spec(Case(body, None)).replace("algorithm P",
                                          "algorithm P\ngiven H2 : matrix[n, n]")
    with pytest.raises(UserError) as err:
        unfoldc.load_source(text)
    diags = [d for d in err.value.diagnostics if d.is_error]
    assert [d.code for d in diags] == ["E0308"]
    assert "norm1(p)" in diags[0].help and "ind_simplex(p)" in diags[0].help
    assert "`g`" in diags[0].message


# ---- quadratics and translations: interpreter, gradients, printed forms ------------------------
NEW = ["half_sqnorm_translated", "two_translated_sqnorms", "norm1_plus_translated_sqnorm",
       "least_squares", "ridge_least_squares", "norm1_translated", "weighted_norm1_translated",
       "nucnorm_translated", "box_translated", "norm1_plus_box_translated"]


@pytest.mark.parametrize("name", NEW)
def test_prox_matches_the_interpreter(name):
    case = CASES[name]
    art = unfoldc.compile_source(Source("p.unf", spec(case)))
    z = points(case, 4)
    givens = {k: v for k, (_, v) in GIVENS.items() if _reads(case.body, k)}
    want = interpret(art.program, givens, {"z": z})
    torch.testing.assert_close(prox_at(case, z), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["half_sqnorm_translated", "least_squares",
                                  "ridge_least_squares", "norm2_translated"])
def test_prox_gradients_in_float64(name):
    case = CASES[name]
    z = points(case, 5).requires_grad_()
    model = model_of(case)
    assert torch.autograd.gradcheck(lambda x: model(z=x), (z,))


def test_prox_closed_forms_read_like_the_textbook():
    """(v + t y) / (1 + t) and solve(I + t A^T A, v + t A^T b), the system hoisted."""
    text = ("algorithm P\ngiven A : matrix[m, n]\ninput b : vector[m]\ninput y : vector[n]\n"
            "state s : vector[n] = 0\nparam t : scalar = 0.5\n"
            "func f(u : vector[n]) = 0.5 * sqnorm(A @ u - b)\n"
            "func h(u : vector[n]) = 0.5 * sqnorm(u - y)\n"
            "layers 2:\n    s <- prox(t * h, s)\n    s <- prox(t * f, s)\noutput s\n")
    art = unfoldc.compile_source(Source("p.unf", text))
    body = [pretty(a.value) for a in art.program.body]
    assert body == ["(s + t * y) / (1 + t)",
                    "solve(eye(n) + t * (A.T @ A), s + t * (A.T @ b))"]
    hoisted = [pretty(a.value) for a in art.optimized.prologue if a.kind == "hoisted"]
    assert "eye(n) + t * (A.T @ A)" in hoisted
