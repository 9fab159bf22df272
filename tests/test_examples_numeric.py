"""Every example network, untrained, equals K iterations of its classical algorithm (float64).

The oracle is tests/reference_loops.py (plain per-sample loops, independent of unfoldc). Checked
for several K (at construction and at call), per-layer histories, batch sizes 1 and 3, perturbed
per-layer trainables, overridden fixed parameters, and float64 gradient checks.
"""

from __future__ import annotations

import functools

import pytest
import torch
from conftest import EXAMPLES
from reference_loops import admm_lasso, fista, ista, lista, lista_cp, lista_cpss, rpca

import unfoldc

F64 = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-12}
SVD_TOL = {"rtol": 1e-7, "atol": 1e-9}  # batched vs per-sample SVDs differ in the last digits
LASSO = {"ista": ista, "lista": lista, "lista_cp": lista_cp, "lista_cpss": lista_cpss,
         "fista": fista, "admm_lasso": admm_lasso}


@functools.cache
def load(name: str) -> type:
    return unfoldc.load(EXAMPLES / f"{name}.unf")


def problem(batch: int, m: int = 6, n: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, n, generator=g, dtype=F64), torch.randn(batch, m, generator=g,
                                                                   dtype=F64)


def assert_same(got, want, tol=TOL):
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w, tol)
    elif isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, **tol)
    else:
        torch.testing.assert_close(got, want, **tol)


@pytest.mark.parametrize("name", sorted(LASSO))
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("K", [1, 2, 5])
def test_lasso_examples_equal_reference(name, batch, K):
    H, x = problem(batch)
    model = load(name)(H=H, num_layers=K)
    out = model(x)
    assert out.shape == (batch, H.shape[1]) and out.dtype == F64
    assert_same(out, LASSO[name](H, x, K))


@pytest.mark.parametrize("name", sorted(LASSO))
def test_num_layers_at_call_and_history(name):
    H, x = problem(3, seed=1)
    model = load(name)(H=H, num_layers=6)
    assert_same(model(x, num_layers=2), LASSO[name](H, x, 2))
    assert_same(model(x, num_layers=6), LASSO[name](H, x, 6))
    assert_same(model(x, all_layers=True), LASSO[name](H, x, 6, all_layers=True))
    assert_same(model(x, num_layers=3, all_layers=True), LASSO[name](H, x, 3, all_layers=True))


def test_default_layer_count_is_the_specs():
    H, x = problem(2)
    model = load("ista")(H=H)
    assert model.num_layers == 16 == len(model.layers)
    assert_same(model(x), ista(H, x, 16))


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("K", [1, 3])
def test_rpca_equals_reference(batch, K):
    Y = torch.randn(batch, 5, 4, generator=torch.Generator().manual_seed(3), dtype=F64)
    model = load("rpca")(num_layers=K)
    out = model(Y)
    assert out.L.shape == out.S.shape == Y.shape
    assert_same(tuple(out), rpca(Y, K), SVD_TOL)
    hist = model(Y, all_layers=True)
    assert_same([tuple(h) for h in hist], rpca(Y, K, all_layers=True), SVD_TOL)


def test_rpca_num_layers_at_call():
    Y = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(4), dtype=F64)
    model = load("rpca")(num_layers=4)
    assert_same(tuple(model(Y, num_layers=2)), rpca(Y, 2), SVD_TOL)


def _randomize(model, scale=0.3, seed=5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _per_layer(model, name):
    return [getattr(layer, name).detach() for layer in model.layers]


@pytest.mark.parametrize("name, fields", [
    ("ista", ("mu", "rho")), ("fista", ("mu", "rho")), ("lista", ("W1", "W2", "theta")),
    ("lista_cp", ("W", "theta")), ("lista_cpss", ("W", "theta")), ("admm_lasso", ("beta",)),
])
def test_trained_per_layer_values_are_used_per_layer(name, fields):
    H, x = problem(3, seed=2)
    model = load(name)(H=H, num_layers=3)
    _randomize(model)
    values = {f: _per_layer(model, f) for f in fields}
    assert not torch.equal(values[fields[0]][0], values[fields[0]][1])
    assert_same(model(x), LASSO[name](H, x, 3, **values))


def test_rpca_trained_per_layer_values():
    Y = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(6), dtype=F64)
    model = load("rpca")(num_layers=3)
    _randomize(model, 0.2)
    values = {f: _per_layer(model, f) for f in ("mu", "lam1", "lam2")}
    assert_same(tuple(model(Y)), rpca(Y, 3, **values), SVD_TOL)


def test_fixed_param_override_changes_results_like_the_reference():
    H, x = problem(2, seed=7)
    default = load("admm_lasso")(H=H, num_layers=4)
    changed = load("admm_lasso")(H=H, rho=0.3, num_layers=4)
    assert_same(changed(x), admm_lasso(H, x, 4, rho=0.3))
    assert not torch.allclose(changed(x), default(x))


def test_support_selection_fraction_zero_is_lista_cp():
    H, x = problem(3, m=8, n=12, seed=10)
    none = load("lista_cpss")(H=H, p_step=0.0, num_layers=4)
    assert_same(none(x), lista_cp(H, x, 4))
    half = load("lista_cpss")(H=H, p_step=0.5, p_max=0.5, num_layers=4)
    assert_same(half(x), lista_cpss(H, x, 4, p_step=0.5, p_max=0.5))
    assert not torch.allclose(half(x), none(x))


def test_support_selection_fraction_grows_per_layer_to_its_cap():
    """The reference schedule q_t = min(t * p_step, p_max), layer by layer (cap reached at 3)."""
    H, x = problem(2, m=10, n=40, seed=11)
    model = load("lista_cpss")(H=H, p_step=0.1, p_max=0.25, num_layers=5)
    want = lista_cpss(H, x, 5, p_step=0.1, p_max=0.25, all_layers=True)
    assert_same(model(x, all_layers=True), want)
    fixed = lista_cpss(H, x, 5, p_step=0.1, p_max=0.1, all_layers=True)
    assert not torch.allclose(want[-1], fixed[-1])  # the growth matters on this problem
    report = model.convergence_report()
    q = [c for c in report.conditions if c.text == "q <= 1"][0]
    assert q.lhs == pytest.approx([0.1, 0.2, 0.25, 0.25, 0.25], rel=1e-12)


# ---- float64 gradient checks (w.r.t. the raw trainables and the input) --------------------------
def _gradcheck(model, x):
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in model.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(model, dict(zip(names, ps)), (x,))

    x = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", ["ista", "lista", "lista_cpss", "admm_lasso"])
def test_gradcheck(name):
    H, x = problem(2, m=4, n=3, seed=8)
    model = load(name)(H=H, num_layers=2)
    _randomize(model, 0.05, seed=9)
    _gradcheck(model, x)
