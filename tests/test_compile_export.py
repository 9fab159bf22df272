"""Generated modules under `torch.compile(fullgraph=True)` and `torch.export`.

Most checks use the `eager` / `aot_eager` backends (dynamo tracing and AOT autograd without code
generation, seconds per model); one test runs the real inductor backend on ISTA. Sizes and
layer counts are small to keep CPU compile times low.
"""

from __future__ import annotations

import functools

import pytest
import torch
from conftest import EXAMPLES

import unfoldc

NAMES = ("ista", "lista", "lista_cp", "lista_cpss", "fista", "admm_lasso", "rpca")


@functools.cache
def load(name):
    return unfoldc.load(EXAMPLES / f"{name}.unf")


def build(name, K=2, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    if name == "rpca":
        return load(name)(num_layers=K), (torch.randn(2, 4, 3, generator=g, dtype=dtype),)
    H = torch.randn(5, 3, generator=g, dtype=dtype)
    return load(name)(H=H, num_layers=K), (torch.randn(2, 5, generator=g, dtype=dtype),)


def assert_same(got, want, tol):
    got = tuple(got) if isinstance(got, tuple) else (got,)
    want = tuple(want) if isinstance(want, tuple) else (want,)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, **tol)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# ISTA in the quick loop; the others are `slow` (a dynamo trace each).
@pytest.mark.parametrize("name", [n if n == "ista" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in NAMES])
def test_compile_fullgraph_matches_eager(name):
    model, args = build(name)
    backend = "aot_eager" if name in ("ista", "admm_lasso") else "eager"
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    assert_same(compiled(*args), model(*args), {"rtol": 1e-5, "atol": 1e-6})
    hist = compiled(*args, all_layers=True)
    assert len(hist) == 2
    assert_same(hist[-1], model(*args), {"rtol": 1e-5, "atol": 1e-6})


def test_compile_fullgraph_backward():
    model, (x,) = build("ista", dtype=torch.float64)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    compiled(x).square().sum().backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).square().sum().backward()
    for a, b in zip(got, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(a, b)


@pytest.mark.slow  # quick loop under 90 s (pyproject.toml)
def test_inductor_ista():
    model, args = build("ista", K=1)  # inductor compiles C++ kernels: the slowest test here
    compiled = torch.compile(model, fullgraph=True)
    assert_same(compiled(*args), model(*args), {"rtol": 1e-4, "atol": 1e-5})


@pytest.mark.parametrize("name", ["ista", "lista_cpss"])  # lista_cpss: sort and gather inside
def test_export(name):
    model, (x,) = build(name, K=3)
    exported = torch.export.export(model, (x,))
    assert_same(exported.module()(x), model(x), {"rtol": 1e-6, "atol": 1e-6})
    other = torch.randn(2, 5)
    assert_same(exported.module()(other), model(other), {"rtol": 1e-6, "atol": 1e-6})


def test_export_admm_lasso():
    model, (x,) = build("admm_lasso", K=2)
    exported = torch.export.export(model, (x,))
    assert_same(exported.module()(x), model(x), {"rtol": 1e-5, "atol": 1e-6})
