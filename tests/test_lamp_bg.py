"""examples/lamp_bg.unf (issue 13, rows 1-2): AMP with the Bernoulli-Gaussian MMSE denoiser
against a NumPy AMP written from the posterior's densities in float64, against its state
evolution, and training on a small instance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import unfoldc
from unfoldc.train.fit import fit
from unfoldc.train.tasks import sparse_recovery

CLS = unfoldc.load("examples/lamp_bg.unf")


def normal(z, v):
    return np.exp(-z**2 / (2 * v)) / np.sqrt(2 * math.pi * v)


def amp_bg_numpy(A, y, alphas, p=0.1, B=None):
    """AMP: the posterior mean of a Bernoulli(p)-N(0, 1) entry seen in N(0, t2) noise, and the
    Onsager term from its derivative, taken by central differences of that mean."""
    m, n = A.shape
    B = A.T if B is None else B
    x, z = np.zeros((y.shape[0], n)), y.copy()

    def denoise(r, t2):
        xi = 1 + t2
        return r / xi * p * normal(r, xi) / ((1 - p) * normal(r, t2) + p * normal(r, xi))

    for alpha in alphas:
        r = x + z @ B.T
        t2 = alpha * (z**2).sum(1, keepdims=True) / m
        x = denoise(r, t2)
        h = 1e-6 * np.maximum(1, np.abs(r))
        slope = (denoise(r + h, t2) - denoise(r - h, t2)) / (2 * h)
        z = y - x @ A.T + z * slope.mean(1, keepdims=True) * n / m
    return x


def test_lamp_bg_equals_amp_from_the_densities():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 80)) / math.sqrt(40)
    x = rng.standard_normal((6, 80)) * (rng.random((6, 80)) < 0.1)
    y = x @ A.T + 1e-2 * rng.standard_normal((6, 40))
    model = CLS(A=torch.tensor(A), num_layers=5)
    alphas = [1.0, 0.8, 1.2, 1.0, 0.9]
    with torch.no_grad():
        for layer, a in zip(model.layers, alphas):  # `positive`: alpha = init * exp(alpha_log)
            layer.alpha_log.fill_(math.log(a))
        got = model(torch.tensor(y)).numpy()
    assert np.allclose(got, amp_bg_numpy(A, y, alphas), rtol=1e-6, atol=1e-8)


def test_untrained_follows_state_evolution():
    """At n = 2000 the untrained network's NMSE per layer is near the Bayes-optimal AMP state
    evolution (tau2 = sigma2 + mmse(tau2) / delta), computed here by Monte Carlo."""
    m, n, p, snr = 1000, 2000, 0.1, 30.0
    task = sparse_recovery(m, n, p, snr, seed=0, val_size=10, test_size=50)
    model = CLS(A=task.givens["A"].double(), num_layers=8)
    with torch.no_grad():
        outs = model(task.test["y"].double(), all_layers=True)
    x = task.test["x"].double()
    got = [10 * math.log10(float(((o - x)**2).sum() / (x**2).sum())) for o in outs]
    rng = np.random.default_rng(1)
    X = rng.standard_normal(400_000) * (rng.random(400_000) < p)
    Z = rng.standard_normal(400_000)
    sigma2 = p * n / m / 10 ** (snr / 10)
    t2, predicted = sigma2 + p * n / m, []
    for _ in range(8):
        R, xi = X + math.sqrt(t2) * Z, 1 + t2
        odds = (1 - p) / p * math.sqrt(xi / t2) * np.exp(-R**2 / 2 * (1 / t2 - 1 / xi))
        est = R / xi / (1 + odds)
        mse = float(np.mean((est - X) ** 2))
        predicted.append(10 * math.log10(mse / p))
        t2 = sigma2 + mse * n / m
    assert got == pytest.approx(predicted, abs=1.0)


def test_training_keeps_or_lowers_the_error():
    task = sparse_recovery(m=30, n=60, p=0.1, snr_db=float("inf"), seed=0)
    model = CLS(A=task.givens["A"], num_layers=3)
    result = fit(model, task, scheme="incremental", steps=30, plots=False, progress=False,
                 classical_layers=0, tensorboard=False)
    assert result.metrics["nmse_db"][-1] < result.metrics["classical_nmse_db"][-1] - 0.5
