"""The generated module as text (goldens, determinism, imports, comments) and as a contract
(dtype/device, batching, per-layer trainables, constraints, fixed params); regression tests for
code generation bugs are named after the bug."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest
import torch
from conftest import EXAMPLES, ROOT
from reference_loops import ista

import unfoldc
from unfoldc.graphs.render import render
from unfoldc.ir.interpreter import run as interpret

NAMES = ("ista", "lista", "lista_cp", "fista", "admm_lasso", "rpca", "dugd", "sinkhorn", "lamp")
F64 = torch.float64


def code_of(name: str) -> str:
    return unfoldc.compile(EXAMPLES / f"{name}.unf").code


# ---- text ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_module_golden(name, golden):
    golden(f"modules/{name}.py.txt", code_of(name))


def test_compiling_twice_gives_identical_text():
    assert [code_of(n) for n in NAMES] == [code_of(n) for n in NAMES]


@pytest.mark.slow  # quick loop under 90 s (pyproject.toml)
def test_output_does_not_depend_on_the_hash_seed():
    script = ("import sys, unfoldc\nfrom unfoldc.graphs.render import render\n"
              "for n in sys.argv[1:]:\n"
              "    a = unfoldc.compile(f'examples/{n}.unf')\n"
              "    sys.stdout.write(a.code + render(a.graph(), 'text')"
              " + render(a.graph(unroll=2), 'json'))\n")
    outputs = []
    for seed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, "-c", script, *NAMES], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=True)
        outputs.append(done.stdout)
    here = ""
    for n in NAMES:
        a = unfoldc.compile(EXAMPLES / f"{n}.unf")
        here += a.code + render(a.graph(), "text") + render(a.graph(unroll=2), "json")
    assert outputs[0] == outputs[1] == here


ALL_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.unf"))


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_generated_module_is_lint_clean(name, tmp_path):
    """No unused names, undefined names or style faults (pyflakes and pycodestyle via ruff).

    Long lines are allowed: origin comments quote the spec's own lines verbatim.
    """
    path = tmp_path / f"{name}.py"
    path.write_text(code_of(name))
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache",
                           "--select", "F,E,W", "--ignore", "E501", "--output-format",
                           "concise", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", NAMES)
def test_imports_only_torch_and_the_standard_library(name):
    roots = set()
    for node in ast.walk(ast.parse(code_of(name))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            roots.add(node.module.split(".")[0])
    assert "torch" in roots
    assert roots - {"torch"} <= set(sys.stdlib_module_names)


@pytest.mark.parametrize("name", NAMES)
def test_origin_comment_on_every_update(name):
    art = unfoldc.compile(EXAMPLES / f"{name}.unf")
    lines = art.code.splitlines()
    for a in art.optimized.body:
        tag = f"# {name}.unf:{a.line}: "
        assert any(line.strip().startswith(tag) for line in lines), tag
    assert all(str(ROOT) not in line for line in lines)  # no absolute paths


@pytest.mark.parametrize("name, hoisted", [("ista", True), ("fista", True),
                                           ("admm_lasso", True), ("rpca", False)])
def test_labelled_hoisted_block_where_hoisting_applied(name, hoisted):
    code = code_of(name)
    label = "# -- loop-invariant work, hoisted out of the layer loop --"
    assert (label in code) is hoisted
    if hoisted:  # the block sits in _start (once per call), before the layer map _step
        start = code.index("    def _start(")
        assert start < code.index(label) < code.index("    def _step(")


# ---- the module contract -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["ista", "lista", "admm_lasso"])
def test_dtype_follows_the_givens(name, dtype):
    H = torch.randn(5, 3, dtype=dtype)
    model = unfoldc.load(EXAMPLES / f"{name}.unf")(H=H, num_layers=2)
    assert {p.dtype for p in model.parameters()} == {dtype}
    assert {b.dtype for b in model.buffers()} == {dtype}
    assert model(torch.randn(2, 5, dtype=dtype)).dtype == dtype


@pytest.mark.parametrize("batch", [1, 4])
def test_batched_shapes(batch):
    H = torch.randn(5, 3, dtype=F64)
    model = unfoldc.load(EXAMPLES / "ista.unf")(H=H, num_layers=2)
    x = torch.randn(batch, 5, dtype=F64)
    out = model(x)
    assert out.shape == (batch, 3)
    for b in range(batch):  # each sample is computed on its own
        torch.testing.assert_close(model(x[b:b + 1])[0], out[b])


def test_per_layer_trainables_live_in_layers_and_freeze_per_layer():
    H = torch.randn(5, 3, dtype=F64)
    model = unfoldc.load(EXAMPLES / "ista.unf")(H=H, num_layers=3)
    assert len(model.layers) == 3
    assert {n for n, _ in model.layers[1].named_parameters()} == {"mu_log", "rho_raw"}
    assert "layers.2.mu_log" in model.state_dict()
    model.layers[0].requires_grad_(False)
    model(torch.randn(2, 5, dtype=F64)).square().sum().backward()
    assert all(p.grad is None for p in model.layers[0].parameters())
    assert all(p.grad is not None for p in model.layers[1].parameters())


def test_constrained_trainables_equal_their_initial_values_exactly():
    H = torch.randn(5, 3, dtype=F64)
    model = unfoldc.load(EXAMPLES / "ista.unf")(H=H, num_layers=2)
    mu0 = 1 / torch.linalg.matrix_norm(H, ord=2) ** 2
    for layer in model.layers:
        assert torch.equal(layer.mu, mu0)
        assert torch.equal(layer.rho, torch.tensor(0.1, dtype=F64))
    rpca = unfoldc.load(EXAMPLES / "rpca.unf")(num_layers=2)
    assert torch.equal(rpca.layers[1].lam2, torch.tensor(0.05))


CONSTRAINED = """algorithm C
given H : matrix[m, n]
input x : vector[m]
state s : vector[n] = 0
param p : scalar = 0.5
train a : scalar per_layer = p positive
train b : vector[n] shared = 0.25 nonneg
train c : scalar per_layer = 0.3 in [-1, 2 * p]
train d : scalar shared = 0.7 in [0.1, 0.9]
layers 3:
    s <- soft(s + a * H.T @ x - b * s, c) * d
output s
"""


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_constraints_hold_exactly_at_init_and_after_large_raw_values(dtype):
    cls = unfoldc.load_source(CONSTRAINED, "constrained.unf")
    model = cls(H=torch.randn(4, 3, dtype=dtype), num_layers=3)
    t = lambda v: torch.tensor(v, dtype=dtype)  # noqa: E731
    for layer in model.layers:
        assert torch.equal(layer.a, t(0.5)) and torch.equal(layer.c, t(0.3))
    assert torch.equal(model.b, t(0.25).expand(3)) and torch.equal(model.d, t(0.7))
    g = torch.Generator().manual_seed(0)
    for scale in (10.0, 1e3, 1e6):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(scale * torch.randn(p.shape, generator=g, dtype=dtype))
        for layer in model.layers:
            assert bool(layer.a > 0)
            assert bool((layer.c >= -1) & (layer.c <= 1))
        assert bool((model.b >= 0).all()) and bool((model.d >= 0.1) & (model.d <= 0.9))


def test_positive_initial_value_not_positive_raises():
    cls = unfoldc.load_source(CONSTRAINED, "constrained.unf")
    for bad in (0.0, -0.5):
        with pytest.raises(ValueError, match=r"constrained.unf:6: .*`a` must be positive"):
            cls(H=torch.randn(4, 3), p=bad)


def test_nonneg_initial_value_negative_raises():
    """Bug: a negative initial value of a `nonneg` trainable silently became its absolute
    value (the check was missing)."""
    cls = unfoldc.load_source(CONSTRAINED.replace("= 0.25 nonneg", "= -0.25 nonneg"), "c.unf")
    with pytest.raises(ValueError, match="`b` must be nonnegative"):
        cls(H=torch.randn(4, 3))


def test_interval_initial_value_outside_raises():
    cls = unfoldc.load_source(CONSTRAINED, "constrained.unf")
    with pytest.raises(ValueError, match="`c` must be in"):
        cls(H=torch.randn(4, 3), p=0.1)  # c = 0.3 > 2 * p


def test_per_layer_interval_trainable_builds_and_runs():
    """Bug: per-layer interval trainables read bounds their layer module never stored."""
    cls = unfoldc.load_source(CONSTRAINED, "constrained.unf")
    model = cls(H=torch.randn(4, 3, dtype=F64))
    assert {"c_lo", "c_hi"} <= {n for n, _ in model.layers[0].named_buffers()}
    x = torch.randn(2, 4, dtype=F64)
    art = cls.artifacts
    want = interpret(art.program, {"H": model.H}, {"x": x})
    torch.testing.assert_close(model(x), want)


def test_fixed_params_are_keyword_overridable():
    H = torch.randn(5, 3, dtype=F64)
    cls = unfoldc.load(EXAMPLES / "admm_lasso.unf")
    assert cls.PARAMS == ("rho",)
    assert float(cls(H=H).rho) == 0.1 and float(cls(H=H, rho=0.3).rho) == 0.3


# ---- regression tests for code generation bugs -------------------------------------------------
def _check(src: str, batch: int = 2, **build):
    """Compile `src`, run it, compare with the IR interpreter on the unoptimized program."""
    cls = unfoldc.load_source(src, "regression.unf")
    H = torch.randn(4, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    x = torch.randn(batch, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
    out = cls(H=H, **build)(x)
    want = interpret(cls.artifacts.program, {"H": H}, {"x": x}, params=build)
    torch.testing.assert_close(out, want)
    return cls


HEAD = """algorithm R
given H : matrix[m, n]
input x : vector[m]
state s : vector[n] = 0
"""


def test_reductions_of_a_scalar():
    """Bug: `sum`, `norm2`, `max` of a scalar printed `{x}.sum(dim={ax})(c)`."""
    _check(HEAD + "param c : scalar = -2\nlayers 2:\n"
           "  s <- s + sum(c) + norm2(c) + norm1(c) + sqnorm(c) + max(c) + mean(-c)\noutput s\n")


def test_dimensions_named_like_generated_locals():
    """Bug: `eye(K)`/`ones(B)` printed the dimension's spec name, not its renamed local, so a
    dimension `K` read the layer count and `B` the batch size."""
    src = """algorithm R
given H : matrix[K, B]
input x : vector[K]
state s : vector[B] = 0
layers 2:
  s <- eye(B) @ s + H.T @ x + ones(B) * sum(zeros(K))
output s
"""
    cls = unfoldc.load_source(src, "dims.unf")
    H, x = torch.randn(4, 3, dtype=F64), torch.randn(2, 4, dtype=F64)
    torch.testing.assert_close(cls(H=H)(x), interpret(cls.artifacts.program, {"H": H}, {"x": x}))


def test_scalar_update_of_a_vector_state_fills_it():
    """Bug: `s <- <batched scalar>` made `s` a (B,) tensor; and `[:, None]` was appended to an
    unparenthesized sum when filling (`a + t0[:, None]`)."""
    _check(HEAD + "layers 2:\n  s <- 0.5 * sum(s) + sum(x)\noutput s\n")
    _check(HEAD.replace("= 0", "= sum(x) + 1") + "layers 2:\n  s <- s * 0.5\noutput s\n")


def test_unbatched_update_of_a_batched_state_keeps_the_batch():
    _check(HEAD.replace("= 0", "= H.T @ x") + "layers 2:\n  s <- H.T @ ones(m)\noutput s\n",
           batch=3)


def test_canonicalize_keeps_types_with_a_per_sample_scalar_factor():
    """Bug: `(c * A) @ B` -> `c * (A @ B)` gave `A @ B` the batched type of `c`: lint failed."""
    _check(HEAD + "layers 2:\n  s <- s + 0.01 * ((dot(x, x) * H.T) @ H) @ s + H.T @ x\n"
           "output s\n")


def test_proj_l2ball_with_a_per_sample_radius():
    """Bug: the radius (B,) was indexed [:, None] by the printer and again by the helper:
    the result was (B, B, n)."""
    _check(HEAD + "layers 2:\n  s <- proj_l2ball(s + H.T @ x, 0.1 * norm2(x))\noutput s\n")


def test_interval_helper_stays_within_bounds_where_tanh_saturates():
    """Bug: init + (hi - init) * tanh(raw) rounded one ulp past hi for saturated tanh."""
    cls = unfoldc.load_source(CONSTRAINED, "constrained.unf")
    namespace = sys.modules[cls.__module__].__dict__
    interval = namespace["interval"]
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        lo, hi = torch.sort(torch.randn(2, 2000, generator=g, dtype=dtype), dim=0).values
        init = lo + (hi - lo) * torch.rand(2000, generator=g, dtype=dtype)
        for raw in (50.0, -50.0):
            v = interval(torch.full_like(init, raw), init, lo, hi)
            assert bool(((v >= lo) & (v <= hi)).all())


def test_positive_stays_positive_where_exp_underflows():
    cls = unfoldc.load_source(CONSTRAINED, "constrained.unf")
    positive = sys.modules[cls.__module__].__dict__["positive"]
    for dtype in (torch.float32, torch.float64):
        assert bool(positive(torch.tensor(-1e4, dtype=dtype), torch.tensor(0.5, dtype=dtype)) > 0)


def test_ista_reference_sanity_through_the_loader():
    H, x = torch.randn(5, 3, dtype=F64), torch.randn(2, 5, dtype=F64)
    model = unfoldc.load(EXAMPLES / "ista.unf")(H=H, num_layers=3)
    torch.testing.assert_close(model(x), ista(H, x, 3))


def test_spec_without_givens_takes_dtype_and_device():
    """Regression: rpca (no givens) created its parameters in float32, so 0.05 was rounded."""
    rpca = unfoldc.load(EXAMPLES / "rpca.unf")
    model = rpca(dtype=torch.float64, device="cpu")
    assert model.layers[0].lam2.dtype == torch.float64
    assert model.layers[0].lam2.item() == 0.05
    assert rpca().layers[0].lam2.dtype == torch.get_default_dtype()


def test_input_of_the_wrong_size_fails_with_spec_names():
    ista = unfoldc.load(EXAMPLES / "ista.unf")(H=torch.randn(5, 8))
    with pytest.raises(ValueError, match=r"`x` must be \(B, m\) = \(B, 5\), got \(2, 6\)"):
        ista(torch.randn(2, 6))


def test_support_selection_matches_the_interpreter():
    """`soft_ss`: torch.quantile in the module, sorted order statistics in the interpreter."""
    cls = unfoldc.load(EXAMPLES / "lista_cpss.unf")
    g = torch.Generator().manual_seed(3)
    H, x = torch.randn(6, 9, dtype=F64, generator=g), torch.randn(3, 6, dtype=F64, generator=g)
    for step, cap in ((0.0, 0.0), (0.3, 0.3), (0.25, 0.75)):
        got = cls(H=H, p_step=step, p_max=cap, num_layers=4)(x)
        want = interpret(cls.artifacts.program, {"H": H}, {"x": x},
                         params={"p_step": step, "p_max": cap}, num_layers=4)
        torch.testing.assert_close(got, want)
