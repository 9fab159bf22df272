"""examples/tista.unf and examples/lamp.unf (issue 13, row 2): TISTA against a NumPy TISTA
written from the paper's formulas (Ito, Takabe & Wadayama 2019) in float64, and training each
lowering its error on a small instance (tests/test_masks_transport.py checks LAMP against a
NumPy AMP)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import unfoldc
from unfoldc.train.fit import fit
from unfoldc.train.tasks import sparse_recovery


def tista_numpy(A, y, gammas, p=0.1, sigma2=0.0):
    """TISTA with the Bernoulli-Gaussian MMSE estimator, Gaussian densities spelled out."""
    m, n = A.shape
    W = A.T @ np.linalg.inv(A @ A.T)
    s = np.zeros((y.shape[0], n))
    for g in gammas:
        e = y - s @ A.T
        r = s + g * e @ W.T
        v2 = np.maximum(((e**2).sum(1, keepdims=True) - m * sigma2) / np.trace(A.T @ A), 1e-9)
        t2 = v2 / n * (n + (g**2 - 2 * g) * m) + g**2 * sigma2 / n * np.trace(W @ W.T)
        xi = 1 + t2

        def normal(z, v):
            return np.exp(-z**2 / (2 * v)) / np.sqrt(2 * math.pi * v)
        s = r / xi * p * normal(r, xi) / ((1 - p) * normal(r, t2) + p * normal(r, xi))
    return s


def test_tista_equals_the_papers_formulas():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 60)) / math.sqrt(30)
    x = rng.standard_normal((5, 60)) * (rng.random((5, 60)) < 0.1)
    y = x @ A.T
    cls = unfoldc.load("examples/tista.unf")
    model = cls(A=torch.tensor(A), num_layers=4)
    gammas = [1.0, 1.3, 0.8, 1.1]
    with torch.no_grad():
        for layer, g in zip(model.layers, gammas):  # `positive`: gamma = init * exp(gamma_log)
            layer.gamma_log.fill_(math.log(g))
        got = model(torch.tensor(y)).numpy()
    assert [float(layer.gamma) for layer in model.layers] == pytest.approx(gammas, rel=1e-12)
    assert np.allclose(got, tista_numpy(A, y, gammas), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("spec", "gain_db"), [("tista", 1.0), ("lamp", 0.5)])
def test_training_lowers_the_error(spec, gain_db):
    task = sparse_recovery(m=30, n=60, p=0.1, snr_db=float("inf"), seed=0)
    model = unfoldc.load(f"examples/{spec}.unf")(A=task.givens["A"], num_layers=3)
    result = fit(model, task, scheme="incremental", steps=30, plots=False, progress=False,
                 classical_layers=0, tensorboard=False)
    assert result.metrics["nmse_db"][-1] < result.metrics["classical_nmse_db"][-1] - gain_db
