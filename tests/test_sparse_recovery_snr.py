"""benchmarks/sparse_recovery_snr.py's measures on a small instance: the support-oracle least
squares, the expected noise variance TISTA is given, and the untrained baselines."""

import math

import pytest
import torch

from benchmarks import sparse_recovery_snr as SNR
from unfoldc.train import tasks


@pytest.mark.parametrize("snr", [math.inf, 20.0])
def test_noise_variance_is_the_tasks(snr):
    task = tasks.sparse_recovery(40, 80, 0.1, snr, seed=0, val_size=2000, test_size=10)
    A, val = task.givens["A"].double(), task.val
    measured = float((val["y"].double() - val["x"].double() @ A.T).square().mean())
    expected = SNR.noise_variance(A, snr)
    assert expected == pytest.approx(measured, rel=0.05, abs=1e-12)


def test_oracle_least_squares():
    task = tasks.sparse_recovery(40, 80, 0.1, math.inf, seed=0, val_size=10, test_size=50)
    assert SNR.oracle_nmse_db(task.givens["A"], task.test) < -200  # exact without noise
    noisy = tasks.sparse_recovery(40, 80, 0.1, 30.0, seed=0, val_size=10, test_size=400)
    oracle = SNR.oracle_nmse_db(noisy.givens["A"], noisy.test)
    # Least squares on k of m nearly orthogonal columns keeps about k / (m - k) of the noise
    # power, relative to the signal's: NMSE ~ -SNR + 10 log10(k / (m - k)), k = p n = 8, m = 40.
    assert oracle == pytest.approx(-30 + 10 * math.log10(8 / 32), abs=1.5)
    # Knowing a wider support than the true one is worse: 4 wrong entries per signal (marked by
    # values far below rounding, so the truth is unchanged).
    x = noisy.test["x"].double()
    wrong = torch.stack([torch.nonzero(row == 0).flatten()[:4] for row in x])
    marked = x.scatter(1, wrong, 1e-150)
    assert oracle < SNR.oracle_nmse_db(noisy.givens["A"], {"x": marked, "y": noisy.test["y"]})


def test_untrained_baselines_are_the_classical_algorithms():
    task = tasks.sparse_recovery(20, 40, 0.1, math.inf, seed=0, val_size=10, test_size=20)
    ista = SNR.untrained_db("examples/ista.unf", task, 4)
    amp = SNR.untrained_db("examples/lamp.unf", task, 4)
    assert len(ista) == len(amp) == 4
    assert ista[-1] < ista[0] and amp[-1] < ista[-1]  # both iterate; AMP is the faster
