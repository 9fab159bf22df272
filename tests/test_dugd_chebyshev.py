"""Issue 13, row 3: deep-unfolded gradient descent against the Chebyshev steps, on a small
instance (benchmarks/dugd_chebyshev.py runs the full size)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import dugd_chebyshev as study


def test_chebyshev_steps_annihilate_the_extreme_eigenvalues_best():
    # The Chebyshev steps minimize max |prod_k (1 - gamma_k lambda)| over [lo, hi]: below the
    # constant 2 / (lo + hi) steps' value, and they reach the endpoints of the spectrum.
    lo, hi, count = 0.1, 2.0, 6
    steps = study.chebyshev_steps(lo, hi, count)
    grid = np.linspace(lo, hi, 2001)
    cheb = np.abs(np.prod(1 - steps[:, None] * grid, axis=0)).max()
    const = np.abs((1 - 2 / (lo + hi) * grid) ** count).max()
    rate = (math.sqrt(hi / lo) - 1) / (math.sqrt(hi / lo) + 1)
    assert cheb < const and cheb == pytest.approx(2 * rate**count / (1 + rate ** (2 * count)),
                                                  rel=1e-3)


def test_trained_steps_beat_constant_ones_and_every_network_is_certified():
    r = study.run(m=40, n=20, layers=4, steps=40)
    assert r["Chebyshev"]["error"] < r["constant"]["error"]
    assert r["trained"]["error"] < 0.5 * r["constant"]["error"]
    for name in ("constant", "Chebyshev", "trained"):
        assert r[name]["verdict"] == "certified" and r[name]["network_bound"] < 1
    assert r["constant"]["steps"] == pytest.approx([1 / r["lambda"][1]] * 4)
