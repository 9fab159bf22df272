"""The cheap evaluation paths of `convergence_report()` (no per-layer inverse, all layers at
once, matrix-free Krylov estimates) and the shape of the emitted report code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import unfoldc
from unfoldc.convergence import emit

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ("ista", "lista", "lista_cp", "fista", "admm_lasso", "rpca")


def _template(used: set[str] | None = None):
    """The report class from our own template: every helper, or those `used` reaches."""
    source = emit.runtime_source({"ConvergenceReport": "R", "ConvergenceCondition": "C"})
    if used is not None:
        source = emit.prune_helpers(source, "R", used)
    namespace = {"torch": torch}
    exec(compile(source, "<report runtime>", "exec"), namespace)
    return namespace["R"]


@pytest.fixture(scope="module")
def report_cls():
    """The report class with every evaluation helper (modules carry only those they use)."""
    return _template()


def _randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("size", [10, 160])
def test_admm_norms_follow_from_the_eigenvalue_range(report_cls, size):
    """||beta inv(G + beta I)|| and ||I - beta inv(G + beta I)|| without any inverse."""
    h = _randn(size // 2, size, seed=1) / size ** 0.5
    gram = h.T @ h
    rng = report_cls.gram_range(h)
    eye = torch.eye(size, dtype=gram.dtype)
    for beta in (0.05, 1.0, 20.0):
        inv = torch.linalg.inv(gram + beta * eye)
        for c0, c in ((0, beta), (1, -beta)):
            exact = torch.linalg.matrix_norm(c0 * eye + c * inv, ord=2).item()
            got = float(report_cls.resolvent_norm(c0, c, beta, rng))
            if size <= report_cls.EXACT_SIZE:
                assert got == pytest.approx(exact, rel=1e-6, abs=1e-9)
            else:  # lambda_min = 0 exactly (wide H), lambda_max a close Ritz estimate
                assert exact * (1 - 1e-2) <= got <= exact * (1 + 1e-9)


def test_resolvent_norm_is_infinite_when_the_shifted_matrix_may_be_singular(report_cls):
    rng = (torch.tensor(0.5), torch.tensor(3.0))
    assert float(report_cls.resolvent_norm(0, 1.0, -1.0, rng)) == float("inf")
    assert float(report_cls.resolvent_norm(0, 1.0, 1.0, rng)) == pytest.approx(1 / 1.5)


@pytest.mark.parametrize("n", [40, 160])
def test_batched_matrix_free_norms_match_per_layer_norms(report_cls, n):
    """All layers at once, never forming W1 @ H: exact when small, a close lower estimate
    above EXACT_SIZE; chunking the layers (cache) changes nothing."""
    K, m = 5, n // 2
    h = _randn(m, n, seed=2) / m ** 0.5
    w2, w1 = _randn(K, n, n, seed=3) / n ** 0.5, _randn(K, n, m, seed=4) / m ** 0.5
    terms = [(-1,), (torch.linspace(0.5, 1.5, K, dtype=h.dtype), w2), (1, w1, h)]
    got = report_cls.opnorm_terms(terms, n, h)
    coef = torch.linspace(0.5, 1.5, K, dtype=h.dtype)[:, None, None]
    exact = torch.linalg.matrix_norm(coef * w2 + w1 @ h - torch.eye(n, dtype=h.dtype), ord=2)
    assert got.shape == (K,)
    if n <= report_cls.EXACT_SIZE:
        torch.testing.assert_close(got, exact)
    else:
        assert (got <= exact * (1 + 1e-10)).all()  # Ritz values never overestimate
        assert ((exact - got) / exact).max() < 0.05
        before = report_cls.CACHE_BYTES
        try:
            report_cls.CACHE_BYTES = 1  # one layer at a time
            torch.testing.assert_close(report_cls.opnorm_terms(terms, n, h), got)
        finally:
            report_cls.CACHE_BYTES = before


def test_krylov_estimates_are_at_least_as_good_as_power_iteration(report_cls):
    a = _randn(300, 300, seed=5) / 300 ** 0.5
    exact = torch.linalg.matrix_norm(a, ord=2).item()
    v = report_cls.start_vector(300, a).reshape(-1)
    for _ in range(report_cls.KRYLOV_STEPS_ONCE - 1):  # as many products with a.T @ a
        v = a.T @ (a @ v)
        v = v / torch.linalg.vector_norm(v)
    power = torch.linalg.vector_norm(a @ v).item()
    assert power <= float(report_cls.opnorm(a)) <= exact * (1 + 1e-12)


def test_invariant_krylov_spaces_give_exact_values(report_cls):
    """A start inside an invariant subspace (here: scaled identity) must not break the basis."""
    eye = 3.0 * torch.eye(200, dtype=torch.float64)
    lo, hi = report_cls.eig_range(eye)
    assert float(lo) == pytest.approx(3.0) and float(hi) == pytest.approx(3.0)
    assert float(report_cls.opnorm(eye)) == pytest.approx(3.0)


@pytest.mark.parametrize("name", NAMES)
def test_report_code_reads_like_hand_written_code(name):
    code = unfoldc.compile(str(EXAMPLES / f"{name}.unf")).code
    assert code == unfoldc.compile(str(EXAMPLES / f"{name}.unf")).code  # deterministic
    start = code.index("CONVERGENCE_CONDITIONS = ")
    report = code[start:code.index("return ConvergenceReport(", start)]
    assert max(len(line) for line in report.splitlines()) <= 100
    assert "lambda " not in report and "lambda:" not in report
    assert "torch.linalg.inv" not in report  # ADMM: from the eigenvalue range of H.T @ H
    if name in ("lista", "lista_cp"):  # per-layer norms once for all layers, matrix-free
        assert "opnorm_terms(" in report and "torch.stack(" in report
        assert "W1_layers @ self.H" not in report


def _helpers(module_cls) -> set[str]:
    """Names defined by the ConvergenceReport class of a loaded module."""
    cls = vars(sys.modules[module_cls.__module__])["ConvergenceReport"]
    return {n for n in vars(cls) if not n.startswith("__")}


def test_modules_carry_only_the_helpers_their_report_reaches():
    lista = _helpers(unfoldc.load(EXAMPLES / "lista_cp.unf"))
    assert {"opnorm_terms", "ritz_values", "apply_terms", "dense", "_layer_slice"} <= lista
    assert not {"net_lipschitz", "resolvent_norm", "gram_range", "block_norm"} & lista
    admm = _helpers(unfoldc.load(EXAMPLES / "admm_lasso.unf"))
    assert {"resolvent_norm", "gram_range", "eig_range"} <= admm and "net_lipschitz" not in admm
    nets = _helpers(unfoldc.load(EXAMPLES / "ista_correction.unf"))
    assert {"net_lipschitz", "opnorm", "opnorm_terms"} <= nets


def test_pruning_follows_calls_between_helpers():
    pruned = _template({"opnorm"})
    names = set(vars(pruned))
    assert {"opnorm", "opnorm_terms", "dense", "apply_terms", "ritz_values", "start_vector",
            "_layer_slice", "ok", "__str__", "_runs"} <= names
    assert not {"net_lipschitz", "eig_range", "resolvent_norm", "check"} & names
    a = _randn(150, 300, seed=3)
    assert float(pruned.opnorm(a)) == pytest.approx(
        float(torch.linalg.matrix_norm(a, ord=2)), rel=1e-3)
