"""Issue 11, items 1-3: depth beyond the trained one, the classical layer, the safeguard.

Small sizes and float64 throughout: every test runs in well under a second or two.
"""

from __future__ import annotations

import functools
import json

import pytest
import torch
from conftest import EXAMPLES

import unfoldc
from unfoldc.runtime.classical import Safeguard, frozen

F64 = torch.float64


@functools.cache
def load(name):
    return unfoldc.load(EXAMPLES / f"{name}.unf")


def problem(m=6, n=10, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    H = torch.randn(m, n, generator=g, dtype=F64) / m ** 0.5
    s = torch.randn(batch, n, generator=g, dtype=F64) * (torch.rand(batch, n, generator=g) < 0.3)
    return H, s @ H.T + 0.01 * torch.randn(batch, m, generator=g, dtype=F64)


def ista_step(H, x, s, mu, threshold):
    v = s - mu * (s @ H.T - x) @ H
    return torch.sign(v) * torch.relu(v.abs() - threshold)


def perturb(model, scale, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


# ---- 1. depth beyond the built one -------------------------------------------------------------
def test_layers_past_the_built_depth_reuse_the_last_layer():
    H, x = problem()
    model = perturb(load("lista_cp")(H=H, num_layers=3), 0.01)
    context, states = model._start(model, x)
    for k in [0, 1, 2, 2, 2, 2, 2]:
        states = model._step(model.layers[k], context, states)
    assert torch.equal(model(x, num_layers=7), states[0])
    history = model(x, num_layers=7, all_layers=True)
    assert len(history) == 7
    assert torch.equal(history[2], model(x))
    assert torch.equal(model(x, num_layers=7, checkpoint=True), states[0])


def test_shared_trainables_run_past_the_built_depth():
    text = """algorithm SHARED
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
train  mu : scalar shared = 0.2
layers 2:
    s <- s - mu * H.T @ (H @ s - x)
output s
"""
    H, x = problem()
    model = unfoldc.load_source(text, "shared.unf")(H=H)
    assert model._layer(5) is None
    s = torch.zeros(3, 10, dtype=F64)
    for _ in range(5):
        s = s - 0.2 * (s @ H.T - x) @ H
    torch.testing.assert_close(model(x, num_layers=5), s)
    assert len(model(x, num_layers=5, all_layers=True)) == 5


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3", 4.0])
def test_an_impossible_depth_is_a_value_error(bad):
    H, x = problem()
    model = load("lista_cp")(H=H, num_layers=3)
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        model(x, num_layers=bad)
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        model.convergence_report(num_layers=bad)


def test_a_network_built_without_layers_cannot_run_deeper():
    H, x = problem()
    model = load("lista_cp")(H=H, num_layers=0)
    assert torch.equal(model(x), torch.zeros(3, 10, dtype=F64))  # zero layers: the start
    with pytest.raises(ValueError, match="built with num_layers=0"):
        model(x, num_layers=2)


def test_the_report_covers_layers_past_the_built_depth():
    H, _ = problem()
    model = load("lista_cp")(H=H, num_layers=2)
    with torch.no_grad():
        model.layers[1].theta.fill_(-1.0)  # the last layer breaks `theta >= 0`
    report = model.convergence_report(num_layers=5)
    assert report.failing_layers == [1, 2, 3, 4]


# ---- 2. the classical layer --------------------------------------------------------------------
def test_classical_step_is_ista_whatever_the_learned_weights():
    H, x = problem()
    model = perturb(load("lista_cp")(H=H, num_layers=4), 0.5)
    mu = 1 / torch.linalg.matrix_norm(H, ord=2) ** 2
    s = torch.randn(3, 10, dtype=F64)
    torch.testing.assert_close(model.classical_step(x, s), ista_step(H, x, s, mu, 0.1 * mu))


def test_classical_step_of_a_zero_last_correction_net_is_ista():
    H, x = problem()
    model = perturb(load("ista_correction")(H=H, num_layers=2), 0.3)
    s = torch.randn(3, 10, dtype=F64)
    assert not torch.allclose(model._step(model.layers[0], model._start(model, x)[0], (s,))[0],
                              model.classical_step(x, s))  # the learned layer moved
    L = torch.linalg.matrix_norm(H, ord=2) ** 2
    torch.testing.assert_close(model.classical_step(x, s), ista_step(H, x, s, 1 / L, 0.1 / L))


def test_classical_step_of_several_states_is_a_tuple():
    H, x = problem()
    model = perturb(load("admm_lasso")(H=H, num_layers=2), 0.3)
    z, u = torch.randn(3, 10, dtype=F64), torch.randn(3, 10, dtype=F64)
    untrained = load("admm_lasso")(H=H, num_layers=2)
    want = untrained._step(untrained.layers[0], untrained._start(untrained, x)[0], (z, u))
    got = model.classical_step(x, z, u)
    assert isinstance(got, tuple) and len(got) == 2
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["lista_cp", "ista_correction"])
def test_the_classical_layer_stays_out_of_weights_and_training(name, tmp_path):
    H, x = problem()
    model = load(name)(H=H, num_layers=2)
    assert not any("classical" in key for key in model.state_dict())
    assert not any("classical" in key for key, _ in model.named_parameters())
    s = torch.randn(3, 10, dtype=F64)
    before = model.classical_step(x, s)
    fresh = load(name)(H=H, num_layers=2)
    perturb(model, 0.2)
    fresh.load_state_dict(model.state_dict())  # strict: same keys as before the classical layer
    torch.testing.assert_close(fresh.classical_step(x, s), before)
    model32 = model.float()
    assert model32.classical_step(x.float(), s.float()).dtype == torch.float32


def test_frozen_turns_parameters_into_non_persistent_buffers():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    copy = frozen(net)
    assert list(copy.parameters()) == [] and copy.state_dict() == {}
    v = torch.randn(5, 3)
    torch.testing.assert_close(copy(v), net(v))
    with torch.no_grad():
        net[0].weight.add_(1.0)
    assert not torch.allclose(copy(v), net(v))


# ---- 3. the safeguard --------------------------------------------------------------------------
def halve(k, states):
    return tuple(s / 2 for s in states)


def test_safeguard_rule_per_sample():
    s = (torch.tensor([[2.0, 0.0], [4.0, 0.0]], dtype=F64),)
    guard = Safeguard(halve, s, delta=0.1, theta=0.25)
    torch.testing.assert_close(guard.mu, torch.tensor([1.0, 2.0], dtype=F64))  # ||s - T s||
    learned = (torch.tensor([[0.2, 0.0], [40.0, 0.0]], dtype=F64),)  # good, then bad
    (out,) = guard(0, s, learned)
    torch.testing.assert_close(out, torch.tensor([[0.2, 0.0], [2.0, 0.0]], dtype=F64))
    # accepted: mu = theta R(y) + (1 - theta) mu = 0.25 * 0.1 + 0.75 * 1; rejected: unchanged
    torch.testing.assert_close(guard.mu, torch.tensor([0.775, 2.0], dtype=F64))
    assert guard.fallbacks() == [1]


def test_safeguard_never_accepts_nan_and_checks_its_constants():
    s = (torch.ones(2, 3, dtype=F64),)
    guard = Safeguard(halve, s, delta=0.5, theta=1.0)
    (out,) = guard(0, s, (torch.full((2, 3), float("nan"), dtype=F64),))
    torch.testing.assert_close(out, s[0] / 2)
    assert guard.fallbacks() == [2]
    for delta, theta in [(0.0, 0.5), (1.0, 0.5), (0.5, 0.0), (0.5, 1.5)]:
        with pytest.raises(ValueError, match="safeguard_"):
            Safeguard(halve, s, delta, theta)


def ista_solution(H, x, iterations=20000):
    mu = 1 / torch.linalg.matrix_norm(H, ord=2) ** 2
    s = torch.zeros(x.shape[0], H.shape[1], dtype=F64)
    for _ in range(iterations):
        s = ista_step(H, x, s, mu, 0.1 * mu)
    return s


def test_safeguard_rescues_bad_weights_and_reaches_the_lasso_solution():
    H, x = problem(m=10, n=8)  # a strongly convex LASSO: ISTA converges fast
    model = load("lista_cp")(H=H, num_layers=4)
    with torch.no_grad():
        for layer in model.layers:
            layer.W.mul_(3.0)  # step 3/L: the learned layers diverge
    star = ista_solution(H, x, iterations=3000)
    plain = model(x, num_layers=300)
    guarded = model(x, num_layers=300, safeguard=True)
    assert not torch.isfinite(plain).all() or (plain - star).norm() > 1e3
    assert (guarded - star).norm() < 1e-10 * star.norm()
    assert len(model.last_safeguard) == 300 and 0 < sum(model.last_safeguard) < 900


def test_safeguard_lets_good_updates_through_with_their_gradients():
    H, x = problem()
    model = load("lista_cp")(H=H, num_layers=5)
    plain = model(x).square().sum()
    plain.backward()
    want = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x, safeguard=True, safeguard_delta=1e-6).square().sum().backward()
    assert model.last_safeguard == [0] * 5  # untrained ISTA shrinks its residual every layer
    for p, g in zip(model.parameters(), want, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_rejected_updates_carry_no_gradient():
    H, x = problem()
    model = load("lista_cp")(H=H, num_layers=3)
    with torch.no_grad():
        for layer in model.layers:
            layer.W.mul_(50.0)
    model(x, safeguard=True).square().sum().backward()
    assert model.last_safeguard == [3, 3, 3]
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in model.parameters())


def test_safeguard_needs_per_sample_states():
    H, x = problem()
    model = load("fista")(H=H, num_layers=2)
    with pytest.raises(ValueError, match="per-sample states"):
        model(x, safeguard=True)


def test_fit_trains_with_the_safeguard(tmp_path):
    from unfoldc import train

    task = train.sparse_recovery(m=8, n=16, p=0.2, seed=3, val_size=16, test_size=16)
    model = load("lista_cp")(H=task.givens["A"].clone(), num_layers=3)
    result = train.fit(model, task, steps=3, batch=8, eval_every=3, safeguard=True,
                       safeguard_delta=0.2, classical_layers=0, plots=False, progress=False,
                       out=tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert config["safeguard"] is True and config["safeguard_delta"] == 0.2
    assert len(result.metrics["nmse_db"]) == 3
    assert len(model.last_safeguard) == 3  # the test metrics ran safeguarded too


def test_safeguard_with_checkpointing_and_a_learned_net():
    H, x = problem()
    model = perturb(load("ista_correction")(H=H, num_layers=3), 0.5)
    plain = model(x, num_layers=6, safeguard=True)
    counts = model.last_safeguard
    assert len(counts) == 6
    torch.testing.assert_close(model(x, num_layers=6, safeguard=True, checkpoint=True), plain)
    assert model.last_safeguard == counts
