"""Issue 12's constructs end to end: comparisons as 0/1 masks, `where`, `outer`, `diag`,
`trace`, `pi`, `logsumexp` / `logsumexp_rows`, vector bounds of `proj_box` / `clamp`, and the
examples built on them (log-domain Sinkhorn, learned AMP).

Each is checked against the IR interpreter and a NumPy float64 loop (tests/reference_loops.py),
for gradients, under `torch.compile(fullgraph=True)`, in the iteration graph and in the
convergence report (a mask or a selection is not analyzed: uncertified, never certified).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from conftest import EXAMPLES
from reference_loops import lamp, sinkhorn_log

import unfoldc
from unfoldc.ir.interpreter import run as interpret

F64 = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-12}

pytestmark = pytest.mark.usefixtures("one_thread")


@functools.cache
def load(name: str) -> type:
    return unfoldc.load(EXAMPLES / f"{name}.unf")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def transport_problem(m: int, n: int, batch: int, seed: int = 0):
    """A cost in [0, 1] and positive histograms summing to 1."""
    g = _gen(seed)
    C = torch.rand(m, n, generator=g, dtype=F64)
    a = torch.rand(batch, m, generator=g, dtype=F64) + 0.1
    b = torch.rand(batch, n, generator=g, dtype=F64) + 0.1
    return C, a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True)


def sparse_problem(m: int = 12, n: int = 24, batch: int = 3, seed: int = 0):
    g = _gen(seed)
    A = torch.randn(m, n, generator=g, dtype=F64) / m ** 0.5
    x0 = torch.zeros(batch, n, dtype=F64)
    x0[:, :3] = torch.randn(batch, 3, generator=g, dtype=F64)
    return A, x0, x0 @ A.T + 0.01 * torch.randn(batch, m, generator=g, dtype=F64)


def assert_all_close(got, want, tol=TOL):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, **tol)


# ---- log-domain Sinkhorn ------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("K", [1, 3])
def test_sinkhorn_equals_the_numpy_loop_and_the_interpreter(batch, K):
    C, a, b = transport_problem(6, 4, batch)
    model = load("sinkhorn")(C=C, num_layers=K, epsilon=0.05)
    got = model(a, b)
    assert_all_close(got, sinkhorn_log(C, a, b, K, eps=0.05))
    program = load("sinkhorn").artifacts.program
    assert_all_close(got, interpret(program, {"C": C}, {"a": a, "b": b}, K,
                                    params={"epsilon": 0.05}))


def test_sinkhorn_with_eps_1e_3_on_a_50_by_50_cost_is_stable():
    """The Gibbs kernel exp(-C / 1e-3) underflows to 0 above C = 0.745; the log-domain
    iteration never forms it and stays finite (in float32 too), its plan has the target
    marginals exactly after every layer, and the source marginals approach a."""
    C, a, b = transport_problem(50, 50, 2, seed=1)
    assert (torch.exp(-C / 1e-3) == 0).any()
    P32, _, _ = load("sinkhorn")(C=C.float(), num_layers=30)(a.float(), b.float())
    assert torch.isfinite(P32).all()
    model = load("sinkhorn")(C=C, num_layers=30)
    assert float(model.epsilon) == 1e-3
    history = model(a, b, all_layers=True)
    for P, f, g in history:
        assert torch.isfinite(P).all() and torch.isfinite(f).all() and torch.isfinite(g).all()
        torch.testing.assert_close(P.sum(-2), b, rtol=0, atol=1e-12)
    row_error = [float((P.sum(-1) - a).abs().max()) for P, _, _ in history]
    assert row_error[-1] < row_error[0]
    assert_all_close(history[-1], sinkhorn_log(C, a, b, 30, eps=1e-3), {"rtol": 1e-9,
                                                                         "atol": 1e-12})


def test_sinkhorn_plan_is_writable_as_outer_u_v_times_the_kernel():
    """The classical scaling form `outer(u, v) * K` equals the log-domain plan where the
    kernel does not underflow (eps = 0.1)."""
    spec = """algorithm SinkhornScaling
given  C : matrix[m, n]
input  a : vector[m]
input  b : vector[n]
let    K = exp(-C / 0.1)
state  u : vector[m] = 1
state  v : vector[n] = 1
state  P : matrix[m, n] = 0
layers 20:
    u <- a / (K @ v)
    v <- b / (K.T @ u)
    P <- outer(u, v) * K
output P
"""
    C, a, b = transport_problem(7, 5, 2)
    P = unfoldc.load_source(spec, name="scaling.unf")(C=C)(a, b)
    P_log, _, _ = load("sinkhorn")(C=C, num_layers=20, epsilon=0.1)(a, b)
    torch.testing.assert_close(P, P_log, rtol=1e-9, atol=1e-13)


def test_sinkhorn_gradients_and_compile():
    C, a, b = transport_problem(5, 4, 2)
    model = load("sinkhorn")(C=C, num_layers=3, epsilon=0.2)
    a = a.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: model(a, b)[0], (a,))
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    assert_all_close(compiled(a.detach(), b), model(a.detach(), b))
    torch._dynamo.reset()


# ---- learned AMP --------------------------------------------------------------------------------
@pytest.mark.parametrize("K", [1, 4])
def test_lamp_equals_the_numpy_loop_and_the_interpreter(K):
    A, _, y = sparse_problem()
    model = load("lamp")(A=A, num_layers=K)
    got = model(y)
    torch.testing.assert_close(got, lamp(A, y, K), **TOL)
    program = load("lamp").artifacts.program
    torch.testing.assert_close(got, interpret(program, {"A": A}, {"y": y}, K), **TOL)


def test_lamp_with_learned_parameters_equals_the_loop():
    A, _, y = sparse_problem(seed=2)
    K = 3
    model = load("lamp")(A=A, num_layers=K)
    g = _gen(5)
    B = A.T + 0.05 * torch.randn(A.shape[1], A.shape[0], generator=g, dtype=F64)
    alphas = [0.8, 1.3, 1.0]
    with torch.no_grad():
        model.B_.copy_(B)
        for layer, alpha in zip(model.layers, alphas):
            layer.alpha_raw.fill_(alpha)
    torch.testing.assert_close(model(y), lamp(A, y, K, B=B, alpha=alphas), **TOL)


def test_lamp_recovers_a_sparse_vector_and_its_onsager_term_matters():
    A, x0, y = sparse_problem(m=40, n=80, batch=2, seed=3)
    model = load("lamp")(A=A, num_layers=10)
    error = float((model(y) - x0).detach().norm() / x0.norm())
    assert error < 0.1
    # Without the Onsager correction (plain iterative thresholding, same thresholds) it is worse.
    text = (EXAMPLES / "lamp.unf").read_text("utf-8").replace(
        " + z * mean(abs(r) > tau) / delta", "")
    no_onsager = unfoldc.load_source(text.replace("let    delta = m / n", ""), name="ist.unf")
    worse = float((no_onsager(A=A, num_layers=10)(y) - x0).detach().norm() / x0.norm())
    assert worse > 2 * error


def test_lamp_gradients_flow_through_the_threshold_but_not_the_mask():
    A, _, y = sparse_problem(m=6, n=10, batch=2, seed=4)
    model = load("lamp")(A=A, num_layers=2)
    assert torch.autograd.gradcheck(lambda B: torch.func.functional_call(
        model, {"B_": B}, (y,)), (model.B_.detach().clone().requires_grad_(True),))
    model(y).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_lamp_compiles_fullgraph():
    A, _, y = sparse_problem()
    model = load("lamp")(A=A, num_layers=2).float()
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(y.float()), model(y.float()))
    torch._dynamo.reset()


@pytest.mark.parametrize("name", ["lamp", "sinkhorn"])
def test_masks_and_log_sum_exps_are_uncertified_never_certified(name):
    art = load(name).artifacts
    assert "Theorems that can certify it: none (uncertified)." in " ".join(
        load(name).__doc__.split())
    problem = {"lamp": lambda: {"A": sparse_problem()[0]},
               "sinkhorn": lambda: {"C": transport_problem(4, 3, 1)[0]}}[name]()
    report = load(name)(**problem).convergence_report()
    assert report.verdict == "uncertified" and not report.ok
    assert art.graph().number_of_nodes() > 0


# ---- masks and where ----------------------------------------------------------------------------
MASKED = """algorithm Masked
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
layers 4:
    g = H.T @ (H @ s - x)
    s <- s - 0.1 * g * (s >= 0) - 0.05 * where(abs(g) > 0.5, g, 0)
output s
"""


def test_masks_and_where_equal_numpy_and_the_interpreter():
    g = _gen(1)
    H = torch.randn(5, 4, generator=g, dtype=F64)
    x = torch.randn(3, 5, generator=g, dtype=F64)
    cls = unfoldc.load_source(MASKED, name="masked.unf")
    got = cls(H=H)(x)
    Hn, xn = H.numpy(), x.numpy()
    want = np.zeros((3, 4))
    for b in range(3):
        s = np.zeros(4)
        for _ in range(4):
            grad = Hn.T @ (Hn @ s - xn[b])
            s = s - 0.1 * grad * (s >= 0) - 0.05 * np.where(np.abs(grad) > 0.5, grad, 0.0)
        want[b] = s
    torch.testing.assert_close(got, torch.tensor(want), **TOL)
    torch.testing.assert_close(got, interpret(cls.artifacts.program, {"H": H}, {"x": x}), **TOL)


def test_a_mask_carries_no_gradient_and_follows_the_dtype():
    spec = """algorithm M
input  x : vector[n]
state  s : vector[n] = 0
layers 1:
    s <- (x > 0.5) + 0 * s
output s
"""
    model = unfoldc.load_source(spec, name="m.unf")()
    for dtype in (torch.float32, F64):
        x = torch.tensor([[0.2, 0.7, 0.5]], dtype=dtype, requires_grad=True)
        out = model(x)
        assert out.dtype == dtype and out.tolist() == [[0.0, 1.0, 0.0]]
        assert not out.requires_grad


CG = """algorithm CG "conjugate gradient with a guarded step"
given  A : matrix[n, n]
input  b : vector[n]
state  x : vector[n] = 0
state  r : vector[n] = b
state  p : vector[n] = b
layers 8:
    rr = dot(r, r)
    Ap = A @ p
    pAp = dot(p, Ap)
    alpha = where(rr > 0, rr / pAp, 0)
    x <- x + alpha * p
    r <- r - alpha * Ap
    beta = where(rr > 0, dot(r, r) / rr, 0)
    p <- r + beta * p
output x
"""


def test_guarded_conjugate_gradient_solves_and_survives_a_zero_residual():
    g = _gen(2)
    M = torch.randn(5, 5, generator=g, dtype=F64)
    A = M @ M.T + 5 * torch.eye(5, dtype=F64)
    b = torch.randn(2, 5, generator=g, dtype=F64)
    b[1] = 0  # rr = 0 from the start: 0 / 0 is guarded by where()
    model = unfoldc.load_source(CG, name="cg.unf")(A=A)
    x = model(b)
    torch.testing.assert_close(x[0], torch.linalg.solve(A, b[0]), rtol=1e-9, atol=1e-10)
    assert torch.equal(x[1], torch.zeros(5, dtype=F64))
    torch.testing.assert_close(x, interpret(model.__class__.artifacts.program, {"A": A},
                                            {"b": b}), **TOL)
    assert model.convergence_report().verdict == "uncertified"
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(b), x)
    torch._dynamo.reset()


# ---- trace, pi, outer, diag, logsumexp ----------------------------------------------------------
REDUCTIONS = """algorithm R
given  H : matrix[n, n]
input  x : vector[n]
state  s : vector[n] = 0
state  t : scalar = 0
let    c = trace(H.T @ H) / pi
layers 2:
    D = diag(x) + outer(s, x)
    s <- (D @ x + H @ s) / c
    t <- logsumexp(s * 1000) + sum(logsumexp_rows(D * 1000)) + trace(D)
output s, t
"""


def test_trace_pi_outer_diag_logsumexp_against_numpy_and_the_interpreter():
    g = _gen(3)
    H = torch.randn(4, 4, generator=g, dtype=F64)
    x = torch.randn(2, 4, generator=g, dtype=F64)
    cls = unfoldc.load_source(REDUCTIONS, name="r.unf")
    s, t = cls(H=H)(x)
    Hn = H.numpy()
    c = np.trace(Hn.T @ Hn) / np.pi

    def lse(v):
        return v.max() + np.log(np.exp(v - v.max()).sum())

    for b in range(2):
        xs, sn, tn = x[b].numpy(), np.zeros(4), 0.0
        for _ in range(2):
            D = np.diag(xs) + np.outer(sn, xs)
            sn = (D @ xs + Hn @ sn) / c
            tn = lse(sn * 1000) + sum(lse(row) for row in D * 1000) + np.trace(D)
        torch.testing.assert_close(s[b], torch.tensor(sn), **TOL)
        torch.testing.assert_close(t[b], torch.tensor(tn, dtype=F64), **TOL)
    assert torch.isfinite(t).all()  # exp(1000 * entry) overflows without the shift
    assert_all_close((s, t), interpret(cls.artifacts.program, {"H": H}, {"x": x}))


# ---- vector bounds ------------------------------------------------------------------------------
BOX_DECLS = """given  H  : matrix[m, n]
given  lo : vector[n]
given  hi : vector[n]
input  x  : vector[m]
state  s  : vector[n] = 0
let    L = opnorm(H)^2
"""
BOX = 'algorithm PGD "projected gradient onto a per-coordinate box"\n' + BOX_DECLS + """\
train  mu : scalar per_layer = 1 / L   positive
layers 6:
    s <- proj_box(s - mu * H.T @ (H @ s - x), lo, hi)
output s
"""


def _box_problem(seed=4):
    g = _gen(seed)
    H = torch.randn(6, 4, generator=g, dtype=F64)
    x = torch.randn(3, 6, generator=g, dtype=F64)
    lo = torch.tensor([-0.2, 0.0, -1.0, 0.1], dtype=F64)
    return H, x, lo, lo + torch.tensor([0.3, 0.5, 2.0, 0.2], dtype=F64)


def test_vector_box_bounds_equal_a_per_coordinate_loop():
    H, x, lo, hi = _box_problem()
    model = unfoldc.load_source(BOX, name="box.unf")(H=H, lo=lo, hi=hi)
    Hn, xn, lon, hin = H.numpy(), x.numpy(), lo.numpy(), hi.numpy()
    mu = 1 / np.linalg.norm(Hn, 2) ** 2
    want = np.zeros((3, 4))
    for b in range(3):
        s = np.zeros(4)
        for _ in range(6):
            v = s - mu * Hn.T @ (Hn @ s - xn[b])
            s = np.array([min(max(v[i], lon[i]), hin[i]) for i in range(4)])
        want[b] = s
    torch.testing.assert_close(model(x), torch.tensor(want), **TOL)
    report = model.convergence_report()
    assert report.verdict == "certified"
    (bounds,) = [c for c in report.conditions if c.text == "lo <= hi"]
    assert not bounds.failing_layers


def test_vector_box_bounds_are_checked_elementwise_by_the_report():
    H, _, lo, hi = _box_problem()
    hi = hi.clone()
    hi[2] = lo[2] - 0.5  # one coordinate with an empty interval
    report = unfoldc.load_source(BOX, name="box.unf")(H=H, lo=lo, hi=hi).convergence_report()
    (bounds,) = [c for c in report.conditions if c.text == "lo <= hi"]
    assert bounds.failing_layers == list(range(6))
    assert bounds.lhs[0] == pytest.approx(float(lo[2])) and report.verdict == "violated"


def test_clamp_takes_a_number_beside_a_vector_bound():
    spec = BOX.replace("proj_box(s - mu * H.T @ (H @ s - x), lo, hi)",
                       "clamp(s - mu * H.T @ (H @ s - x), 0, hi)")
    H, x, lo, hi = _box_problem()
    model = unfoldc.load_source(spec.replace("given  lo : vector[n]\n", ""), name="c.unf")
    out = model(H=H, hi=hi)(x)
    assert (out >= 0).all() and (out <= hi).all()


def test_per_layer_vector_bounds_are_checked_per_layer_and_entry():
    spec = """algorithm T
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
let    L = opnorm(H)^2
train  lo : vector[n] per_layer = -1
train  hi : vector[n] shared = 1
layers 3:
    s <- clamp(s - (1 / L) * H.T @ (H @ s - x), lo, hi)
output s
"""
    H, x, _, _ = _box_problem()
    model = unfoldc.load_source(spec, name="t.unf")(H=H)
    assert model.convergence_report().ok
    with torch.no_grad():
        model.layers[1].lo[2] = 5.0  # above hi = 1 in layer 2 only
    report = model.convergence_report()
    (bounds,) = [c for c in report.conditions if c.text == "lo <= hi"]
    assert bounds.failing_layers == [1] and report.verdict == "violated"
    assert bounds.lhs == [-1.0, 5.0, -1.0]


@pytest.mark.parametrize("update", [
    "soft(s - mu * H.T @ (H @ s - x) * (s > 0), mu * 0.1)",
    "where(s > 0, s - mu * H.T @ (H @ s - x), s)",
    "s - mu * H.T @ (H @ s - x) * mean(abs(s) > 0.1)",
    "proj_box(s - mu * H.T @ (H @ s - x), -1, where(s > 0, 1, 2))",
])
def test_a_state_dependent_mask_is_never_certified(update):
    """Each would be a certified proximal-gradient step if the mask or selection were dropped."""
    spec = BOX.replace("proj_box(s - mu * H.T @ (H @ s - x), lo, hi)", update).replace(
        "given  lo : vector[n]\ngiven  hi : vector[n]\n", "")
    cls = unfoldc.load_source(spec, name="masked.unf")
    H, x, _, _ = _box_problem()
    report = cls(H=H).convergence_report()
    assert report.verdict == "uncertified" and report.network_bound == float("inf")
    assert "none (uncertified)" in cls.__doc__


PROX_BOX = "algorithm ProxBox\n" + BOX_DECLS + """func   f(u : vector[n]) = 0.5 * sqnorm(H @ u - x)
func   g(u : vector[n]) = 0.1 * norm1(u) + ind_box(u, lo, hi)
minimize f(s) + g(s)
layers 20:
    s <- prox((1 / L) * g, s - (1 / L) * grad(f, s))
output s
"""


def test_prox_of_l1_plus_a_per_coordinate_box_is_a_vector_clamp():
    """ind_box takes vector bounds too: its prox (with an l1 term) is proj_box(soft(...))."""
    H, x, lo, hi = _box_problem()
    cls = unfoldc.load_source(PROX_BOX, name="proxbox.unf")
    assert "torch.clamp(soft(" in cls.artifacts.code
    model = cls(H=H, lo=lo, hi=hi)
    out = model(x)
    assert ((out >= lo) & (out <= hi)).all()
    assert torch.isfinite(model.objective(out, x)).all()
    torch.testing.assert_close(out, interpret(cls.artifacts.program, {"H": H, "lo": lo, "hi": hi},
                                              {"x": x}), **TOL)
    report = model.convergence_report()
    assert report.verdict == "certified"
    assert any(c.text == "lo <= hi" for c in report.conditions)


def test_a_spec_may_name_a_given_mask():
    """The comparison helper is `as_mask`: a given called `mask` keeps its name."""
    spec = """algorithm T
given  mask : vector[n]
input  x : vector[n]
state  s : vector[n] = 0
layers 2:
    s <- s + mask * (x > 0)
output s
"""
    cls = unfoldc.load_source(spec, name="t.unf")
    assert cls.GIVENS == ("mask",)
    x = torch.tensor([[1.0, -1.0, 2.0]], dtype=F64)
    out = cls(mask=torch.tensor([1.0, 1.0, 0.5], dtype=F64))(x)
    assert out.tolist() == [[2.0, 0.0, 1.0]]


def test_a_number_that_may_be_zero_divides_as_a_tensor():
    """`1 / layer` (0 in the first layer), `1 / (m - n)` and `(m - n) ^ 0.5` raised Python's
    ZeroDivisionError or became complex in generated code; as tensors they are inf and nan."""
    spec = """algorithm Z
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
state  t : scalar = 0
layers 2:
    s <- s + min(1 / layer, 5) + 0 * H.T @ x
    t <- 1 / (m - n) + (m - n) ^ 0.5 + layer ^ -1
output s, t
"""
    model = unfoldc.load_source(spec, name="z.unf")(H=torch.ones(3, 3, dtype=F64))
    s, t = model(torch.ones(1, 3, dtype=F64), all_layers=True)[0]
    assert s.tolist() == [[5.0, 5.0, 5.0]] and torch.isinf(t).all() and t.dtype == F64
    code = model.__class__.artifacts.code
    assert "like.new_tensor(1) / layer" in code and "like.new_tensor(m - n) ** 0.5" in code
