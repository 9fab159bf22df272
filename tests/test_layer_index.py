"""The layer index `layer`, vectors indexed by it (`steps[layer]`) and `periodic T` trainables
(issue 12, construct 6): generated module against the IR interpreter and a NumPy loop in float64,
the schedule-length checks, gradients, torch.compile, weights, training stages, graph and the
convergence report (evaluated per layer; periodic copies k mod T; never a false certificate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import EXAMPLES

import unfoldc
from unfoldc.ir.graph import build_graph, graph_size
from unfoldc.ir.interpreter import run as interpret
from unfoldc.source import Source
from unfoldc.train.checkpoint import load_weights, save_weights
from unfoldc.train.schemes import layer_params

F64 = torch.float64


def chebyshev_steps(H: np.ndarray, T: int) -> np.ndarray:
    """Chebyshev step sizes for gradient descent on 0.5 ||H s - x||^2 (period T)."""
    lam = np.linalg.eigvalsh(H.T @ H)
    a, b = lam[0], lam[-1]
    j = np.arange(T)
    return 1 / ((b + a) / 2 + (b - a) / 2 * np.cos((2 * j + 1) * np.pi / (2 * T)))


def problem(m=12, n=6, seed=0):
    g = np.random.default_rng(seed)
    H = g.standard_normal((m, n)) / np.sqrt(m)
    x = g.standard_normal((3, m))
    return H, x


def numpy_gd(H, x, steps):
    """Gradient descent with step steps[k] in layer k, one sample at a time, in float64."""
    out = []
    for xb in x:
        s = np.zeros(H.shape[1])
        for gamma in steps:
            s = s - gamma * H.T @ (H @ s - xb)
        out.append(s)
    return np.stack(out)


def _load_text(text: str):
    return unfoldc.load_source(text, "t.unf")


# ---- examples/dugd.unf ---------------------------------------------------------------------------
def test_dugd_matches_the_interpreter_and_a_numpy_loop():
    H, x = problem()
    steps = chebyshev_steps(H, 8)
    cls = unfoldc.load(EXAMPLES / "dugd.unf")
    model = cls(H=torch.tensor(H), steps=torch.tensor(steps))
    got = model(torch.tensor(x))
    want = interpret(cls.artifacts.program, {"H": H, "steps": steps}, {"x": torch.tensor(x)})
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got, torch.tensor(numpy_gd(H, x, steps)), rtol=1e-12, atol=1e-12)
    # layer k starts from entry k of the schedule
    starts = [float(layer.gamma.detach()) for layer in model.layers]
    assert starts == pytest.approx(list(steps), rel=1e-15)


def test_dugd_longer_schedule_is_cut_and_shorter_is_refused():
    H, x = problem()
    steps = chebyshev_steps(H, 8)
    cls = unfoldc.load(EXAMPLES / "dugd.unf")
    model = cls(H=torch.tensor(H), steps=torch.tensor(np.r_[steps, 9.0, 9.0]))
    torch.testing.assert_close(model(torch.tensor(x)), torch.tensor(numpy_gd(H, x, steps)))
    with pytest.raises(ValueError, match=r"dugd\.unf:18: `steps\[layer\]` reads entry k in "
                                         r"layer k, but `steps` has 5 entries for 8 layers"):
        cls(H=torch.tensor(H), steps=torch.tensor(steps[:5]))
    cls(H=torch.tensor(H), steps=torch.tensor(steps[:5]), num_layers=5)  # 5 layers: enough


def test_chebyshev_schedule_is_certified_by_the_network_bound_not_per_layer():
    """Single Chebyshev steps exceed 2 / L (the per-layer gradient-descent condition fails on
    those layers) while the product of the layers contracts: the report says both."""
    H, _ = problem()
    steps = chebyshev_steps(H, 8)
    lmax = np.linalg.eigvalsh(H.T @ H)[-1]
    model = unfoldc.load(EXAMPLES / "dugd.unf")(H=torch.tensor(H), steps=torch.tensor(steps))
    report = model.convergence_report()
    step = next(c for c in report.conditions if "lambda_max" in c.text)
    assert step.failing_layers == [k for k in range(8) if steps[k] * lmax >= 2]
    assert step.failing_layers  # the check is not vacuous
    lam = np.linalg.eigvalsh(H.T @ H)
    contraction = np.max(np.abs(np.prod([1 - g * lam for g in steps], axis=0)))
    assert report.network_bound == pytest.approx(contraction, rel=1e-9)
    assert report.verdict == "certified" and report.certificate[0] == "network contraction"


def test_dugd_gradients_and_compile():
    H, x = problem(m=5, n=3)
    model = unfoldc.load(EXAMPLES / "dugd.unf")(H=torch.tensor(H), steps=torch.tensor(
        chebyshev_steps(H, 8)), num_layers=3)
    xt = torch.tensor(x, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: model(v), (xt,))
    model(xt).square().sum().backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all())
               for p in model.parameters())
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(torch.tensor(x)), model(torch.tensor(x)))
    torch._dynamo.reset()


# ---- the layer index in the body, without per-layer parameters ---------------------------------
BODY = """algorithm DECAY "A step that shrinks with the layer, and a schedule in the body."
given  H : matrix[m, n]
given  steps : vector[K]
input  x : vector[m]
state  s : vector[n] = 0
param  mu : scalar = 0.5
layers 6:
    s <- s - (mu / (layer + 1) + steps[layer]) * H.T @ (H @ s - x)
output s
"""


def test_layer_in_the_body_matches_the_interpreter_and_numpy():
    H, x = problem()
    steps = np.linspace(0.1, 0.3, 6)
    cls = _load_text(BODY)
    model = cls(H=torch.tensor(H), steps=torch.tensor(steps))
    # the index reaches the layer step inside the layer view, learned or classical
    assert "layer_index = layer.k  # the layer index `layer`" in cls.artifacts.code
    assert "return DECAYLayerAt(k)" in cls.artifacts.code
    got = model(torch.tensor(x))
    want = interpret(cls.artifacts.program, {"H": H, "steps": steps}, {"x": torch.tensor(x)})
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    schedule = [0.5 / (k + 1) + steps[k] for k in range(6)]
    torch.testing.assert_close(got, torch.tensor(numpy_gd(H, x, schedule)), rtol=1e-12,
                               atol=1e-12)
    torch.testing.assert_close(model(torch.tensor(x), checkpoint=True), got)  # index passed on
    with pytest.raises(ValueError, match=r"t\.unf:8: `steps\[layer\]`.* 6 entries for 7 layers"):
        model(torch.tensor(x), num_layers=7)  # no per-layer parameters: K may exceed the depth
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(torch.tensor(x)), got)
    torch._dynamo.reset()


def test_a_long_per_layer_value_of_the_report_is_one_value():
    """Regression: the report wrapped a long assignment by splitting its text at the commas
    after the first `(`, which turned `q0 = like.new_tensor(1) / (1 + k) * (...)` into a
    tuple and made convergence_report() raise a TypeError; calls are now wrapped at their
    arguments and nothing else is split."""
    H, _ = problem()
    model = _load_text(BODY)(H=torch.tensor(H), steps=torch.linspace(0.01, 0.03, 6,
                                                                     dtype=F64))
    report = model.convergence_report()
    assert report.verdict in ("certified", "violated", "uncertified")


def test_a_layer_dependent_step_is_never_certified_where_it_is_too_large():
    """`(layer + 1) * mu` outgrows 2 / L: those layers fail, the report is not certified."""
    text = BODY.replace("(mu / (layer + 1) + steps[layer])", "(layer + 1) * mu")
    H, _ = problem()
    lmax = np.linalg.eigvalsh(H.T @ H)[-1]
    mu = 0.7 / lmax
    model = _load_text(text)(H=torch.tensor(H), steps=torch.zeros(6, dtype=F64), mu=mu)
    report = model.convergence_report()
    assert report.verdict != "certified"
    step = next(c for c in report.conditions if "lambda_max" in c.text)
    assert step.failing_layers == [k for k in range(6) if (k + 1) * mu * lmax >= 2]
    assert report.network_bound > 1


def test_a_threshold_read_from_a_schedule_is_checked_per_layer():
    text = """algorithm ISTA_SCHED "ISTA with thresholds from a schedule."
given  H : matrix[m, n]
given  thresholds : vector[K]
input  x : vector[m]
state  s : vector[n] = 0
let    L = opnorm(H)^2
train  mu : scalar per_layer = 1 / L
layers 4:
    s <- soft(s - mu * H.T @ (H @ s - x), thresholds[layer])
output s
"""
    H, x = problem()
    th = torch.tensor([0.1, -0.2, 0.1, 0.3], dtype=F64)
    cls = _load_text(text)
    model = cls(H=torch.tensor(H), thresholds=th)
    report = model.convergence_report()
    assert report.verdict == "violated" and report.failing_layers == [1]
    want = interpret(cls.artifacts.program, {"H": H, "thresholds": th}, {"x": torch.tensor(x)})
    torch.testing.assert_close(model(torch.tensor(x)), want, rtol=1e-12, atol=1e-12)


# ---- periodic sharing ---------------------------------------------------------------------------
PERIODIC = """algorithm PERIODIC_GD "Periodic steps (3 copies) and a periodic relaxation."
given  H : matrix[m, n]
given  steps : vector[K]
input  x : vector[m]
state  s : vector[n] = 0
train  gamma : scalar periodic 3 = steps[layer]   positive
train  beta  : scalar periodic 2 = 0.5            in [0, 1]
train  c     : scalar per_layer  = 1
layers 8:
    s <- s - c * gamma * H.T @ (H @ s - x) * beta / 0.5
output s
"""


def _periodic(H, steps, K=8):
    return _load_text(PERIODIC)(H=torch.tensor(H), steps=torch.tensor(steps), num_layers=K)


def test_periodic_copies_live_in_the_first_layers():
    H, _ = problem()
    model = _periodic(H, [0.1, 0.2, 0.3])
    keys = sorted(k for k in model.state_dict() if "gamma" in k or "beta" in k)
    assert keys == ["layers.0.beta_hi", "layers.0.beta_init", "layers.0.beta_lo",
                    "layers.0.beta_raw", "layers.0.gamma_init", "layers.0.gamma_log",
                    "layers.1.beta_hi", "layers.1.beta_init", "layers.1.beta_lo",
                    "layers.1.beta_raw", "layers.1.gamma_init", "layers.1.gamma_log",
                    "layers.2.gamma_init", "layers.2.gamma_log"]
    assert model.TRAINABLES == {"gamma": "periodic 3", "beta": "periodic 2", "c": "per_layer"}
    # copy j trains with layer j (its first user) in layer-wise schemes
    assert "layers.1.gamma_log" in layer_params(model, 1)
    assert not any("gamma" in n for n in layer_params(model, 4))
    # fewer layers than the period: only the copies that are used
    assert sorted(k for k in _periodic(H, [0.1, 0.2], K=2).state_dict() if "gamma_log" in k) \
        == ["layers.0.gamma_log", "layers.1.gamma_log"]


def test_periodic_matches_the_interpreter_and_numpy_after_training_a_copy():
    H, x = problem()
    steps = [0.2, 0.35, 0.5]
    model = _periodic(H, steps)
    with torch.no_grad():
        model.layers[1].gamma_log.fill_(np.log(1.5))  # copy 1: layers 1, 4, 7
        model.layers[1].beta_raw.fill_(0.3)           # copy 1 of beta: layers 1, 3, 5, 7
    gammas = [float(model.layers[j].gamma.detach()) for j in range(3)]
    betas = [float(model.layers[j].beta.detach()) for j in range(2)]
    assert gammas[1] == pytest.approx(0.35 * 1.5)
    got = model(torch.tensor(x))
    want = interpret(type(model).artifacts.program, {"H": H, "steps": steps},
                     {"x": torch.tensor(x)},
                     trainables={"gamma": [torch.tensor(g, dtype=F64) for g in gammas],
                                 "beta": [torch.tensor(b, dtype=F64) for b in betas]})
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    schedule = [gammas[k % 3] * betas[k % 2] / 0.5 for k in range(8)]
    torch.testing.assert_close(got, torch.tensor(numpy_gd(H, x, schedule)), rtol=1e-12,
                               atol=1e-12)


def test_periodic_report_fails_on_the_layers_of_the_bad_copy():
    H, _ = problem()
    lmax = float(np.linalg.eigvalsh(H.T @ H)[-1])
    model = _periodic(H, [0.05 / lmax, 3.5 / lmax, 0.05 / lmax])  # copy 1 too large
    report = model.convergence_report()
    assert report.verdict == "violated"
    assert report.failing_layers == [1, 4, 7]


def test_periodic_weights_round_trip_and_gradients(tmp_path):
    H, x = problem(m=5, n=3)
    model = _periodic(H, [0.2, 0.3, 0.4], K=5)
    model(torch.tensor(x), checkpoint=True).square().sum().backward()
    assert model.layers[1].gamma_log.grad is not None  # used by layers 1 and 4
    with torch.no_grad():
        model.layers[2].gamma_log.fill_(0.25)
    save_weights(model, tmp_path / "w.safetensors")
    other = load_weights(_periodic(H, [0.2, 0.3, 0.4], K=5), tmp_path / "w.safetensors")
    torch.testing.assert_close(other(torch.tensor(x)), model(torch.tensor(x)))
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(torch.tensor(x)), model(torch.tensor(x)))
    torch._dynamo.reset()


def test_periodic_parameters_plot(tmp_path):
    from unfoldc.train.plots import plot_parameters
    H, _ = problem()
    plot_parameters(_periodic(H, [0.1, 0.2, 0.3]), tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


@pytest.mark.parametrize("unroll", [None, 2, 5])
def test_graphs_build_and_periodic_copies_are_shared_when_unrolled(unroll):
    for text in (PERIODIC, BODY, (EXAMPLES / "dugd.unf").read_text()):
        art = unfoldc.compile_source(Source("t.unf", text))
        g = build_graph(art.optimized, unroll=unroll)
        assert g.number_of_nodes() == graph_size(art.optimized, unroll)
    g = build_graph(unfoldc.compile_source(Source("t.unf", PERIODIC)).optimized, unroll=5)
    gammas = sorted(n for n in g.nodes if n.endswith(":gamma"))
    assert gammas == ["L0:gamma", "L1:gamma", "L2:gamma"]
    assert g.nodes["L1:gamma"]["label"] == "gamma : scalar periodic 3"
    assert any(src == "L1:gamma" and dst.startswith("L4:") for src, dst in g.edges)


# ---- with the layer map of issue 11: depth beyond the built one, the classical layer -----------
def gd_step(H, x, s, gamma):
    """One gradient step on 0.5 ||H s - x||^2 with step gamma, batched."""
    return s - gamma * (s @ H.T - x) @ H


def test_periodic_layer_k_past_the_built_depth_takes_copy_k_mod_t():
    H, x = problem()
    steps = [0.2, 0.35, 0.5]
    model = _periodic(H, steps, K=5)
    with torch.no_grad():
        model.layers[4].c.fill_(0.8)  # the last layer's own value, reused past the depth
    for k in range(11):
        view = model._layer(k)
        assert view.k == k
        torch.testing.assert_close(view.gamma, model.layers[k % 3].gamma)
        torch.testing.assert_close(view.beta, model.layers[k % 2].beta)
        torch.testing.assert_close(view.c, model.layers[min(k, 4)].c)
    got = model(torch.tensor(x), num_layers=11)
    gammas = [float(model.layers[j].gamma.detach()) for j in range(3)]  # float32 steps
    schedule = [gammas[k % 3] * (0.8 if k >= 4 else 1.0) for k in range(11)]
    torch.testing.assert_close(got, torch.tensor(numpy_gd(H, x, schedule)), rtol=1e-12,
                               atol=1e-12)
    lmax = float(np.linalg.eigvalsh(H.T @ H)[-1])
    bad = _periodic(H, [0.05 / lmax, 3.5 / lmax, 0.05 / lmax], K=5)  # copy 1 too large
    assert bad.convergence_report(num_layers=11).failing_layers == [1, 4, 7, 10]


def test_fewer_layers_than_the_period_reuse_the_last_copy_past_the_depth():
    H, x = problem()
    model = _periodic(H, [0.2, 0.35, 0.5], K=2)
    schedule = [float(model._layer(k).gamma.detach()) for k in range(5)]
    # copies 0, 1 exist: layer k uses min(k mod 3, 1)
    assert schedule == pytest.approx([0.2, 0.35, 0.35, 0.2, 0.35])
    torch.testing.assert_close(model(torch.tensor(x), num_layers=5),
                               torch.tensor(numpy_gd(H, x, schedule)), rtol=1e-12, atol=1e-12)


def test_classical_layer_k_starts_from_the_schedule_entry_k():
    """classical = each trainable's initial value in that layer: `steps[k]` for DUGD's gamma."""
    H, x = problem()
    steps = chebyshev_steps(H, 8)
    model = unfoldc.load(EXAMPLES / "dugd.unf")(H=torch.tensor(H), steps=torch.tensor(steps))
    with torch.no_grad():
        for layer in model.layers:
            layer.gamma_log.fill_(0.3)  # training moved every step
    xt, s = torch.tensor(x), torch.tensor(x) @ torch.tensor(H)
    Ht = torch.tensor(H)
    for k in (0, 5, 7):
        torch.testing.assert_close(model.classical_step(xt, s, k=k),
                                   gd_step(Ht, xt, s, steps[k]), rtol=1e-12, atol=1e-12)
    # past the built depth the classical layer is the last one, like the learned layers
    torch.testing.assert_close(model.classical_step(xt, s, k=12), gd_step(Ht, xt, s, steps[7]))
    with pytest.raises(TypeError):
        model.classical_step(xt, s)  # the index is required: layers differ
    # the safeguard compares layer k with classical layer k; the untrained net never falls back
    fresh = unfoldc.load(EXAMPLES / "dugd.unf")(H=Ht, steps=torch.tensor(steps))
    torch.testing.assert_close(fresh(xt, safeguard=True, safeguard_delta=1e-9), fresh(xt))
    # beyond the depth DUGD's learned steps need no schedule entry: the last layer repeats
    model(xt, num_layers=12, safeguard=True)
    assert len(model.last_safeguard) == 12


def test_classical_periodic_copy_and_the_index_in_the_body():
    H, x = problem()
    xt, Ht = torch.tensor(x), torch.tensor(H)
    s = xt @ Ht
    model = _periodic(H, [0.2, 0.35, 0.5], K=5)
    with torch.no_grad():
        model.layers[1].gamma_log.fill_(1.0)
    for k in range(7):  # gamma's copy k mod 3 at its initial value, beta = 0.5, c = 1
        torch.testing.assert_close(model.classical_step(xt, s, k=k),
                                   gd_step(Ht, xt, s, [0.2, 0.35, 0.5][k % 3]))
    body = _load_text(BODY)(H=Ht, steps=torch.linspace(0.1, 0.3, 6, dtype=F64))
    torch.testing.assert_close(body.classical_step(xt, s, k=3),
                               gd_step(Ht, xt, s, 0.5 / 4 + 0.1 + 0.2 * 3 / 5))
    with pytest.raises(ValueError, match=r"t\.unf:8: `steps\[layer\]`.* 6 entries for 9 layers"):
        body.convergence_report(num_layers=9)


def test_a_schedule_read_only_by_a_condition_is_checked_by_the_report_past_the_depth():
    text = BODY.replace("(mu / (layer + 1) + steps[layer])", "mu").replace(
        "layers 6:", "require steps[layer] >= 0\nlayers 6:")
    H, x = problem()
    model = _load_text(text)(H=torch.tensor(H), steps=torch.linspace(0.1, 0.3, 6, dtype=F64))
    assert len(model.convergence_report().conditions) >= 1
    model(torch.tensor(x), num_layers=9)  # the layers never read `steps`
    with pytest.raises(ValueError, match=r"t\.unf:7: `steps\[layer\]`.* 6 entries for 9 layers"):
        model.convergence_report(num_layers=9)  # line 7: the require
