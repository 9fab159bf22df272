"""Derived convergence conditions, the generated `convergence_report()`, and `unfoldc check`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import unfoldc
from unfoldc.cli import main
from unfoldc.convergence.derive import derive

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


pytestmark = pytest.mark.usefixtures("one_thread")


def _h(m=20, n=40, seed=0, scale=0.2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, n, generator=g) * scale


def _conditions(name, optimized=True):
    art = unfoldc.compile(EXAMPLES / f"{name}.unf")
    an = derive(art.optimized if optimized else art.program)
    return {(c.kind, c.text()) for c in an.conditions}, an


@pytest.mark.parametrize("optimized", [False, True])
def test_ista_conditions_are_derived_from_the_jacobian(optimized):
    conds, an = _conditions("ista", optimized)
    assert conds == {
        ("threshold", "mu * rho >= 0"),
        ("step", "mu > 0"),
        ("step", "mu * lambda_max(H.T @ H) < 2"),
        ("descent", "mu * lambda_max(H.T @ H) <= 1"),
        ("lipschitz", "||I - mu * (H.T @ H)|| < 1"),  # exact linear part, not 1 + mu ||H||^2
    }
    assert any("coupling" in f and "holds by construction" in f for f in an.facts)


def test_conditions_of_the_other_examples():
    lista, _ = _conditions("lista")
    assert ("coupling", "||W2 + W1 @ H - I|| <= tol") in lista
    assert ("threshold", "theta >= 0") in lista
    lista_cp, an = _conditions("lista_cp")
    assert not any(k == "coupling" for k, _ in lista_cp)  # holds by construction
    assert any("coupling" in f for f in an.facts)
    admm, _ = _conditions("admm_lasso")
    assert {("penalty", "beta > 0"), ("threshold", "rho / beta >= 0")} <= admm
    rpca, _ = _conditions("rpca")
    assert {("step", "mu > 0"), ("step", "mu * 2 < 2")} <= rpca  # lambda_max([[1,1],[1,1]])
    fista, an = _conditions("fista")
    assert ("step", "mu * lambda_max(H.T @ H) < 2") in fista
    assert "t" in an.layer.schedule  # the momentum scalar is a per-layer constant


def test_docstring_carries_the_conditions():
    cls = unfoldc.load(EXAMPLES / "ista.unf")
    assert "mu * lambda_max(H.T @ H) < 2" in cls.__doc__
    assert "convergence_report()" in cls.__doc__
    keys = [c[0].split("@")[0] for c in cls.CONVERGENCE_CONDITIONS]
    assert keys == ["threshold", "step", "step", "descent", "lipschitz"]


def test_ista_at_initialization_passes_every_condition():
    model = unfoldc.load(EXAMPLES / "ista.unf")(H=_h())
    report = model.convergence_report()
    assert report.ok and report.failing_layers == []
    assert all(all(c.holds) for c in report.conditions if c.kind != "lipschitz")
    assert report.verdict == "certified"
    assert "ISTA convergence report (16 layers): certified by forward-backward" in str(report)


def _ista_with_steps(H, factor, layers):
    model = unfoldc.load(EXAMPLES / "ista.unf")(H=H, num_layers=64)
    with torch.no_grad():
        for k in layers:
            model.layers[k].mu_log.fill_(math.log(factor))  # mu = factor / L
    return model


def test_ista_with_steps_above_2_over_L_fails_on_exactly_those_layers():
    H = _h()
    report = _ista_with_steps(H, 2.5, [3, 7]).convergence_report()
    assert not report.ok
    assert report.failing_layers == [3, 7]
    step = next(c for c in report.conditions if c.text == "mu * lambda_max(H.T @ H) < 2")
    assert step.failing_layers == [3, 7]
    assert step.lhs[3] == pytest.approx(2.5, rel=1e-4)
    assert "FAIL" in str(report)
    # between 1/L and 2/L only the (info) descent condition is unmet: still convergent
    assert _ista_with_steps(H, 1.5, [2]).convergence_report().ok


def test_ista_with_steps_above_2_over_L_visibly_diverges():
    H, x = _h(), torch.randn(1, 20, generator=torch.Generator().manual_seed(1))
    good, bad = _ista_with_steps(H, 1.0, []), _ista_with_steps(H, 2.5, range(64))
    for model in (good, bad):
        for layer in model.layers:
            layer.rho_raw.data.fill_(1e-3)  # a small threshold: the data term dominates
    assert good(x).norm() < 100
    assert bad(x).norm() > 1e6 * good(x).norm()


def test_lista_coupling_residual_is_zero_at_init_and_grows_with_w2():
    model = unfoldc.load(EXAMPLES / "lista.unf")(H=_h())
    report = model.convergence_report()
    coupling = next(c for c in report.conditions if c.kind == "coupling")
    # No theorem covers a learned W2 (only the contraction test could): uncertified, not failing.
    assert report.verdict == "uncertified" and not report.failing_layers
    assert max(coupling.lhs) < 1e-5
    values = []
    for eps in (1e-2, 1e-1, 1.0):
        with torch.no_grad():
            model.layers[5].W2.copy_(model.layers[4].W2 + eps * torch.eye(40))
        report = model.convergence_report()
        coupling = next(c for c in report.conditions if c.kind == "coupling")
        values.append(coupling.lhs[5])
        assert report.failing_layers == [5]
    assert values == pytest.approx([1e-2, 1e-1, 1.0], rel=1e-2)


ADMM_PARAM = (EXAMPLES / "admm_lasso.unf").read_text().replace(
    "train  beta : scalar per_layer = 1   positive", "param  beta : scalar = 1")


def test_admm_with_a_negative_penalty_fails():
    cls = unfoldc.load_source(ADMM_PARAM, name="admm_param.unf")
    assert cls(H=_h()).convergence_report().ok
    report = cls(H=_h(), beta=-1.0).convergence_report()
    assert not report.ok
    failing = {c.text for c in report.conditions if c.failing_layers and c.level == "require"}
    assert failing == {"beta > 0", "rho / beta >= 0"}
    assert report.failing_layers == list(range(16))


USER = """algorithm USER "user conditions"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
let    L = opnorm(H)^2
let    L2 = 2 / L
train  mu  : scalar per_layer = 1 / L   positive
require mu < L2
assume opnorm(H) <= 10
layers 4:
    s <- soft(s - mu * H.T @ (H @ s - x), mu * 0.1)
output s
"""


def test_require_and_assume_are_evaluated_with_their_origin():
    cls = unfoldc.load_source(USER, name="user.unf")
    # dce keeps `L2`, read only by a condition
    assert any(a.target == "L2" for a in cls.artifacts.optimized.setup)
    report = cls(H=_h()).convergence_report()
    assert report.ok
    texts = {c.text: c for c in report.conditions}
    assert texts["mu < L2"].origin == "user.unf:8"
    report = cls(H=_h(scale=5.0)).convergence_report()  # opnorm(H) > 10
    assume = texts_of(report)["opnorm(H) <= 10"]
    assert assume.failing_layers == [0, 1, 2, 3]


def test_condition_text_does_not_repeat_its_keyword(golden):
    """`require mu < L2` is listed as `require: mu < L2` (it read `require: require mu < L2`)."""
    doc = unfoldc.load_source(USER, name="user.unf").__doc__
    section = doc[doc.index("Convergence conditions"):].rstrip() + "\n"
    golden("reports/user_conditions.txt", section)
    assert "require: require" not in doc and "assume: assume" not in doc


def texts_of(report):
    return {c.text: c for c in report.conditions}


def test_large_matrices_use_krylov_estimates_close_to_exact():
    cls = unfoldc.load(EXAMPLES / "ista_correction.unf")  # carries opnorm and eig_range
    report_cls = type(cls(H=_h(4, 6)).convergence_report())
    a = _h(150, 300, seed=4)
    exact = torch.linalg.matrix_norm(a, ord=2)
    assert report_cls.opnorm(a) == pytest.approx(exact.item(), rel=1e-3)
    lo, hi = report_cls.eig_range(a.T @ a)
    assert hi == pytest.approx((exact ** 2).item(), rel=1e-3)
    assert abs(float(lo)) < 1e-2 * float(hi)


def test_check_cli(tmp_path, capsys):
    spec = str(EXAMPLES / "ista.unf")
    assert main(["check", spec]) == 0
    out = capsys.readouterr().out
    assert "mu * lambda_max(H.T @ H) < 2" in out and "--given" in out
    h = tmp_path / "H.npy"
    np.save(h, _h().numpy())
    assert main(["check", spec, "--given", f"H={h}"]) == 0
    assert "ISTA convergence report (16 layers): certified" in capsys.readouterr().out
    from unfoldc.train.checkpoint import save_weights  # check refuses unlabelled weights

    model = _ista_with_steps(_h(), 2.5, [1])
    weights = tmp_path / "weights.safetensors"
    save_weights(model, weights)
    rc = main(["check", spec, "--given", f"H={h}", "--weights", str(weights), "--layers", "64"])
    assert rc == 1
    assert "violated on layers 2" in capsys.readouterr().out  # layer index 1, numbered from 1
    assert main(["check", spec, "--given", f"G={h}"]) == 2


@pytest.mark.parametrize("name", ["ista", "fista", "rpca", "admm_lasso"])
def test_enforced_networks_keep_their_init_and_cannot_break_the_conditions(name):
    enforced = unfoldc.load(EXAMPLES / f"{name}.unf", unfoldc.Options(enforce_convergence=True))
    plain = unfoldc.load(EXAMPLES / f"{name}.unf")
    kw = {"H": _h()} if plain.GIVENS else {}
    x = torch.randn(3, 20) if plain.GIVENS else torch.randn(3, 4, 5)
    a, b = enforced(**kw), plain(**kw)
    out_a, out_b = a(x), b(x)
    for u, v in zip(out_a if isinstance(out_a, tuple) else [out_a],
                    out_b if isinstance(out_b, tuple) else [out_b]):
        assert torch.equal(u, v)  # the initial values are kept exactly
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in list(a.parameters()) + list(b.parameters()):
            p.add_(30 * torch.randn(p.shape, generator=g))
    assert a.convergence_report().ok
    if name != "admm_lasso":  # its spec already constrains the penalty: `positive`
        assert not b.convergence_report().ok  # the same perturbation breaks the plain one


def test_compile_flag_enforces(capsys):
    assert main(["compile", str(EXAMPLES / "ista.unf"), "--enforce-convergence"]) == 0
    assert "interval(self.mu_raw" in capsys.readouterr().out
