"""Mutants of the examples are compiled, built and run (issue 14, "tests that generalize").

On a fixed seed: every mutant ends as a user error, runs, or fails at run time with a message
naming the spec; none is an internal error or an unlocated run-time failure. The benchmark
benchmarks/fuzz_mutants.py runs the same on many seeds and prints the distribution.
"""

from __future__ import annotations

import pytest
from fuzz_mutants import INTERNAL, RAN, UNLOCATED, USER_ERROR, run_many

pytestmark = pytest.mark.slow  # see pyproject.toml

SEED, COUNT = 1, 200


@pytest.fixture(scope="module")
def outcomes():
    return run_many(COUNT, SEED)


def test_mutants_are_user_errors_or_run(outcomes):
    tally, _ = outcomes
    assert tally[USER_ERROR] > 0 and tally[RAN] > 0  # the mutants exercise both paths


def test_no_mutant_is_an_internal_error(outcomes):
    _, bugs = outcomes
    assert not [(o.detail, text) for text, o in bugs if o.kind == INTERNAL]


def test_no_mutant_fails_at_run_time_without_a_location(outcomes):
    _, bugs = outcomes
    assert not [(o.detail, text) for text, o in bugs if o.kind == UNLOCATED]


def test_svt_of_a_non_finite_matrix_is_nan_not_an_svd_error():
    """Found by the benchmark (seed 8): rpca with `R = L/ + S - Y` divides 0 by 0 and the SVD
    raised LinAlgError at run time, naming no line of the spec. It now runs to NaN, like an
    elementwise operator, so that training sees divergence."""
    from fuzz_mutants import examples, exercise

    text = examples()["rpca.unf"].replace("R = L + S - Y", "R = L / S - Y")
    assert exercise(text).kind == RAN


def test_svt_keeps_finite_samples_and_gradients():
    import torch

    import unfoldc

    model = unfoldc.load("examples/rpca.unf")(dtype=torch.float64)
    Y = torch.randn(3, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    clean = model(Y)
    Y[1, 2, 3] = float("inf")
    L, S = model(Y)
    assert L[1].isnan().all() and S[1].isnan().all()
    assert torch.equal(L[[0, 2]], clean[0][[0, 2]]) and torch.equal(S[[0, 2]], clean[1][[0, 2]])
    Y = torch.randn(3, 6, 5, dtype=torch.float64, requires_grad=True)
    model(Y)[0].sum().backward()  # the guard costs no gradient on finite matrices
    assert torch.isfinite(Y.grad).all()
