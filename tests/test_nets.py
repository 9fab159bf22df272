"""Learned sub-networks (`net`): init, seeds, sharing, gradients, shapes and declaration errors."""

from __future__ import annotations

import functools

import pytest
import torch
from conftest import EXAMPLES

import unfoldc
from unfoldc.diagnostics import UserError

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


@functools.cache
def load(name: str) -> type:
    return unfoldc.load(EXAMPLES / f"{name}.unf")


def net_spec(decl: str, call: str = "s <- psi(s)", kind: str = "vector[7]") -> str:
    """A 3-layer network on vectors of size 7 (nets are built with the network, so their sizes
    are numbers or dimensions of givens)."""
    return (f"algorithm N\ninput z : {kind}\nstate s : {kind} = z\n{decl}\n"
            f"layers 3:\n    {call}\noutput s\n")


def build(text: str, **kw):
    cls = unfoldc.load_source(text)
    return cls(**kw).to(F64)


def errors(text: str) -> list:
    with pytest.raises(UserError) as err:
        unfoldc.load_source(text)
    return [d for d in err.value.diagnostics if d.is_error]


# ---- initialization ------------------------------------------------------------------------
def test_zero_last_mlp_contributes_zero():
    model = build(net_spec("net psi : mlp[7 -> 7](hidden = [16]) per_layer zero_last",
                           "s <- s + psi(s)"))
    z = torch.randn(4, 7, dtype=F64)
    torch.testing.assert_close(model(z=z), z, rtol=0, atol=0)
    first = model.layers[0].psi.linears[0]
    assert all(float(p.detach().abs().sum()) > 0 for p in first.parameters())


@pytest.mark.parametrize("arch", ["mlp[7 -> 7](hidden = [8])",
                                  "conv1d[7 -> 7](channels = 4, kernel = 3, depth = 2)"])
def test_residual_zero_last_is_identity(arch):
    model = build(net_spec(f"net psi : {arch} shared residual zero_last"))
    z = torch.randn(3, 7, dtype=F64)
    torch.testing.assert_close(model(z=z), z, rtol=0, atol=0)


def test_without_zero_last_the_net_is_not_zero():
    model = build(net_spec("net psi : mlp[7 -> 7](hidden = [8]) shared"))
    z = torch.randn(3, 7, dtype=F64)
    assert float(model(z=z).detach().abs().max()) > 1e-3


# ---- seeds ---------------------------------------------------------------------------------
def states(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["ista_correction", "pnp_pgd"])
def test_seed_reproduces_weights(name):
    H = torch.randn(6, 5, dtype=F64)
    a, b = states(load(name)(H=H, seed=3)), states(load(name)(H=H, seed=3))
    c = states(load(name)(H=H, seed=4))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_default_seed_is_zero():
    H = torch.randn(6, 5, dtype=F64)
    a, b = states(load("pnp_pgd")(H=H)), states(load("pnp_pgd")(H=H, seed=0))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_per_layer_nets_differ_between_layers():
    model = load("ista_correction")(H=torch.randn(6, 5, dtype=F64), num_layers=3)
    w = [layer.psi.linears[0].weight for layer in model.layers]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])


# ---- sharing -------------------------------------------------------------------------------
def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("K", [1, 4])
def test_per_layer_versus_shared_parameter_counts(K):
    n, hidden = 7, 16
    one = (n * hidden + hidden) + (hidden * n + n)
    per_layer = build(net_spec(f"net psi : mlp[7 -> 7](hidden = [{hidden}]) per_layer"),
                      num_layers=K)
    shared = build(net_spec(f"net psi : mlp[7 -> 7](hidden = [{hidden}]) shared"), num_layers=K)
    assert count(per_layer) == K * one
    assert count(shared) == one


def test_inpaint2d_parameter_count():
    model = load("inpaint2d")(M=torch.ones(8, 8, dtype=F64), num_layers=8)
    conv = (1 * 16 * 9 + 16) + (16 * 16 * 9 + 16) + (16 * 1 * 9 + 1)
    assert count(model) == conv + 8  # one shared CNN and a step size per layer


# ---- gradients -----------------------------------------------------------------------------
def test_gradcheck_through_mlp_network():
    H = torch.randn(4, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    model = load("ista_correction")(H=H, num_layers=2, seed=1).to(F64)
    with torch.no_grad():  # leave zero_last so the MLP really contributes
        for layer in model.layers:
            layer.psi.linears[-1].weight.normal_(0, 0.3)
    x = torch.randn(2, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: model(x), (x,))
    params = [p for p in model.parameters()]
    out = model(x.detach()).square().sum()
    grads = torch.autograd.grad(out, params, allow_unused=True)
    assert all(g is not None for g in grads)


def test_gradcheck_through_conv1d_network():
    text = net_spec("net psi : conv1d[7 -> 7](channels = 3, kernel = 3, depth = 2, act = tanh) "
                    "per_layer residual")
    model = build(text, seed=2)
    z = torch.randn(2, 7, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: model(z=z), (z,))
    w = model.layers[0].psi.convs[0].weight
    assert torch.autograd.gradcheck(
        lambda w_: torch.func.functional_call(model, {"layers.0.psi.convs.0.weight": w_},
                                              kwargs={"z": z.detach()}), (w.detach().clone()
                                                                          .requires_grad_(),))


def test_conv2d_on_a_batch_of_images():
    M = (torch.rand(10, 12) < 0.6).to(F64)
    model = load("inpaint2d")(M=M, num_layers=2, seed=1)
    with torch.no_grad():
        model.P.convs[-1].weight.normal_(0, 0.1)
    Y = torch.randn(5, 10, 12, dtype=F64)
    out = model(Y)
    assert out.shape == (5, 10, 12)
    one = torch.stack([model(Y[i:i + 1])[0] for i in range(5)])
    torch.testing.assert_close(out, one, rtol=1e-10, atol=1e-12)


def test_two_argument_mlp_concatenates():
    text = ("algorithm N2\ninput z : vector[4]\ninput y : vector[2]\nstate s : vector[4] = z\n"
            "net D : mlp[4, 2 -> 4](hidden = [8]) shared\nlayers 2:\n    s <- D(s, y)\n"
            "output s\n")
    model = build(text)
    z, y = torch.randn(3, 4, dtype=F64), torch.randn(3, 2, dtype=F64)
    assert model(z=z, y=y).shape == (3, 4)
    assert model.D.linears[0].in_features == 6


@pytest.mark.slow  # quick loop under 90 s (pyproject.toml)
def test_torch_compile_fullgraph_ista_correction():
    H = torch.randn(6, 5, dtype=F64, generator=torch.Generator().manual_seed(0))
    model = load("ista_correction")(H=H, num_layers=3)
    with torch.no_grad():
        for layer in model.layers:
            layer.psi.linears[-1].weight.normal_(0, 0.1)
    x = torch.randn(4, 6, dtype=F64)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-10, atol=1e-12)


# ---- declaration and call errors -----------------------------------------------------------
@pytest.mark.parametrize("decl, call, code, words", [
    ("net psi : mlp[7 -> 7](hidden = [8]) shared", "s <- psi(s, s)", "E0303", "takes 1"),
    ("net P : conv2d[7, 7 -> 7, 7](channels = 4) shared", "s <- P(s)", "E0306", "matrix"),
    ("net psi : mlp[5 -> 5](hidden = [8]) shared", "s <- psi(s)", "E0302", "vector[5]"),
    ("net psi : transformer[7 -> 7] shared", "s <- psi(s)", "E0309", "architecture"),
    ("net psi : mlp[7 -> 7](depth = 3) shared", "s <- psi(s)", "E0309", "option"),
    ("net psi : mlp[7 -> 7](act = swish) shared", "s <- psi(s)", "E0309", "activation"),
    ("net psi : mlp[7 -> 7](hidden = 8) shared", "s <- psi(s)", "E0309", "widths"),
    ("net C : conv1d[7 -> 7](kernel = 4) shared", "s <- C(s)", "E0309", "odd"),
    ("net C : conv1d[7 -> 5] shared", "s <- C(s)", "E0309", "size"),
    ("net P : conv2d[7 -> 7] shared", "s <- P(s)", "E0309", "signature"),
    ("net psi : mlp[n -> n](hidden = [8]) shared", "s <- psi(s)", "E0307", "never set"),
])
def test_net_errors(decl, call, code, words):
    diags = errors(net_spec(decl, call))
    assert code in [d.code for d in diags], [str(d) for d in diags]
    assert any(words in d.message for d in diags), [d.message for d in diags]


def test_net_sizes_from_an_input_only_are_E0307():
    """Regression: nets (and trainables) sized by an input's dimension compiled to a
    constructor that raised NameError; the size is unknown when the network is built."""
    text = ("algorithm N\ninput z : vector[n]\nstate s : vector[n] = z\n"
            "net psi : mlp[n -> n](hidden = [8]) shared\ntrain w : vector[n] shared = 1\n"
            "layers 2:\n    s <- w * psi(s)\noutput s\n")
    diags = errors(text)
    assert [d.code for d in diags] == ["E0307", "E0307"]
    assert "given" in diags[0].help and "built with the network" in diags[0].message


def test_net_sized_by_a_given_builds():
    text = ("algorithm N\ngiven H : matrix[m, n]\ninput z : vector[n]\nstate s : vector[n] = z\n"
            "net psi : mlp[n -> n](hidden = [8]) shared\nlayers 2:\n    s <- psi(s)\n"
            "output s\n")
    model = build(text, H=torch.randn(4, 3, dtype=F64))
    assert model(z=torch.randn(2, 3, dtype=F64)).shape == (2, 3)
    diags = errors(text.replace("mlp[n -> n]", "mlp[m -> m]"))
    assert [d.code for d in diags] == ["E0302"]
