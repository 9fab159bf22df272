"""Self-tests of the reference loops against known facts about the algorithms.

The loops are the oracle for the compiler, so they are checked here against mathematics rather
than against another implementation: optimality conditions, known equivalences between the
algorithms at their inits, and known convergence behaviour.
"""

import numpy as np
import pytest
import torch
from reference_loops import (
    admm_lasso,
    as64,
    fista,
    gd_steps,
    ista,
    lasso_objective,
    lista,
    lista_cp,
    rpca,
    soft,
    step0,
    svt,
)

RHO = 0.1


@pytest.fixture
def lasso_instance():
    """A small underdetermined sparse-recovery instance: `(H, x)` with 4 samples."""
    gen = torch.Generator().manual_seed(0)
    m, n, batch, nnz = 20, 40, 4, 4
    H = torch.randn(m, n, generator=gen, dtype=torch.float64) / m**0.5
    s_true = torch.zeros(batch, n, dtype=torch.float64)
    for b in range(batch):
        support = torch.randperm(n, generator=gen)[:nnz]
        s_true[b, support] = torch.randn(nnz, generator=gen, dtype=torch.float64)
    noise = 0.01 * torch.randn(batch, m, generator=gen, dtype=torch.float64)
    return H, s_true @ H.T + noise


def assert_lasso_kkt(H, x, s, rho, tol=1e-7):
    """Assert the LASSO optimality conditions `0 in H^T (H s - x) + rho d||s||_1`."""
    grad = (s @ H.T - x) @ H
    active = s.abs() > 1e-12
    # On the support the subgradient is unique: grad_i = -rho sign(s_i).
    assert (grad + rho * torch.sign(s))[active].abs().max() < tol
    # Off the support any value in [-rho, rho] is allowed.
    assert grad[~active].abs().max() <= rho + tol


def test_soft_and_svt_match_their_definitions():
    v = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5], dtype=torch.float64)
    assert torch.equal(soft(v, 0.5), torch.tensor([-1.5, 0.0, 0.0, 0.0, 1.0], dtype=v.dtype))
    # svt of a diagonal matrix with positive entries shrinks the diagonal.
    M = torch.diag(torch.tensor([3.0, 1.0, 0.2], dtype=torch.float64)).unsqueeze(0)
    expected = torch.diag(torch.tensor([2.5, 0.5, 0.0], dtype=torch.float64)).unsqueeze(0)
    torch.testing.assert_close(svt(M, 0.5), expected)


def test_ista_reaches_a_lasso_solution(lasso_instance):
    H, x = lasso_instance
    s = ista(H, x, 2000, rho=RHO)
    assert (s != 0).any()
    assert_lasso_kkt(H, x, s, RHO)


def test_fista_converges_faster_than_ista(lasso_instance):
    H, x = lasso_instance
    best = lasso_objective(H, x, ista(H, x, 2000, rho=RHO), RHO)
    for K in (20, 50):
        gap_ista = lasso_objective(H, x, ista(H, x, K, rho=RHO), RHO) - best
        gap_fista = lasso_objective(H, x, fista(H, x, K, rho=RHO), RHO) - best
        assert (gap_fista < gap_ista).all()


def test_admm_and_ista_reach_the_same_minimizer(lasso_instance):
    H, x = lasso_instance
    s_admm = admm_lasso(H, x, 300, rho=RHO)
    assert_lasso_kkt(H, x, s_admm, RHO, tol=1e-6)
    torch.testing.assert_close(s_admm, ista(H, x, 2000, rho=RHO), atol=1e-7, rtol=0)


def test_gd_steps_reach_least_squares():
    gen = torch.Generator().manual_seed(1)
    H = torch.randn(30, 10, generator=gen, dtype=torch.float64)
    x = torch.randn(3, 30, generator=gen, dtype=torch.float64)
    expected = torch.linalg.lstsq(H, x.T).solution.T
    torch.testing.assert_close(gd_steps(H, x, 500), expected)


def test_lista_variants_equal_ista_at_their_inits(lasso_instance):
    # With W1 = mu0 H^T, W2 = I - mu0 H^T H, theta = 0.1 mu0, one LISTA layer is one ISTA step.
    H, x = lasso_instance
    expected = ista(H, x, 10, all_layers=True)
    for got in (lista(H, x, 10, all_layers=True), lista_cp(H, x, 10, all_layers=True)):
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b)


def test_per_layer_lists_match_shared_values(lasso_instance):
    H, x = lasso_instance
    mu = 0.9 * step0(H)
    torch.testing.assert_close(ista(H, x, 5, mu=[mu] * 5, rho=[RHO] * 5), ista(H, x, 5, mu=mu))
    with pytest.raises(ValueError, match="`mu` has 4 entries, expected 5"):
        ista(H, x, 5, mu=[mu] * 4)


def test_all_layers_lists_every_layer(lasso_instance):
    H, x = lasso_instance
    history = fista(H, x, 6, all_layers=True)
    assert len(history) == 6
    torch.testing.assert_close(history[-1], fista(H, x, 6))
    torch.testing.assert_close(history[2], fista(H, x, 3))


def test_gradients_flow_to_per_layer_parameters(lasso_instance):
    H, x = lasso_instance
    mus = [as64(step0(H)).requires_grad_() for _ in range(3)]

    def loss(*mu):
        return ista(H, x, 3, mu=list(mu)).square().sum()

    assert torch.autograd.gradcheck(loss, tuple(mus))


def test_rpca_decreases_the_residual():
    gen = torch.Generator().manual_seed(2)
    batch, m, n, rank = 2, 12, 10, 2
    factor_left = torch.randn(batch, m, rank, generator=gen, dtype=torch.float64)
    factor_right = torch.randn(batch, rank, n, generator=gen, dtype=torch.float64)
    outliers = torch.rand(batch, m, n, generator=gen, dtype=torch.float64) < 0.05
    spikes = 5.0 * torch.randn(batch, m, n, generator=gen, dtype=torch.float64)
    low_rank, sparse = factor_left @ factor_right, spikes * outliers
    Y = low_rank + sparse
    lam1, lam2 = 1.0, 0.05

    def objective(L, S):
        misfit = 0.5 * (L + S - Y).square().sum((-2, -1))
        return misfit + lam1 * torch.linalg.matrix_norm(L, ord="nuc") + lam2 * S.abs().sum((-2, -1))

    history = rpca(Y, 30, lam1=lam1, lam2=lam2, all_layers=True)
    residuals = [torch.linalg.matrix_norm(L + S - Y) for L, S in history]
    assert (residuals[-1] < 0.2 * torch.linalg.matrix_norm(Y)).all()
    # Proximal gradient with step 1/Lipschitz (mu = 0.5) never increases the objective.
    objectives = torch.stack([objective(L, S) for L, S in history])
    assert (objectives[1:] <= objectives[:-1] + 1e-10).all()
    # The nuclear-norm prox keeps L low rank.
    L_final = history[-1][0]
    assert (torch.linalg.matrix_rank(L_final, atol=1e-8) <= rank).all()


def test_chambolle_pock_tv_minimizes_the_rof_objective():
    """tv_div is the negative adjoint of tv_grad, and after many layers X minimizes
    0.5 ||X - Y||^2 + lam ||grad X||_1: no random perturbation, large or small, lowers it."""
    from reference_loops import chambolle_pock_tv, tv_div, tv_grad

    g = np.random.default_rng(0)
    u, p = g.standard_normal((5, 6)), g.standard_normal((10, 6))
    assert abs((tv_grad(u) * p).sum() + (u * tv_div(p)).sum()) < 1e-12
    Y = np.zeros((6, 7))
    Y[2:5, 1:4] = 1.0
    Y += 0.2 * g.standard_normal(Y.shape)
    lam = 0.1
    X = chambolle_pock_tv(torch.tensor(Y[None]), 3000, lam=lam)[0].numpy()

    def objective(Z):
        return 0.5 * ((Z - Y) ** 2).sum() + lam * np.abs(tv_grad(Z)).sum()

    best = objective(X)
    for t in (1e-1, 1e-3, 1e-5):
        for _ in range(50):
            assert objective(X + t * g.standard_normal(X.shape)) >= best - 1e-12
    assert np.abs(tv_grad(X)).max() > 1e-3  # not the trivial constant image
