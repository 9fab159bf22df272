"""The differential soundness harness (issue 10, item 6) on a fast subset of configurations.

Specs are generated from algorithm families (tests/harness_families.py), with parameters on
both sides of every textbook condition's boundary; each network is iterated with the same
parameters on every layer for K = 1000 layers and its report is compared with what happened:

- certified => the iterates converge (no false certificates);
- every reported layer bound and `network_bound` >= the measured Lipschitz constant;
- reported violated => a textbook condition of the family is violated, and a failing condition
  of a kind the family knows ("step", "threshold", "relaxation", ...) is violated when computed
  independently (numpy eigvalsh);
- the issue's named false alarms are not "violated".

The measurement machinery (dynamics classifier, JVP power iteration, layer maps, textbook
conditions) is tested on its own. The report's new API (`verdict`, `layer_bounds`,
`network_bound`) is what the soundness tests read; while the generated modules do not have
it they are skipped, and the old `ok` is shown to certify the issue's diverging networks.
`benchmarks/soundness_harness.py` runs the whole grid over many seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from harness_families import (
    FAMILIES,
    Config,
    classify,
    compiled,
    evaluate,
    exact_norm,
    jvp_power_norm,
    map_spec,
    named_configs,
)

pytestmark = pytest.mark.usefixtures("one_thread")

K = 1000  # layers iterated
K_NET = 4  # depth of the network whose whole-map bound is measured (8 for Chebyshev steps:
# one period)

# A subset of the families' grids that straddles each boundary, including every divergence
# the issue names (family -> configuration names; see the families for the parameters).
SUBSET = {
    "gd_residual": ["aL=1.8", "aL=2.2"],
    "gd_chebyshev": ["T=8,top=1.0L"],
    "ista": ["aL=1.8,rho=0.1", "aL=0.5,rho=-0.05"],
    "pgd_proj_box": ["aL=1.5,lo=-0.5,hi=0.5", "aL=0.5,lo=0.5,hi=-0.5"],
    "fista": ["aL=0.95", "aL=1.5", "aL=1.8"],
    "nesterov": ["aL=0.95,beta=0.5", "aL=1.8,beta=0.5"],
    "heavy_ball": ["aL=2.2,beta=0.5", "aL=3.5,beta=0.5", "aL=0.5,beta=1.1", "aL=3.5,beta=0.0"],
    "admm_increment": ["lam=1.95,beta=3.0", "lam=2.5,beta=0.3"],
    "dr_solve_increment": ["lam=1.5,gamma=0.3", "lam=2.5,gamma=3.0"],
    "dr_inv_convex": ["lam=2.5,gamma=0.3"],
    "dr_prox_increment": ["lam=1.5,gamma=0.3", "lam=2.5,gamma=3.0"],
    "cp_tv": ["tsK2=0.9,theta=1.0", "tsK2=1.5,theta=1.5", "tsK2=6.0,theta=0.5"],
    "cp_tv_diff": ["tsK2=0.9,theta=1.0", "tsK2=1.5,theta=1.0"],
    "cp_lasso": ["tsK2=6.0,theta=1.0"],
    "lista": ["||W2||=0.95,theta=0.1"],
    "lista_cp_cp": ["aL=1.5,eps=0.3,theta=0.1"],
    "ista_net": ["aL=1.0,Lip=0.05", "aL=0.5,Lip=1.5"],
}

# The issue's false certificates of the old `ok` ("What was measured"): these diverge, or stay
# bounded without converging.
ISSUE_DIVERGENCES = [
    ("fista", "aL=1.5"), ("fista", "aL=1.8"), ("heavy_ball", "aL=3.5,beta=0.5"),
    ("cp_tv", "tsK2=1.5,theta=1.5"), ("cp_tv", "tsK2=6.0,theta=0.5"),
    ("dr_solve_increment", "lam=2.5,gamma=3.0"),
]


def _config(family: str, params: str, seed: int = 0) -> Config:
    name = f"{family}[{params}]"
    return next(c for c in FAMILIES[family].configs(seed) if c.name == name)


def subset_configs() -> list[Config]:
    return [_config(f, p) for f, names in SUBSET.items() for p in names]


@pytest.fixture(scope="module")
def results():
    """Every subset configuration evaluated once (report, dynamics, measured constants)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [evaluate(c, K=K, K_net=8 if c.family == "gd_chebyshev" else K_NET,
                         layers=(0, K - 1) if c.schedules else (0,))
                for c in subset_configs()]
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def new_api(results):
    if not all(r.new_api for r in results):
        pytest.skip("the generated report has no `verdict` yet (issue 10): only the "
                    "measurement machinery is tested")
    return results


# --------------------------------------------------------------------------------------------
# The measurement machinery
# --------------------------------------------------------------------------------------------


def test_subset_names_exist():
    assert len(subset_configs()) == sum(len(v) for v in SUBSET.values())


def test_the_families_and_their_layer_maps_compile():
    """The subset's families (compiled once for the fixture too) and TISTA; the benchmark
    compiles every family."""
    for fam in [FAMILIES[name] for name in [*SUBSET, "tista"]]:
        cls = compiled(fam.spec, fam.name)
        assert cls.convergence_report is not None
        mcls = compiled(map_spec(fam.spec, fam.schedules), fam.name + "_map")
        states = [s for s in cls.STATES if s not in fam.schedules]
        assert set(mcls.INPUTS) >= {f"{s}_0" for s in states}
        assert tuple(mcls.OUTPUTS) == tuple(states)


def test_classifier_on_synthetic_sequences():
    k = torch.arange(1, 1001, dtype=torch.float64)[:, None, None]
    direction = torch.ones(1, 1, 3, dtype=torch.float64)
    assert classify(direction * (1 + 0.9 ** k))[0] == "converged"
    assert classify(direction * (1 + torch.cos(2.0 * k) * k ** -1.5))[0] == "converging"
    assert classify(direction * torch.log(k))[0] == "bounded"  # steps ~ 1/k: not summable
    assert classify(direction * k.sqrt())[0] == "bounded"
    assert classify(direction * (-1.0) ** k)[0] == "bounded"
    assert classify(direction * 1.02 ** k)[0] == "diverged"
    nan = direction * torch.ones_like(k)
    nan[500] = math.nan
    assert classify(nan)[0] == "diverged"


def test_power_iteration_matches_the_exact_norm():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(7, 5, generator=g, dtype=torch.float64)
    a = torch.randn(5, generator=g, dtype=torch.float64)

    def f(v):
        return torch.tanh(A @ v)

    assert jvp_power_norm(f, a, iters=100) == pytest.approx(exact_norm(f, a), rel=1e-8)


def test_layer_map_measures_ista_exactly():
    """ISTA with threshold 0 is the linear map I - mu H^T H: measured = ||I - mu H^T H||."""
    cfg = _config("ista", "aL=1.5,rho=0.1")
    cfg.kwargs = dict(cfg.kwargs, rho=0.0)
    res = evaluate(cfg, K=50, K_net=3)
    H, mu = cfg.problem.givens["H"], cfg.kwargs["a0"]
    M = np.eye(H.shape[1]) - mu * H.T @ H
    assert res.layers[0][2] == pytest.approx(np.linalg.norm(M, 2), rel=1e-9)
    assert res.network[2] == pytest.approx(np.linalg.norm(np.linalg.matrix_power(M, 3), 2),
                                           rel=1e-9)


@pytest.mark.parametrize("family", ["gd_direct", "gd_grad", "heavy_ball"])
def test_dynamics_agree_with_exact_theory_on_linear_families(family):
    """Gradient descent and heavy ball on least squares are linear: they converge exactly
    when the textbook conditions hold (Polyak's region is exact for quadratics)."""
    configs = FAMILIES[family].configs(1)
    if family == "heavy_ball":
        configs = configs[::3]  # keep the test fast
    for cfg in configs:
        res = evaluate(cfg, K=K, with_report=False)
        assert res.dyn.converges == cfg.textbook_ok, (cfg.name, res.dyn.status)


def test_the_issue_divergences_do_not_converge(results):
    by_name = {r.cfg.name: r for r in results}
    for family, params in ISSUE_DIVERGENCES:
        res = by_name[f"{family}[{params}]"]
        assert not res.dyn.converges, res.line()
        assert not res.cfg.textbook_ok


def test_old_ok_certified_the_issue_divergences(results):
    """Reproduces the issue with the old API: `ok` is True on diverging networks."""
    if any(r.new_api for r in results):
        pytest.skip("the report has the new API")
    by_name = {r.cfg.name: r for r in results}
    false = [f"{f}[{p}]" for f, p in ISSUE_DIVERGENCES if by_name[f"{f}[{p}]"].verdict ==
             "certified"]
    assert len(false) >= 5, false


# --------------------------------------------------------------------------------------------
# Soundness of the report (new API)
# --------------------------------------------------------------------------------------------


def test_reports_never_crash(new_api):
    errors = [f"{r.cfg.name}: {r.error}" for r in new_api if r.error]
    assert not errors, "\n".join(errors)


def test_the_new_api_is_consistent(new_api):
    """verdict in the three, ok == (verdict == "certified"), one bound per layer, reasons."""
    problems = [f"{r.cfg.name}: {p}" for r in new_api for p in r.api_problems]
    assert not problems, "\n".join(problems)


def test_no_false_certificates(new_api):
    false = [r.line() for r in new_api if r.false_certificate]
    assert not false, "\n".join(false)


def test_violated_means_a_textbook_condition_is_violated(new_api):
    wrong = [r.line() for r in new_api if r.false_violation]
    for r in new_api:
        for kind in r.failing & set(r.cfg.kinds):
            if not r.cfg.kinds[kind]:
                wrong.append(f"{r.cfg.name}: a {kind} condition is reported failing, but it "
                             f"holds when computed independently")
    assert not wrong, "\n".join(wrong)


def test_bounds_are_at_least_the_measured_constants(new_api):
    unsound = [f"{r.cfg.name}: {u}" for r in new_api for u in r.unsound_bounds(1e-9)]
    assert not unsound, "\n".join(unsound)


def test_the_issue_divergences_are_not_certified(new_api):
    by_name = {r.cfg.name: r for r in new_api}
    for family, params in ISSUE_DIVERGENCES:
        assert by_name[f"{family}[{params}]"].verdict != "certified"


def test_named_false_alarms_are_not_violated(new_api):
    """Douglas-Rachford at gamma = 1e4 in float32, untrained TISTA and gradient descent with a
    residual temporary converge: their reports must not say "violated"."""
    for name, cfg in named_configs().items():
        res = evaluate(cfg, K=200, measure=False)
        assert res.verdict != "violated", (name, res.reasons)


def test_summary(new_api, capsys):
    """Counts (shown with -s): configurations, verdicts, false certificates and alarms."""
    counts = {v: sum(r.verdict == v for r in new_api)
              for v in ("certified", "violated", "uncertified")}
    alarms = sum(r.false_alarm for r in new_api)
    ratios = [b / m for r in new_api for _, b, m in r.layers if math.isfinite(b) and m > 0]
    with capsys.disabled():
        print(f"\nharness subset: {len(new_api)} configurations, {counts}, false certificates "
              f"{sum(r.false_certificate for r in new_api)}, false alarms {alarms}, median "
              f"layer bound / measured {np.median(ratios) if ratios else math.nan:.3g}")
