"""The four unfolding paradigms, untrained, equal their classical algorithms (float64).

Paradigm 1 (hyperparameters: gd_steps, ista_derived), 2 (objective: learned_objective), 3
(correction terms: ista_correction), 4 (DNN inductive bias: pnp_pgd, inpaint2d), plus LRPCA
(examples/lrpca.unf, factored states with truncated-SVD initial values). Oracles: the plain loops
of tests/reference_loops.py and loops written here.
"""

from __future__ import annotations

import functools

import pytest
import torch
from conftest import EXAMPLES
from reference_loops import gd_steps, ista, soft

import unfoldc

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")
TOL = {"rtol": 1e-10, "atol": 1e-12}
ISTA_FAMILY = ("ista", "ista_derived", "ista_correction", "learned_objective")


@functools.cache
def load(name: str) -> type:
    return unfoldc.load(EXAMPLES / f"{name}.unf")


def problem(batch: int = 3, m: int = 7, n: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(m, n, generator=g, dtype=F64),
            torch.randn(batch, m, generator=g, dtype=F64))


def set_per_layer(model, name: str, values) -> None:
    """Write per-layer values of trainable `name` whatever its constraint's storage."""
    with torch.no_grad():
        for layer, v in zip(model.layers, values):
            if hasattr(layer, f"{name}_log"):  # positive: init * exp(log)
                getattr(layer, f"{name}_init").fill_(v)
                getattr(layer, f"{name}_log").zero_()
            elif hasattr(layer, f"{name}_raw"):  # nonneg: |raw|
                getattr(layer, f"{name}_raw").fill_(v)
            else:
                getattr(layer, name).fill_(v)
        for layer, v in zip(model.layers, values):
            torch.testing.assert_close(getattr(layer, name),
                                       torch.full_like(getattr(layer, name), v))


def random_steps(K: int, scale: float, seed: int = 1) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    return (scale * (0.5 + torch.rand(K, generator=g, dtype=F64))).tolist()


# ---- Paradigm 1: derived gradient ----------------------------------------------------------
@pytest.mark.parametrize("K", [1, 4, 16])
def test_gd_steps_equals_gradient_descent(K):
    H, x = problem()
    model = load("gd_steps")(H=H, num_layers=K)
    torch.testing.assert_close(model(x, all_layers=True), gd_steps(H, x, K, all_layers=True),
                               **TOL)


def test_gd_steps_with_perturbed_steps():
    H, x = problem(seed=3)
    mu = random_steps(6, 1 / torch.linalg.matrix_norm(H, 2).item() ** 2)
    model = load("gd_steps")(H=H, num_layers=6)
    set_per_layer(model, "mu", mu)
    torch.testing.assert_close(model(x), gd_steps(H, x, 6, mu=mu), **TOL)


def test_gd_steps_objective_method():
    H, x = problem()
    model = load("gd_steps")(H=H, num_layers=3)
    s = model(x)
    want = 0.5 * ((s @ H.T - x) ** 2).sum(-1)
    torch.testing.assert_close(model.objective(s, x), want, **TOL)
    # descent: the objective decreases layer after layer at the step 1/L
    values = [model.objective(h, x) for h in model(x, all_layers=True)]
    assert all(bool((b <= a + 1e-12).all()) for a, b in zip(values, values[1:]))


# ---- ISTA, four ways -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ISTA_FAMILY)
@pytest.mark.parametrize("K", [1, 5])
def test_ista_family_equals_ista(name, K):
    H, x = problem()
    model = load(name)(H=H, num_layers=K)
    torch.testing.assert_close(model(x, all_layers=True), ista(H, x, K, all_layers=True),
                               **TOL)


@pytest.mark.parametrize("name", ["ista", "ista_derived", "ista_correction"])
def test_ista_family_with_perturbed_steps(name):
    H, x = problem(seed=5)
    mu = random_steps(4, 1 / torch.linalg.matrix_norm(H, 2).item() ** 2)
    model = load(name)(H=H, num_layers=4)
    set_per_layer(model, "mu", mu)
    torch.testing.assert_close(model(x), ista(H, x, 4, mu=mu), **TOL)


def test_ista_derived_objective_is_the_lasso():
    H, x = problem()
    model = load("ista_derived")(H=H, num_layers=4)
    s = model(x)
    want = 0.5 * ((s @ H.T - x) ** 2).sum(-1) + 0.1 * s.abs().sum(-1)
    torch.testing.assert_close(model.objective(s, x), want, **TOL)


def test_learned_objective_with_perturbed_matrix_and_weights():
    """Per-layer Hk and w: compare against a loop written with the same values."""
    H, x = problem(seed=2)
    K = 3
    model = load("learned_objective")(H=H, num_layers=K)
    g = torch.Generator().manual_seed(9)
    Hs = [H + 0.1 * torch.randn(H.shape, generator=g, dtype=F64) for _ in range(K)]
    ws = [torch.rand(H.shape[1], generator=g, dtype=F64) for _ in range(K)]
    with torch.no_grad():
        for layer, Hk, w in zip(model.layers, Hs, ws):
            layer.Hk.copy_(Hk)
            (layer.w_raw if hasattr(layer, "w_raw") else layer.w).copy_(w)
    mu = 1 / torch.linalg.matrix_norm(H, 2) ** 2
    s = torch.zeros(x.shape[0], H.shape[1], dtype=F64)
    for Hk, w in zip(Hs, ws):
        s = soft(s - mu * (s @ Hk.T - x) @ Hk, mu * 0.1 * w)
    torch.testing.assert_close(model(x), s, **TOL)


# ---- Paradigm 4: plug-and-play, inpainting --------------------------------------------------
@pytest.mark.parametrize("K", [1, 6])
def test_pnp_pgd_untrained_equals_gd_steps(K):
    H, x = problem()
    pnp = load("pnp_pgd")(H=H, num_layers=K)
    gd = load("gd_steps")(H=H, num_layers=K)
    torch.testing.assert_close(pnp(x), gd(x), **TOL)
    torch.testing.assert_close(pnp(x), gd_steps(H, x, K), **TOL)


def test_pnp_pgd_differs_once_the_denoiser_moves():
    """The equality above is not vacuous: a nonzero last layer changes the output."""
    H, x = problem()
    pnp = load("pnp_pgd")(H=H, num_layers=3)
    with torch.no_grad():
        pnp.layers[1].D.linears[-1].bias.fill_(0.01)
    assert not torch.allclose(pnp(x), gd_steps(H, x, 3))


def inpaint_loop(M, Y, mus):
    """Plain gradient descent on 0.5 ||M * X - Y||^2 (per sample), from X0 = Y."""
    X = Y.clone()
    for mu in mus:
        X = X - mu * M * (M * X - Y)
    return X


@pytest.mark.parametrize("batch", [1, 3])
def test_inpaint2d_untrained_equals_gradient_descent(batch):
    g = torch.Generator().manual_seed(4)
    M = torch.rand(6, 7, generator=g, dtype=F64)  # a soft mask: the steps are not trivial
    Y = torch.randn(batch, 6, 7, generator=g, dtype=F64)
    mus = random_steps(5, 0.8)
    model = load("inpaint2d")(M=M, num_layers=5)
    set_per_layer(model, "mu", mus)
    out = model(Y)
    assert out.shape == (batch, 6, 7)
    want = inpaint_loop(M, Y, mus)
    assert not torch.allclose(want, Y)
    torch.testing.assert_close(out, want, **TOL)
    torch.testing.assert_close(model.objective(out, Y), 0.5 * ((M * out - Y) ** 2).sum((1, 2)),
                               **TOL)


def test_inpaint2d_binary_mask_keeps_the_observation():
    """With a 0/1 mask, X0 = Y is a fixed point of the data step (M * Y = Y)."""
    g = torch.Generator().manual_seed(5)
    M = (torch.rand(8, 8, generator=g) < 0.5).to(F64)
    Y = M * torch.randn(2, 8, 8, generator=g, dtype=F64)
    torch.testing.assert_close(load("inpaint2d")(M=M)(Y), Y, **TOL)


# ---- LRPCA: factored states initialized by a truncated SVD ----------------------------------
def lrpca_loop(Y, zeta0, zetas, etas, r=5):
    """The released LRPCA test as a plain per-sample loop: X = L R^T after every layer."""
    U, s, Vh = torch.linalg.svd(Y - soft(Y, zeta0), full_matrices=False)
    L, R = U[:, :r] * s[:r].sqrt(), Vh[:r].T * s[:r].sqrt()
    out = []
    for zeta, eta in zip(zetas, etas):
        E = L @ R.T + soft(Y - L @ R.T, zeta) - Y
        L, R = (L - eta * E @ R @ torch.linalg.inv(R.T @ R),
                R - eta * E.T @ L @ torch.linalg.inv(L.T @ L))
        out.append(L @ R.T)
    return out


def lrpca_instance():
    from unfoldc.train.tasks import low_rank_plus_sparse

    return low_rank_plus_sparse(2, 60, 60, 5, 0.1, torch.Generator().manual_seed(0))


def test_lrpca_matches_the_released_loop_and_reduces_the_error():
    data = lrpca_instance()
    K, zeta0 = 10, 0.1
    zetas = [0.05 * 0.7**k for k in range(K)]
    etas = [0.5] * K
    model = load("lrpca")(num_layers=K, zeta0=zeta0).to(F64)
    set_per_layer(model, "zeta", zetas)
    set_per_layer(model, "eta", etas)
    with torch.no_grad():
        history = model(data["Y"], all_layers=True)
    for b in range(2):
        want = lrpca_loop(data["Y"][b], zeta0, zetas, etas)
        torch.testing.assert_close([h[b] for h in history], want, rtol=1e-7, atol=1e-9)
    X = data["X"]
    U, s, Vh = torch.linalg.svd(data["Y"] - soft(data["Y"], zeta0), full_matrices=False)
    X0 = U[..., :5] * s[..., None, :5] @ Vh[..., :5, :]
    err = [torch.linalg.matrix_norm(h - X) / torch.linalg.matrix_norm(X) for h in [X0] + history]
    assert bool((err[-1] < err[0] / 3).all()), [e.tolist() for e in err]
    assert bool((err[-1] < 0.03).all())


# ---- the synthetic inpainting task, and training inpaint2d on it ----------------------------
def test_inpainting_task_is_seeded_and_named_after_the_spec():
    from unfoldc.train.images import inpainting_task

    a, b = inpainting_task(16, 16, ratio=0.3, seed=2), inpainting_task(16, 16, ratio=0.3, seed=2)
    assert set(a.givens) == {"M"} and a.input_names == ("Y",) and a.target_names == ("X",)
    assert torch.equal(a.givens["M"], b.givens["M"]) and torch.equal(a.val["Y"], b.val["Y"])
    M, Y, X = a.givens["M"], a.val["Y"], a.val["X"]
    assert int(M.sum()) == round(0.3 * 256) and set(M.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(Y * (1 - M), torch.zeros_like(Y))  # nothing seen outside the mask
    assert float(X.abs().amax()) == pytest.approx(1.0)
    smooth = (X[:, 1:] - X[:, :-1]).abs().mean() / X.abs().mean()
    assert float(smooth) < 0.5  # neighbouring pixels are alike
    c = inpainting_task(16, 16, ratio=0.3, seed=3)
    assert not torch.equal(a.givens["M"], c.givens["M"])


@pytest.mark.slow
def test_training_inpaint2d_beats_its_untrained_self():
    """Adam on the MSE for 150 steps (one thread, a few seconds): the validation error must
    drop well below the untrained network's (which returns the zero-filled observation)."""
    from unfoldc.train.images import inpainting_task

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = inpainting_task(16, 16, ratio=0.5, noise=0.01, seed=0, val_size=32)
        model = load("inpaint2d")(M=task.givens["M"].float(), seed=0)
        Y, X = task.val["Y"].float(), task.val["X"].float()

        def error():
            with torch.no_grad():
                return float(((model(Y) - X) ** 2).mean())

        before = error()
        torch.testing.assert_close(model(Y), Y)  # untrained: the observation itself
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(1)
        for _ in range(150):
            batch = task.train_batch(8, gen)
            loss = ((model(batch["Y"].float()) - batch["X"].float()) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        after = error()
    finally:
        torch.set_num_threads(threads)
    assert after < before / 4, (before, after)


# ---- error goldens of the paradigm features (rendered text: tests/test_diagnostics.py) -----
PARADIGM_ERRORS = {
    "paradigm_unknown_prox": "E0308", "paradigm_prox_exp": "E0308",
    "paradigm_grad_undeclared": "E0306", "paradigm_grad_two_args": "E0303",
    "paradigm_net_shape": "E0302", "paradigm_conv_on_vector": "E0306",
    "paradigm_func_let": "E0207", "paradigm_net_input_size": "E0307",
    "paradigm_net_activation": "E0309",
}


@pytest.mark.parametrize("name", sorted(PARADIGM_ERRORS))
def test_paradigm_error_goldens_show_their_code(name):
    from conftest import GOLDEN

    from unfoldc.diagnostics import UserError

    with pytest.raises(UserError) as err:
        unfoldc.load_source((GOLDEN / "errors" / f"{name}.unf").read_text("utf-8"))
    assert [d.code for d in err.value.diagnostics if d.is_error] == [PARADIGM_ERRORS[name]]
    text = (GOLDEN / "errors" / f"{name}.txt").read_text("utf-8")
    assert text.startswith(f"error[{PARADIGM_ERRORS[name]}]")
