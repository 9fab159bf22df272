"""Soundness of the analytic layer bounds: the measured Lipschitz constant of each layer map
(exact Jacobian by autograd, and difference quotients of random pairs) never exceeds the bound
the generated `convergence_report()` computes, at initialization and after random parameter
perturbations. The layer map is obtained by recompiling each example with its states' initial
values turned into inputs and running one layer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import unfoldc

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


pytestmark = pytest.mark.usefixtures("one_thread")
SCHEDULES = {"t"}  # FISTA's momentum scalar: a per-layer constant, not a state of the map


def layer_map_spec(name: str) -> tuple[str, list[str]]:
    """The example with each (non-schedule) state's initial value read from an input."""
    text = (EXAMPLES / f"{name}.unf").read_text()
    states = []

    def repl(m):
        state, typ = m.group(1), m.group(2).strip()
        if state in SCHEDULES:
            return m.group(0)
        states.append(state)
        return f"input {state}_0 : {typ}\nstate {state} : {typ} = {state}_0"

    text = re.sub(r"^state\s+(\w+)\s*:\s*([^=]+?)\s*=\s*[^#\n]+", repl, text, flags=re.M)
    text = re.sub(r"^output .*$", "output " + ", ".join(states), text, flags=re.M)
    return text, states


def build(name: str, seed: int, perturb: float):
    text, states = layer_map_spec(name)
    cls = unfoldc.load_source(text, name=f"{name}.unf")
    g = torch.Generator().manual_seed(seed)
    kw = {}
    if cls.GIVENS:
        kw["H"] = torch.randn(6, 10, generator=g, dtype=torch.float64) / 3
    model = cls(**kw).double() if not kw else cls(**kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(perturb * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model, states, g


def layer_fn(model, states, x):
    def f(flat):
        parts, i = [], 0
        for s in states:
            shape = STATE_SHAPES[(type(model).__name__, s)]
            size = int(torch.tensor(shape).prod())
            parts.append(flat[i:i + size].reshape(1, *shape))
            i += size
        args = ([x] if x is not None else []) + parts
        out = model(*args, num_layers=1)
        out = out if isinstance(out, tuple) else (out,)
        return torch.cat([o.reshape(-1) for o in out])
    return f


STATE_SHAPES = {}


def state_shapes(model, states, name):
    m, n = (6, 10) if model.GIVENS else (4, 5)
    for s in states:
        STATE_SHAPES[(type(model).__name__, s)] = (n,) if name != "rpca" else (m, n)
    return sum(int(torch.tensor(STATE_SHAPES[(type(model).__name__, s)]).prod())
               for s in states)


@pytest.mark.parametrize("name", ["ista", "lista", "lista_cp", "fista", "admm_lasso", "rpca"])
@pytest.mark.parametrize("seed,perturb", [(0, 0.0), (1, 0.3), (2, 1.0)])
def test_measured_lipschitz_never_exceeds_the_bound(name, seed, perturb):
    torch.set_default_dtype(torch.float64)
    try:
        model, states, g = build(name, seed, perturb)
        report = model.convergence_report()
        bound = next(c for c in report.conditions if c.kind == "lipschitz").lhs[0]
        size = state_shapes(model, states, name)
        x = None
        if model.INPUTS[0] in ("x", "Y"):
            shape = (1, 6) if name != "rpca" else (1, 4, 5)
            x = torch.randn(shape, generator=g)
        f = layer_fn(model, states, x)
        for _ in range(4):
            a = torch.randn(size, generator=g)
            jac = torch.autograd.functional.jacobian(f, a)
            measured = torch.linalg.matrix_norm(jac, ord=2).item()
            assert measured <= bound * (1 + 1e-9) + 1e-12, (measured, bound)
            b = a + 0.1 * torch.randn(size, generator=g)
            quotient = (torch.linalg.vector_norm(f(a) - f(b)) /
                        torch.linalg.vector_norm(a - b)).item()
            assert quotient <= bound * (1 + 1e-9) + 1e-12, (quotient, bound)
    finally:
        torch.set_default_dtype(torch.float32)


def test_the_bound_is_tight_for_ista_on_the_linear_region():
    """Where no entry is thresholded, ISTA's layer is exactly I - mu H^T H."""
    torch.set_default_dtype(torch.float64)
    try:
        model, states, g = build("ista", 3, 0.0)
        for layer in model.layers:
            layer.rho_raw.data.zero_()  # threshold 0: the layer is affine
        bound = next(c for c in model.convergence_report().conditions
                     if c.kind == "lipschitz").lhs[0]
        state_shapes(model, states, "ista")
        f = layer_fn(model, states, torch.randn(1, 6, generator=g))
        jac = torch.autograd.functional.jacobian(f, torch.randn(10, generator=g))
        assert torch.linalg.matrix_norm(jac, ord=2).item() == pytest.approx(bound, rel=1e-9)
    finally:
        torch.set_default_dtype(torch.float32)
