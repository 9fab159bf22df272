"""`grad(f, v)`: derived gradients (sympy, rule-based Hadamard reverse mode) against autograd.

Every case compiles a one-layer network `s <- s - grad(f, s)` from `s = z`, so that
`z - model(z)` is the compiled gradient at random points z; the oracle is torch.autograd on the
objective written by hand in the test. Cases marked `fallback` must be computed by autograd
and say so in the generated docstring; the others must not contain autograd at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from conftest import EXAMPLES

import unfoldc
from unfoldc.ir.calculus import gradient
from unfoldc.ir.expr import Op, Sym
from unfoldc.ir.types import Type

F64 = torch.float64
TOL = {"rtol": 1e-9, "atol": 1e-11}
SIZES = {"m": 5, "n": 4, "h": 3, "w": 6}
DECLS = {
    "H": "given H : matrix[m, n]", "W": "given W : matrix[n, n]", "d": "given d : vector[n]",
    "A": "given A : matrix[m, h]", "M": "given M : matrix[h, w]",
    "x": "input x : vector[m]", "Y": "input Y : matrix[m, w]", "Q": "input Q : matrix[h, w]",
}


@dataclass
class Case:
    body: str
    uses: tuple[str, ...]  # givens and inputs besides z
    oracle: object  # (v, tensors) -> per-sample objective
    kind: str = "vector"  # the type of the variable
    fallback: bool = False
    extra: tuple[str, ...] = field(default_factory=tuple)  # more declarations (trainables)


def lsq(v, t):
    return 0.5 * ((v @ t["H"].T - t["x"]) ** 2).sum(-1)


CASES = {
    "least_squares": Case("0.5 * sqnorm(H @ v - x)", ("H", "x"), lsq),
    "least_squares_transposed": Case("0.5 * sqnorm(x - H @ v) / 3", ("H", "x"),
                                     lambda v, t: lsq(v, t) / 3),
    "quadratic_form": Case("dot(v, W @ v)", ("W",),
                           lambda v, t: (v * (v @ t["W"].T)).sum(-1)),
    "quadratic_minus_linear": Case(
        "0.5 * dot(v, W @ v) - dot(d, v) + 2", ("W", "d"),
        lambda v, t: 0.5 * (v * (v @ t["W"].T)).sum(-1) - (t["d"] * v).sum(-1) + 2),
    "ridge": Case("0.5 * sqnorm(H @ v - x) + rho * sqnorm(v)", ("H", "x"),
                  lambda v, t: lsq(v, t) + 0.3 * (v**2).sum(-1),
                  extra=("param rho : scalar = 0.3",)),
    # A vector on the left of `@` is a transposed column (ops.py's sympy form of matmul):
    # derived by sympy, where these went to autograd before the IR <-> sympy bridge.
    "quadratic_form_by_matmul": Case("v @ (W @ v) - d @ v", ("W", "d"),
                                     lambda v, t: (v * (v @ t["W"].T)).sum(-1)
                                     - (t["d"] * v).sum(-1)),
    "row_vector_times_matrix": Case("0.5 * sqnorm(v @ W)", ("W",),
                                    lambda v, t: 0.5 * ((v @ t["W"]) ** 2).sum(-1)),
    "hadamard_vector": Case("0.5 * sqnorm(d * v - H.T @ x)", ("d", "H", "x"),
                            lambda v, t: 0.5 * ((t["d"] * v - t["x"] @ t["H"]) ** 2).sum(-1)),
    "hadamard_inside_product": Case(
        "0.5 * sqnorm(H @ (d * v) - x)", ("H", "d", "x"),
        lambda v, t: 0.5 * (((t["d"] * v) @ t["H"].T - t["x"]) ** 2).sum(-1)),
    "hadamard_matrix": Case("0.5 * sqnorm(M * V - Q)", ("M", "Q"),
                            lambda v, t: 0.5 * ((t["M"] * v - t["Q"]) ** 2).sum((-2, -1)),
                            kind="matrix"),
    "matrix_least_squares": Case("0.5 * sqnorm(A @ V - Y)", ("A", "Y"),
                                 lambda v, t: 0.5 * ((t["A"] @ v - t["Y"]) ** 2).sum((-2, -1)),
                                 kind="matrix"),
    "learned_per_layer": Case(
        "0.5 * sqnorm(Hk @ v - x) + lam * sqnorm(v)", ("H", "x"),
        lambda v, t: 0.5 * ((v @ t["Hk"].T - t["x"]) ** 2).sum(-1) + t["lam"] * (v**2).sum(-1),
        extra=("train Hk : matrix[m, n] per_layer = H", "train lam : scalar per_layer = 0.2")),
    "norm1": Case("norm1(v)", (), lambda v, t: v.abs().sum(-1), fallback=True),
    "sqrt_of_sqnorm": Case("sqrt(1 + sqnorm(v))", (),
                           lambda v, t: torch.sqrt(1 + (v**2).sum(-1)), fallback=True),
    "lasso_mixed": Case("0.5 * sqnorm(H @ v - x) + 0.1 * norm1(v)", ("H", "x"),
                        lambda v, t: lsq(v, t) + 0.1 * v.abs().sum(-1), fallback=True),
    "sum_exp": Case("sum(exp(v)) - 0.5 * sqnorm(v)", (),
                    lambda v, t: torch.exp(v).sum(-1) - 0.5 * (v**2).sum(-1), fallback=True),
}


def spec(case: Case) -> str:
    var = "V" if case.kind == "matrix" else "v"
    typ = "matrix[h, w]" if case.kind == "matrix" else "vector[n]"
    lines = ["algorithm G"] + [DECLS[u] for u in case.uses] + [
        f"input z : {typ}", f"state s : {typ} = z", *case.extra,
        f"func f({var} : {typ}) = {case.body}", "layers 1:", "    s <- s - grad(f, s)",
        "output s"]
    return "\n".join(lines) + "\n"


def tensors(seed: int, batch: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    m, n, h, w = (SIZES[k] for k in "mnhw")
    shapes = {"H": (m, n), "W": (n, n), "d": (n,), "A": (m, h), "M": (h, w),
              "x": (batch, m), "Y": (batch, m, w), "Q": (batch, h, w)}
    return {k: torch.randn(*s, generator=g, dtype=F64) for k, s in shapes.items()}


def compiled_and_oracle(case: Case, seed: int):
    cls = unfoldc.load_source(spec(case))
    t = tensors(seed)
    model = cls(**{k: t[k] for k in cls.GIVENS})
    if case.extra and "Hk" in spec(case):  # move the learned parameters off their init
        g = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            model.layers[0].Hk.add_(0.3 * torch.randn(model.layers[0].Hk.shape, generator=g,
                                                      dtype=F64))
            model.layers[0].lam.fill_(0.7)
        t = dict(t, Hk=model.layers[0].Hk.detach(), lam=0.7)
    g = torch.Generator().manual_seed(seed + 7)
    shape = (3, SIZES["h"], SIZES["w"]) if case.kind == "matrix" else (3, SIZES["n"])
    z = torch.randn(*shape, generator=g, dtype=F64)
    inputs = {k: t[k] for k in cls.INPUTS if k != "z"}
    with torch.no_grad():
        derived = z - model(z=z, **inputs)
    v = z.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(case.oracle(v, t).sum(), v)
    return derived, want


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_autograd(name, seed):
    derived, want = compiled_and_oracle(CASES[name], seed)
    torch.testing.assert_close(derived, want, **TOL)


@pytest.mark.parametrize("name", sorted(CASES))
def test_autograd_only_where_needed_and_noted(name):
    case = CASES[name]
    code = _compile_text(spec(case))
    doc = code.split('"""')[1]
    if case.fallback:
        assert "autograd_grad(" in code
        assert "computed by autograd" in doc
    else:  # (fixed_point()'s implicit backward uses torch.autograd in every module)
        assert "autograd_grad" not in code
        assert "computed by autograd" not in doc


def _compile_text(text: str) -> str:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.unf"
        path.write_text(text)
        return unfoldc.compile(path).code


def test_gd_steps_gradient_is_explicit():
    code = unfoldc.compile(EXAMPLES / "gd_steps.unf").code
    assert "autograd_grad" not in code  # (fixed_point()'s runtime uses torch.autograd)
    assert "HtH = self.H.mT @ self.H" in code
    assert "s = s - mu * (s @ HtH - Htx)" in code


def test_fallback_gradient_is_differentiable():
    """The autograd fallback keeps the graph: float64 gradcheck through it (second order)."""
    cls = unfoldc.load_source(spec(CASES["sqrt_of_sqnorm"]))
    model = cls()
    z = torch.randn(2, SIZES["n"], dtype=F64, generator=torch.Generator().manual_seed(3),
                    requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: model(z=z), (z,))


def test_gradient_function_splits_derived_and_fallback_terms():
    v = Sym("v", Type("vector", ("n",)), "arg")
    H = Sym("H", Type("matrix", ("m", "n")), "given")
    x = Sym("x", Type("vector", ("m",)), "input")
    from unfoldc.ir.retype import retype

    resid = retype(Op("sub", (retype(Op("matmul", (H, v), None)), x), None))
    f = retype(Op("add", (retype(Op("sqnorm", (resid,), None)),
                          retype(Op("norm1", (v,), None))), None))
    g = gradient(f, v)
    assert g.derived is not None and len(g.fallback) == 1
    assert g.fallback[0].op == "norm1"
    assert gradient(retype(Op("norm1", (x,), None)), v).derived is None  # no dependence
