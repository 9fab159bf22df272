"""The report runtime (unfoldc/runtime/report.py) as ordinary Python: verdicts, spectral
radii, the composed network bound, layer numbering; and its copy in generated modules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import unfoldc
from unfoldc.convergence import emit
from unfoldc.runtime.report import ConvergenceReport as R


def _row(kind, level, values, bound, op="<", key=None):
    results = [R.check(v, op, bound, 2.2e-16) for v in values]
    return (key or kind, kind, level, "spec.unf:3", f"{kind} {op} {bound}", "a theorem"), results


def _report(rows, certificates=(), shared=False, chain=None):
    table = [t for t, _ in rows]
    return R("NET", table, [r for _, r in rows], certificates, ("a reason",),
             chain_bound=chain, shared_fixed_point=shared)


def test_certified_violated_and_uncertified():
    step = _row("step", "require", [0.5, 1.5, 2.5], 2.0)
    lip = _row("lipschitz", "certify", [1.0, 1.0, 1.0], 1.0)
    cert = (("forward-backward", "spec.unf:3", "FB theorem", ("step",)),
            ("contraction", "spec.unf:3", "Banach", ("lipschitz",)))
    bad = _report([step, lip], cert)
    assert bad.verdict == "violated" and bad.failing_layers == [2] and not bad.ok
    assert any("fails on layers 3" in r for r in bad.reasons)  # numbered from 1
    good = _report([_row("step", "require", [0.5, 1.5], 2.0), _row("lipschitz", "certify",
                                                                  [1.0, 1.0], 1.0)], cert)
    assert good.verdict == "certified" and good.ok
    assert good.certificate[0] == "forward-backward" and good.reasons == []
    none = _report([_row("lipschitz", "certify", [1.0, 1.0], 1.0)])
    assert none.verdict == "uncertified" and "no theorem covers these updates" in none.reasons
    assert "a reason" in none.reasons


def test_a_contracting_network_with_a_shared_fixed_point_waives_per_layer_steps():
    step = _row("step", "require", [0.5, 3.0], 2.0)
    lip = _row("lipschitz", "certify", [1.0, 2.0], 1.0)
    shared = _report([step, lip], chain=0.1, shared=True)
    assert shared.network_bound == pytest.approx(0.1)
    assert shared.verdict == "certified" and shared.certificate[0] == "network contraction"
    not_shared = _report([step, lip], chain=0.1, shared=False)
    assert not_shared.verdict == "certified"  # the K-layer map contracts: Banach on it
    threshold = _row("threshold", "require", [-1.0, 1.0], 0.0, op=">=")
    assert _report([threshold, lip], chain=0.1, shared=True).verdict == "certified"
    assert _report([threshold, lip], chain=2.0, shared=True).verdict == "violated"


def test_layer_bounds_and_network_bound_without_a_bound_are_infinite():
    report = _report([_row("step", "require", [0.5, 0.5], 2.0)])
    assert report.layer_bounds == [math.inf, math.inf]
    assert math.isinf(report.network_bound)


def test_layer_numbers_are_runs_from_one():
    assert R._numbers([0, 1, 2, 5, 7, 8]) == "1-3, 6, 8-9"
    assert R._numbers([]) == ""
    periodic = [k for k in range(1200) if k % 4 == 1]
    assert R._numbers(periodic) == "2, 6, 10, 14, 18, ... 1198 (300 layers in all)"


def test_spectral_radius_of_gradient_descent_and_heavy_ball():
    lams = torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64)
    a = 0.9
    assert R.spectral_radius([[1]], [[-a]], lams, False) == pytest.approx(1.0)
    # on null(G) the eigenvalue 1 is allowed when the offset lies in range(G)
    assert R.spectral_radius([[1]], [[-a]], lams, True) == pytest.approx(abs(1 - a * 2.0))
    beta, alpha = 0.5, 1.0
    c0 = [[1 + beta, -beta], [1, 0]]
    c1 = [[-alpha, 0], [0, 0]]
    exact = max(np.abs(np.linalg.eigvals(np.array(c0) + np.array(c1) * lam)).max()
                for lam in (0.5, 2.0))
    assert R.spectral_radius(c0, c1, lams, True) == pytest.approx(max(exact, beta))
    # a double eigenvalue 1 on null(G) (beta = 1): only one may be dropped
    assert R.spectral_radius([[2, -1], [1, 0]], c1, lams, True) >= 1 - 1e-6


def test_chain_norm_is_the_norm_of_the_composed_map():
    lams = torch.tensor([0.3, 1.0, 1.7], dtype=torch.float64)
    chain = None
    steps = (0.5, 1.2, 0.8)
    for a in steps:
        chain = R.chain_step(chain, [[1]], [[-a]], lams)
    exact = max(abs(np.prod([1 - a * lam for a in steps])) for lam in (0.3, 1.0, 1.7))
    assert R.chain_norm(chain) == pytest.approx(exact)
    assert math.isinf(R.chain_norm(None))
    for _ in range(2000):  # a diverging product overflows: the bound is inf, not an error
        chain = R.chain_step(chain, [[1]], [[-3.0]], lams)
    assert math.isinf(R.chain_norm(chain))


def test_check_keeps_python_floats_in_float64():
    """torch.as_tensor(float) is float32: sqrt(2) lost 2e-8 and undercut a measured bound."""
    assert R.check(2 ** 0.5, "<", 2.0, 2.2e-16)[0] == 2 ** 0.5


def test_check_allows_rounding_on_non_strict_comparisons():
    assert R.check(1.0 + 1e-15, "<=", 1.0, 2.2e-16)[2]
    assert not R.check(1.0, "<", 1.0, 2.2e-16)[2]
    assert R.check(float("nan"), "<", 1.0, 2.2e-16)[2] is False


def test_a_strict_bound_within_rounding_is_neither_proved_nor_refuted():
    # A norm that is exactly 1 computes as 1 - 2e-16 or 1 + 2e-16: neither certifies.
    assert R.check(1.0 - 2.2e-16, "<", 1.0, 2.2e-16)[2] is None
    assert R.check(1.0 + 2.2e-16, "<", 1.0, 2.2e-16)[2] is None
    assert R.check(0.999, "<", 1.0, 2.2e-16)[2] is True
    assert R.check(1.001, "<", 1.0, 2.2e-16)[2] is False
    assert R.check(3.9e-7, ">", 0.0, 1.2e-7)[2] is True  # relative to the numbers compared
    edge = _row("lipschitz", "certify", [1.0 - 2.2e-16] * 2, 1.0)
    step = _row("step", "require", [1.0 + 2.2e-16, 0.5], 1.0)
    rep = _report([edge, step], (("forward-backward", "spec.unf:3", "FB", ("step",)),
                                 ("contraction", "spec.unf:3", "Banach", ("lipschitz",))))
    assert rep.verdict == "uncertified" and rep.failing_layers == []  # no false alarm either
    assert any("within rounding of its bound on layers 1" in r for r in rep.reasons)
    assert "edge" in str(rep)


def test_a_network_bound_of_one_up_to_rounding_certifies_nothing():
    lip = _row("lipschitz", "certify", [1.0, 1.0], 1.0)
    assert not _report([lip], chain=1.0 - 1e-15).network_certified
    assert _report([lip], chain=0.99).network_certified


def _lista_cp(n):
    cls = unfoldc.load("examples/lista_cp.unf")
    torch.manual_seed(0)
    return cls, cls(H=torch.randn(n // 2, n, dtype=torch.float64) / (n // 2) ** 0.5,
                    num_layers=4)


def test_lista_cp_on_a_wide_matrix_is_not_certified():
    # I - W H is the identity on the null space of H: its norm is exactly 1, never < 1.
    _, model = _lista_cp(40)
    rep = model.convergence_report()
    assert rep.verdict == "uncertified" and not rep.estimated
    assert not rep.network_certified


def test_norms_estimated_from_below_never_certify(monkeypatch):
    # Above EXACT_SIZE norms are Krylov estimates from below: LISTA-CP's estimate of
    # ||I - W H|| is below 1 (it was certified with network bound 0.9999 at 250 x 500).
    cls, model = _lista_cp(40)
    runtime = cls.convergence_report.__globals__["ConvergenceReport"]
    monkeypatch.setattr(runtime, "EXACT_SIZE", 8)
    rep = model.convergence_report()
    assert rep.estimated and rep.verdict == "uncertified"
    assert rep.network_bound < 1  # the estimate alone would have certified
    assert any("estimated from below" in r for r in rep.reasons)
    monkeypatch.setattr(runtime, "EXACT_SIZE", 1024)
    assert not model.convergence_report().estimated  # a new evaluation starts afresh


def test_generated_modules_carry_the_runtime_verbatim():
    code = unfoldc.compile("examples/gd_steps.unf").code
    for name in ("spectral_radius", "chain_step", "chain_norm", "verdict"):
        assert f"def {name}(" in code
    assert "net_lipschitz" not in code  # only what the module's report uses
    renamed = emit.runtime_source({"ConvergenceReport": "Report_"})
    assert "class Report_:" in renamed and "ConvergenceReport" not in renamed


def test_compiling_does_not_import_torch():
    """The runtime is copied as text: `unfoldc compile` stays free of torch's import time."""
    import subprocess
    import sys

    code = ("import sys, unfoldc; unfoldc.compile('examples/gd_steps.unf'); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=emit.__file__.rsplit(
        "/unfoldc/", 1)[0])
