"""Layer bounds through learned sub-networks: `net` calls are bounded by the product of their
weights' spectral norms times the activation's constant per hidden layer (+1 for a residual's
first argument). With randomized net weights the measured Lipschitz constant of a layer map
(exact Jacobians at random points) never exceeds the bound `convergence_report()` computes;
untrained, a zero-last correction adds nothing and a zero-last residual net is the identity."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import unfoldc

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.usefixtures("one_thread")


def layer_map_class(name: str):
    """The example with its state's initial value read from an extra input `<state>_0`."""
    text = (EXAMPLES / f"{name}.unf").read_text()
    text = re.sub(r"^state\s+(\w+)\s*:\s*([^=]+?)\s*=\s*[^#\n]+",
                  lambda m: f"input {m[1]}_0 : {m[2].strip()}\nstate {m[1]} : {m[2].strip()}"
                            f" = {m[1]}_0", text, flags=re.M)
    return unfoldc.load_source(text, name=f"{name}.unf")


def randomize_nets(model, g, scale):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".psi." in name or ".D." in name or name.startswith("P.") or ".P." in name:
                p.copy_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64))


def lipschitz_bound(model, layer=0) -> float:
    report = model.convergence_report(num_layers=layer + 1)
    (c,) = [c for c in report.conditions if c.kind == "lipschitz"]
    return c.lhs[layer]


def measured(model, extra, shape, g, points=6) -> float:
    """max over random points of ||J||_2 of one layer w.r.t. the state (exact Jacobian)."""
    size = int(torch.tensor(shape).prod())

    def f(flat):
        return model(*extra, flat.reshape(1, *shape), num_layers=1).reshape(-1)

    best = 0.0
    for _ in range(points):
        s0 = torch.randn(size, generator=g, dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(f, s0)
        best = max(best, float(torch.linalg.matrix_norm(jac, ord=2)))
    return best


def vector_case(name, seed):
    g = torch.Generator().manual_seed(seed)
    H = torch.randn(6, 10, generator=g, dtype=torch.float64) / 3
    model = layer_map_class(name)(H=H).double()
    x = torch.randn(1, 6, generator=g, dtype=torch.float64)
    return model, (x,), (10,), g


@pytest.mark.parametrize("name", ["ista_correction", "pnp_pgd"])
@pytest.mark.parametrize("seed,scale", [(0, 0.3), (1, 0.6), (2, 1.0)])
def test_measured_lipschitz_never_exceeds_the_net_bound(name, seed, scale):
    model, extra, shape, g = vector_case(name, seed)
    randomize_nets(model, g, scale)
    bound = lipschitz_bound(model)
    got = measured(model, extra, shape, g)
    assert 0 < got <= bound * (1 + 1e-9), (got, bound)


@pytest.mark.parametrize("seed", [0, 1])
def test_measured_lipschitz_never_exceeds_the_conv_bound(seed):
    g = torch.Generator().manual_seed(seed)
    M = (torch.rand(5, 6, generator=g) < 0.6).double()
    model = layer_map_class("inpaint2d")(M=M).double()
    randomize_nets(model, g, 0.4)
    Y = torch.randn(1, 5, 6, generator=g, dtype=torch.float64)
    bound = lipschitz_bound(model)
    got = measured(model, (Y,), (5, 6), g)
    assert 0 < got <= bound * (1 + 1e-9), (got, bound)


def test_untrained_pnp_pgd_has_the_bound_of_gradient_descent():
    H = torch.randn(6, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    pnp = unfoldc.load(EXAMPLES / "pnp_pgd.unf")(H=H)
    gd = unfoldc.load(EXAMPLES / "gd_steps.unf")(H=H)
    (a,) = [c for c in pnp.convergence_report().conditions if c.kind == "lipschitz"]
    (b,) = [c for c in gd.convergence_report().conditions if c.kind == "lipschitz"]
    assert a.lhs == pytest.approx(b.lhs, rel=1e-12)
    assert "Lip(D)" in a.text


def test_an_untrained_correction_adds_nothing():
    H = torch.randn(6, 10, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    model = unfoldc.load(EXAMPLES / "ista_correction.unf")(H=H)
    (c,) = [c for c in model.convergence_report().conditions if c.kind == "lipschitz"]
    for k, layer in enumerate(model.layers):
        gram = torch.eye(10, dtype=torch.float64) - layer.mu.detach() * H.T @ H
        assert c.lhs[k] == pytest.approx(float(torch.linalg.matrix_norm(gram, ord=2)), rel=1e-9)
    randomize_nets(model, torch.Generator().manual_seed(5), 0.3)
    (d,) = [c for c in model.convergence_report().conditions if c.kind == "lipschitz"]
    assert all(after > before for after, before in zip(d.lhs, c.lhs))


def test_the_conditions_name_the_net_bound():
    code = unfoldc.compile(EXAMPLES / "ista_correction.unf").code
    assert "lipschitz: ||I - mu * (H.T @ H)|| + Lip(psi) < 1" in code
    assert "net_lipschitz(psi, 0, 1)" in code
