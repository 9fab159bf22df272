"""The convergence report's verdicts: which theorem covers an update, found by structure.

Each test pins a case measured in issue 10 (a false certificate, a false alarm, a name capture,
a crash): the verdict is "certified" only when a cited theorem covers the update and its
conditions hold; what the analysis does not recognise is "uncertified", never ok.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import unfoldc
from unfoldc.cli import main
from unfoldc.convergence.derive import derive
from unfoldc.source import Source

pytestmark = pytest.mark.usefixtures("one_thread")


def _h(m=12, n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, n, generator=g, dtype=torch.float64) / m ** 0.5


def _tall(m=30, n=12, seed=1):
    return _h(m, n, seed)


def _build(text, layers=None, dtype=torch.float64, **givens):
    if layers is not None:
        text = text.replace("layers 16:", f"layers {layers}:")
    cls = unfoldc.load_source(text, name="spec.unf")
    return cls(**{k: v.to(dtype) for k, v in givens.items()})


def _program(text):
    return unfoldc.compile_source(Source("spec.unf", text)).program


def _run(model, x):
    with torch.no_grad():
        out = model(x)
    return out if torch.is_tensor(out) else out[0]


FISTA = """
algorithm F "FISTA with the step c / L"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
state  z : vector[n] = 0
state  t : scalar    = 1
let    L = opnorm(H)^2
param  c : scalar = {c}
param  rho : scalar = 0
layers 16:
    s_new = soft(z - (c / L) * H.T @ (H @ z - x), (c / L) * rho)
    t_new = (1 + sqrt(1 + 4 * t^2)) / 2
    z <- s_new + ((t - 1) / t_new) * (s_new - s)
    s <- s_new
    t <- t_new
output s
"""


@pytest.mark.parametrize("c, verdict", [(1.0, "certified"), (0.9, "certified"),
                                        (1.5, "violated"), (1.8, "violated")])
def test_fista_needs_a_step_of_at_most_1_over_L(c, verdict):
    h = _tall()
    model = _build(FISTA.format(c=c), layers=400, H=h)
    report = model.convergence_report()
    assert report.verdict == verdict
    if verdict == "violated":  # the false certificate: 400 layers reach 1e116
        assert any("momentum_step" in r for r in report.reasons)
        assert _run(model, torch.randn(2, 30, dtype=torch.float64)).abs().max() > 1e6
    else:
        assert report.certificate[0] == "accelerated proximal gradient"


def test_fista_schedule_condition_is_proved_not_evaluated():
    an = derive(_program(FISTA.format(c=1.0)))
    assert any("FISTA condition" in f and "identically" in f for f in an.facts)
    assert not any("t_new" in c.note for c in an.conditions)


HEAVY_BALL = """
algorithm HB "heavy ball"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
state  sp : vector[n] = 0
let    L = opnorm(H)^2
param  a : scalar = {a}
param  beta : scalar = {beta}
layers 16:
    s_new = s - (a / L) * H.T @ (H @ s - x) + beta * (s - sp)
    sp <- s
    s <- s_new
output s
"""


@pytest.mark.parametrize("a, beta, verdict", [(3.5, 0.5, "violated"), (1.0, 0.5, "certified"),
                                              (2.9, 0.5, "certified"), (1.0, 1.1, "violated")])
def test_heavy_ball_gets_polyak_conditions(a, beta, verdict):
    model = _build(HEAVY_BALL.format(a=a, beta=beta), layers=600, H=_tall())
    report = model.convergence_report()
    assert report.verdict == verdict
    kinds = {c.kind for c in report.conditions}
    assert {"momentum", "spectral"} <= kinds
    final = _run(model, torch.randn(2, 30, dtype=torch.float64))
    assert (final.abs().max() > 1e6) == (verdict == "violated")


CP = """
algorithm CP "Chambolle-Pock for 1-D total variation"
given  D : matrix[p, n]
input  x : vector[n]
state  u : vector[n] = 0
state  ub : vector[n] = 0
state  y : vector[p] = 0
let    K = opnorm(D)
param  r : scalar = {r}
param  lam : scalar = 0.5
param  theta : scalar = {theta}
layers 16:
    y <- clamp(y + (r / K) * D @ ub, -lam, lam)
    u_new = (u - (1 / K) * D.T @ y + (1 / K) * x) / (1 + 1 / K)
    ub <- u_new + theta * (u_new - u)
    u <- u_new
output u
"""


def _diff(n=30):
    d = torch.zeros(n - 1, n, dtype=torch.float64)
    d[range(n - 1), range(n - 1)] = -1
    d[range(n - 1), range(1, n)] = 1
    return d


@pytest.mark.parametrize("r, theta, verdict", [
    (0.5, 1.0, "certified"), (1.5, 1.0, "violated"), (6.0, 1.0, "violated"),
    (0.5, 0.5, "uncertified"), (0.5, 1.5, "violated")])
def test_chambolle_pock_conditions(r, theta, verdict):
    report = _build(CP.format(r=r, theta=theta), D=_diff()).convergence_report()
    assert report.verdict == verdict
    texts = {c.text for c in report.conditions if c.kind == "primal_dual"}
    assert any("lambda_max(D.T @ D) < 1" in t for t in texts)
    assert {"theta >= 0", "theta <= 1"} <= texts


DR = """
algorithm DR "Douglas-Rachford for the LASSO"
given  H : matrix[m, n]
input  x : vector[m]
state  z : vector[n] = 0
param  g : scalar = {g}
param  rho : scalar = 0.1
param  lam : scalar = {lam}
layers 16:
    s = solve(I + g * H.T @ H, z + g * H.T @ x)
    w = soft(2 * s - z, g * rho)
    z <- {update}
output z
"""


@pytest.mark.parametrize("update", ["z + lam * (w - s)", "(1 - lam) * z + lam * (z + w - s)"])
@pytest.mark.parametrize("lam, verdict", [(1.0, "certified"), (1.9, "certified"),
                                          (2.5, "violated")])
def test_relaxation_is_found_however_it_is_written(update, lam, verdict):
    text = DR.format(g=1.0, lam=lam, update=update)
    report = _build(text, H=_h()).convergence_report()
    assert report.verdict == verdict
    relax = [c for c in report.conditions if c.kind == "relaxation"]
    assert sorted(c.text for c in relax) == ["lam < 2", "lam > 0"]  # once, not per statement


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_douglas_rachford_coupling_is_proved_not_evaluated(dtype):
    """inv(I + g H^T H)(I + g H^T H) - I is zero for every g: never a dense inverse."""
    text = DR.format(g=1e4, lam=1.0, update="z + lam * (w - s)")
    an = derive(_program(text))
    assert not any(c.kind == "coupling" for c in an.conditions)
    assert any("coupling" in f and "holds by construction" in f for f in an.facts)
    report = _build(text, dtype=dtype, H=_h()).convergence_report()
    assert report.verdict == "certified"


ADMM_RELAXED = """
algorithm AR "over-relaxed ADMM for the LASSO"
given  H : matrix[m, n]
input  x : vector[m]
state  z : vector[n] = 0
state  u : vector[n] = 0
param  rho : scalar = 0.1
param  beta : scalar = 1
param  alpha : scalar = {alpha}
layers 16:
    s = solve(H.T @ H + beta * I, H.T @ x + beta * (z - u))
    xh = alpha * s + (1 - alpha) * z
    z <- soft(xh + u, rho / beta)
    u <- u + xh - z
output z
"""


@pytest.mark.parametrize("alpha, verdict", [(1.5, "certified"), (2.5, "violated")])
def test_over_relaxed_admm(alpha, verdict):
    report = _build(ADMM_RELAXED.format(alpha=alpha), H=_h()).convergence_report()
    assert report.verdict == verdict
    assert report.certificate is None or report.certificate[0] == "ADMM"
    relax = [c.text for c in report.conditions if c.kind == "relaxation"]
    assert sorted(relax) == ["alpha < 2", "alpha > 0"]  # the pair once (was three times)


GD_RESIDUAL = """
algorithm GDR "gradient descent written with a residual temporary"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
let    L = opnorm(H)^2
train  mu : scalar per_layer = 1 / L
layers 16:
    r = H @ s - x
    s <- s - mu * H.T @ r
output s
"""


def test_gradient_descent_with_a_residual_temporary_is_certified():
    """The residual lives in x's space: no coupling `|-1| <= tol` is derived for it."""
    report = _build(GD_RESIDUAL, H=_h()).convergence_report()
    assert report.verdict == "certified", report.reasons
    assert not any(c.kind == "coupling" for c in report.conditions)


CAPTURE = """
algorithm NAMES "spec names that the report's own locals used to capture"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
let    L = opnorm(H)^2
train  eps : scalar shared = 1 / L
param  tol : scalar = {lo}
param  rows : scalar = {hi}
layers 8:
    s <- proj_box(s - eps * H.T @ (H @ s - x), tol, rows)
output s
"""


@pytest.mark.parametrize("lo, hi, verdict", [(-1, 1, "certified"), (1, -1, "violated")])
def test_spec_names_never_collide_with_the_reports_locals(lo, hi, verdict):
    text = CAPTURE.format(lo=lo, hi=hi)
    renamed = (text.replace("eps", "step_a").replace("tol", "low").replace("rows", "high"))
    reports = [_build(t, H=_h()).convergence_report() for t in (text, renamed)]
    assert [r.verdict for r in reports] == [verdict, verdict]
    assert [c.lhs for c in reports[0].conditions] == [c.lhs for c in reports[1].conditions]


SCHEDULE_FROM_LET = """
algorithm SL "a schedule state initialized from a let"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
let    L = opnorm(H)^2
state  mu : scalar = 1 / L
layers 8:
    s <- s - mu * H.T @ (H @ s - x)
    mu <- mu * 0.9
output s
"""


def test_schedule_state_initialized_from_a_let():
    report = _build(SCHEDULE_FROM_LET, H=_h()).convergence_report()  # was a NameError
    assert report.verdict == "certified"
    step = next(c for c in report.conditions if c.kind == "step" and "<" in c.text)
    assert step.lhs[0] == pytest.approx(1.0) and step.lhs[1] == pytest.approx(0.9)


ABS = """
algorithm AB "abs is 1-Lipschitz but not a proximal map"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
let    L = opnorm(H)^2
train  mu : scalar shared = 1 / L
layers 8:
    s <- abs(s - mu * H.T @ (H @ s - x))
output s
"""


def test_abs_is_not_a_proximal_map():
    an = derive(_program(ABS))
    assert not any(c.kind == "descent" for c in an.conditions)
    assert not any(c.name == "forward-backward" for c in an.certificates)
    wide = _build(ABS, H=_h()).convergence_report()  # ||I - mu H^T H|| = 1: no contraction
    assert wide.verdict == "uncertified"
    tall = _build(ABS, H=_tall()).convergence_report()  # a contraction: Banach certifies
    assert tall.verdict == "certified" and "contraction" in tall.certificate[0]


DUGD = """
algorithm DUGD "deep-unfolded gradient descent with per-layer steps"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
train  mu : scalar per_layer = 0.1
layers 8:
    s <- s - mu * H.T @ (H @ s - x)
output s
"""


def _chebyshev_steps(lo, hi, k):
    """The steps whose residual polynomial is the Chebyshev polynomial on [lo, hi]."""
    j = np.arange(k)
    roots = (hi + lo) / 2 + (hi - lo) / 2 * np.cos((2 * j + 1) * np.pi / (2 * k))
    return 1 / roots


def test_chebyshev_steps_are_certified_by_the_network_bound():
    h = _tall(40, 10, seed=3)
    ev = np.linalg.eigvalsh((h.T @ h).numpy())
    steps = _chebyshev_steps(ev[0], ev[-1], 8)
    model = _build(DUGD, H=h)
    with torch.no_grad():
        for layer, a in zip(model.layers, steps):
            layer.mu.fill_(float(a))
    report = model.convergence_report()
    per_layer = next(c for c in report.conditions if c.kind == "step" and "<" in c.text)
    assert per_layer.failing_layers  # steps above 2/L: each such layer alone diverges
    g = (h.T @ h).numpy()
    composed = np.eye(10)
    for a in steps:
        composed = (np.eye(10) - a * g) @ composed
    true = np.linalg.norm(composed, 2)
    assert true <= report.network_bound * (1 + 1e-9) and report.network_bound < 1
    assert report.network_bound == pytest.approx(true, rel=1e-6)  # tight: the composed map
    assert report.shared_fixed_point and report.verdict == "certified"
    assert report.certificate[0] == "network contraction"


UNRECOGNIZED = """
algorithm U "a product of two state-dependent values"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
param  mu : scalar = 0.01
layers 4:
    s <- s - mu * s * (H.T @ (H @ s - x))
output s
"""


def test_unrecognized_updates_are_uncertified_never_ok(tmp_path):
    report = _build(UNRECOGNIZED, H=_h()).convergence_report()
    assert report.verdict == "uncertified" and not report.ok and report.reasons
    assert math.isinf(report.network_bound)
    spec = tmp_path / "u.unf"
    spec.write_text(UNRECOGNIZED)
    h = tmp_path / "H.npy"
    np.save(h, _h().numpy())
    assert main(["check", str(spec), "--given", f"H={h}"]) == 4
    spec.write_text(FISTA.format(c=1.8))
    assert main(["check", str(spec), "--given", f"H={h}"]) == 1
    spec.write_text(FISTA.format(c=1.0))
    assert main(["check", str(spec), "--given", f"H={h}"]) == 0


def test_every_example_gets_a_verdict_and_a_sound_network_bound():
    """The examples' untrained networks: certified where a theorem covers them."""
    expected = {"ista": "certified", "fista": "certified", "admm_lasso": "certified",
                "rpca": "certified", "gd_steps": "certified", "lista": "uncertified",
                "lista_cp": "uncertified"}
    for name, verdict in expected.items():
        cls = unfoldc.load(f"examples/{name}.unf")
        kw = {"H": _h().float()} if cls.GIVENS else {}
        report = cls(**kw).convergence_report()
        assert report.verdict == verdict, (name, report.reasons)
        assert report.network_bound >= 0


def test_a_gradient_temporary_gets_no_coupling_condition():
    """Heavy ball with `g = H.T @ (H @ s - x)`: g is not an estimate of s (was `||-I|| <= tol`)."""
    text = HEAVY_BALL.format(a=1.0, beta=0.5).replace(
        "    s_new = s - (a / L) * H.T @ (H @ s - x) + beta * (s - sp)",
        "    g = H.T @ (H @ s - x)\n    s_new = s - (a / L) * g + beta * (s - sp)")
    an = derive(_program(text))
    assert not any(c.kind == "coupling" for c in an.conditions)
    assert _build(text, H=_tall()).convergence_report().verdict == "certified"


def test_a_long_chain_of_updates_is_skipped_not_exponential():
    """25 updates of one state doubled the inlined tree each time (over 60 s); now the analysis
    stops at MAX_NODES and says so: uncertified, never a false verdict."""
    body = "\n".join("    s <- s - mu * H.T @ (H @ s - x)" for _ in range(25))
    text = GD_RESIDUAL.replace("    r = H @ s - x\n    s <- s - mu * H.T @ r", body)
    an = derive(_program(text))
    assert any("analysis skipped" in n for n in an.notes) and not an.certificates
    report = _build(text, H=_h()).convergence_report()
    assert report.verdict == "uncertified" and any("not analyzed" in r for r in report.reasons)


ADAPTIVE = """
algorithm ADAPT "a threshold that moves with the state (AMP-like)"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
let    L = opnorm(H)^2
param  c : scalar = 0.5
layers 8:
    r = x - H @ s
    s <- soft(s + (1 / L) * H.T @ r, c * norm2(r) / L)
output s
"""


def test_a_state_dependent_threshold_is_not_a_fixed_prox():
    """Forward-backward needs one proximal map: a threshold read off the state is not one."""
    an = derive(_program(ADAPTIVE))
    assert not any(c.name == "forward-backward" for c in an.certificates)
    assert _build(ADAPTIVE, H=_h()).convergence_report().verdict == "uncertified"


def test_a_vector_state_that_ignores_the_input_is_an_iterate_not_a_schedule():
    """pnp_pgd without `- x` (a fuzz mutant): the report ran s's update as a schedule and
    called the per-layer net `D` without binding it (NameError)."""
    text = Path("examples/pnp_pgd.unf").read_text().replace(" - x))", "))")
    cls = unfoldc.load_source(text, name="pnp_mut.unf")
    report = cls(H=_h().float()).convergence_report()
    assert report.verdict == "uncertified"
    assert "s" not in derive(_program(text)).layer.schedule


def test_a_matrix_written_as_a_sum_is_distributed():
    """`(I - mu H^T H) @ s + mu H^T x` is gradient descent, however the matrix is written."""
    text = GD_RESIDUAL.replace("    r = H @ s - x\n    s <- s - mu * H.T @ r",
                               "    s <- (I - mu * H.T @ H) @ s + mu * H.T @ x")
    an = derive(_program(text))
    assert any(c.name == "gradient descent" for c in an.certificates)
    assert _build(text, H=_h()).convergence_report().verdict == "certified"


CP_AFFINE_DUAL = """
algorithm CPL "Chambolle-Pock for the LASSO: the dual step is an affine resolvent"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
state  sbar : vector[n] = 0
state  q : vector[m] = 0
let    K = opnorm(H)
param  r : scalar = {r}
param  rho : scalar = 0.1
layers 16:
    q <- (q + (r / K) * (H @ sbar - x)) / (1 + r / K)
    s_new = soft(s - (1 / K) * H.T @ q, rho / K)
    sbar <- s_new + (s_new - s)
    s <- s_new
output s
"""


@pytest.mark.parametrize("r, verdict", [(0.5, "certified"), (1.5, "violated")])
def test_chambolle_pock_with_an_affine_dual_step(r, verdict):
    report = _build(CP_AFFINE_DUAL.format(r=r), H=_h()).convergence_report()
    assert report.verdict == verdict
    assert any("dual resolvent" in c.theorem or c.kind == "primal_dual"
               for c in report.conditions)


def test_many_independent_states_are_analyzed_in_near_linear_time():
    """100 states took 8 s (a schedule search per linearization, conditions compared pairwise):
    now the families stop at MAX_STATES and the block bound at MAX_BLOCK_STATES, saying so."""
    states = "\n".join(f"state s{i} : vector[n] = 0" for i in range(40))
    body = "\n".join(f"    s{i} <- s{i} - 0.01 * H.T @ (H @ s{i} - x)" for i in range(40))
    text = ('algorithm MANY "many states"\ngiven H : matrix[m, n]\ninput x : vector[m]\n'
            f"{states}\nlayers 2:\n{body}\noutput " + ", ".join(f"s{i}" for i in range(40)))
    an = derive(_program(text))
    assert any("40 states" in n for n in an.notes)
    assert len({c.text() for c in an.conditions if c.kind == "step"}) == 2  # one pair per line
    assert _build(text, H=_h()).convergence_report().verdict == "uncertified"
