"""Mutants of the examples are compiled, built and run (issue 14, "tests that generalize").

On a fixed seed: every mutant ends as a user error, runs, or fails at run time with a message
naming the spec; none is an internal error or an unlocated run-time failure. The benchmark
benchmarks/fuzz_mutants.py runs the same on many seeds and prints the distribution.
"""

from __future__ import annotations

import pytest
from fuzz_mutants import INTERNAL, RAN, UNLOCATED, USER_ERROR, run_many

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
