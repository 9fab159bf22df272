"""The fixed-point runtime (unfoldc/runtime/fixed_point.py) on a hand-written layer map:
ISTA for a small LASSO in float64. Implicit gradients equal finite differences and the unrolled
gradient at convergence; JFB's differ (it drops the adjoint solve); gradcheck passes."""

import warnings

import pytest
import torch

from unfoldc.runtime.fixed_point import (
    FixedPointWarning,
    relative_change,
    solve_fixed_point,
)


def _problem(seed=0, m=10, n=6, batch=3):
    g = torch.Generator().manual_seed(seed)
    H = torch.randn(m, n, generator=g, dtype=torch.float64) / m**0.5
    x = torch.randn(batch, m, generator=g, dtype=torch.float64)
    mu = (1 / torch.linalg.matrix_norm(H, ord=2) ** 2).reshape(())
    return H, x, mu


def _soft(v, t):
    return torch.sign(v) * torch.relu(v.abs() - t)


def _solve(H, x, mu, rho, backward, tol=1e-13, max_iter=20000):
    def step(s):
        return _soft(s - mu * (s @ H.T - x) @ H, mu * rho)

    s0 = x.new_zeros(x.shape[0], H.shape[1])
    (s,), info = solve_fixed_point(step, (s0,), (True,), tol, max_iter, backward)
    return s, info


def _grads(backward, H, x, mu, rho):
    params = [t.clone().requires_grad_() for t in (x, mu, rho)]
    s, info = _solve(H, *params, backward)
    weights = torch.linspace(-1, 1, s.numel(), dtype=s.dtype).reshape(s.shape)
    (s * weights).sum().backward()
    return [p.grad for p in params], info


def test_solver_reaches_the_fixed_point_and_reports_iterations():
    H, x, mu = _problem()
    rho = torch.tensor(0.05, dtype=torch.float64)
    s, info = _solve(H, x, mu, rho, "jfb")
    again = _soft(s - mu * (s @ H.T - x) @ H, mu * rho)
    assert info.converged and 1 < info.iterations < 20000
    assert torch.allclose(again, s, atol=1e-10)


def test_implicit_gradient_equals_unrolled_and_finite_differences():
    H, x, mu = _problem()
    rho = torch.tensor(0.05, dtype=torch.float64)
    implicit, info = _grads("implicit", H, x, mu, rho)
    unrolled, _ = _grads("unroll", H, x, mu, rho)
    assert info.adjoint_converged and info.adjoint_iterations > 1
    for a, b in zip(implicit, unrolled):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-9)
    # central differences of the whole solve in the step size mu
    weights = torch.linspace(-1, 1, x.numel() // x.shape[1] * H.shape[1], dtype=torch.float64)
    h = 1e-6

    def loss(m):
        s, _ = _solve(H, x, m, rho, "jfb")
        return (s * weights.reshape(s.shape)).sum()

    fd = (loss(mu + h) - loss(mu - h)) / (2 * h)
    assert torch.allclose(implicit[1], fd, rtol=1e-5, atol=1e-7)


def test_jfb_differs_from_the_implicit_gradient():
    H, x, mu = _problem()
    rho = torch.tensor(0.05, dtype=torch.float64)
    implicit, _ = _grads("implicit", H, x, mu, rho)
    jfb, info = _grads("jfb", H, x, mu, rho)
    assert info.adjoint_iterations is None  # JFB never solves the adjoint
    assert not torch.allclose(implicit[0], jfb[0])


def test_gradcheck_of_the_implicit_mode():
    H, x, mu = _problem(m=5, n=4, batch=2)
    rho = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    x = x.clone().requires_grad_()
    mu = mu.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: _solve(H, *a, "implicit")[0], (x, mu, rho))


def test_not_converging_within_max_iter_is_reported_and_the_adjoint_warns():
    H, x, mu = _problem()
    rho = torch.tensor(0.05, dtype=torch.float64)
    x = x.clone().requires_grad_()
    s, info = _solve(H, x, mu, rho, "implicit", max_iter=3)
    assert not info.converged and info.iterations == 4 and info.residual > 1e-13
    with pytest.warns(FixedPointWarning, match="adjoint solve stopped at max_iter=3"):
        s.sum().backward()
    assert info.adjoint_converged is False


def test_bad_arguments_are_value_errors():
    H, x, mu = _problem()
    rho = torch.tensor(0.05, dtype=torch.float64)
    with pytest.raises(ValueError, match="backward must be"):
        _solve(H, x, mu, rho, "adjoint")
    with pytest.raises(ValueError, match="tol > 0"):
        _solve(H, x, mu, rho, "jfb", tol=0)


def test_relative_change_is_per_sample_and_counts_unbatched_states_everywhere():
    new = (torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor(2.0))
    old = (torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor(2.0))
    assert relative_change(new, old, (True, False)) == 0.0
    moved = (torch.tensor([[1.0, 0.0], [0.0, 3.0]]), torch.tensor(2.0))
    assert relative_change(moved, old, (True, False)) == pytest.approx(3 / 13**0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert relative_change((torch.zeros(2, 2),), (torch.zeros(2, 2),), (True,)) == 0.0
