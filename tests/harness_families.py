"""The differential soundness harness of the convergence report (issue 10, item 6).

Algorithm *families* generate `.unf` specs; each family has a grid of parameters drawn on both
sides of every textbook condition's boundary. For one configuration the harness

1. compiles the spec and builds the network with the same parameters on every layer (params,
   shared trainables, or per-layer trainables that all start from the same value), deep enough
   to iterate the classical algorithm (`K` layers, 1000+), and reads its `convergence_report()`;
2. runs the K layers and classifies the iterates: `diverged` (a non-finite value, or a norm
   above `DIVERGED`), `converged` (the last step is tiny, or small and still shrinking at the
   rate of a sublinear method), or `bounded` (neither);
3. measures Lipschitz constants: of one layer map and of the whole `K_net`-layer map from the
   initial states to the final states, by exact Jacobians (small sizes) or JVP/VJP power
   iteration, at random points and on the iterates, and by difference quotients; the layer
   map comes from a second compilation of the spec whose states start from inputs (`s_0`) and
   whose schedule states (FISTA's `t`) start from params, so that layer k of a scheduled
   network is layer 0 of a network started at `t = t_k`;
4. evaluates the family's *textbook conditions* independently of unfoldc (numpy `eigvalsh`,
   `svd`), naming the theorem each comes from.

`verdict_of`, `layer_bounds_of` and `network_bound_of` read the report's new API (issue 10:
`verdict`, `layer_bounds`, `network_bound`) when the generated module has it and otherwise fall
back to the old one (`ok` -> "certified", else "violated"; the `lipschitz` condition's per-layer
values; `lipschitz_product`), so the harness reproduces the issue's false certificates with
the old, unsound `ok` as well.

Nothing here asserts: `tests/test_convergence_harness.py` and `benchmarks/soundness_harness.py`
decide what counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import torch

import unfoldc

DIVERGED = 1e6  # a state norm above this (or a non-finite value) is divergence
STEP_TOL = 1e-6  # last step ||S_K - S_{K-1}|| / (1 + ||S_K||) below this: "converged"
SLOW_TOL = 1e-2  # below this and shrinking summably: "converging" (FISTA, DR at huge gamma)
# "shrinking summably": the mean step over the last quarter of the layers is at most SHRINK
# times the mean over the quarter before. Steps ~ k^-1.5 (FISTA's iterates) give 0.60, steps
# ~ 1/k (a logarithmic drift, not summable) 0.71, geometric decay less than either.
SHRINK = 0.68


# --------------------------------------------------------------------------------------------
# Reading a report (new API when present, old API otherwise)
# --------------------------------------------------------------------------------------------


def has_new_api(report) -> bool:
    """Whether the generated report has issue 10's `verdict`."""
    return getattr(report, "verdict", None) is not None


def verdict_of(report) -> str:
    """"certified", "violated" or "uncertified"; the old API only knows ok -> "certified"."""
    verdict = getattr(report, "verdict", None)
    if verdict is not None:
        return str(verdict)
    return "certified" if report.ok else "violated"


def layer_bounds_of(report, num_layers: int) -> list[float]:
    """Per-layer Lipschitz bounds (`inf` where none is derived)."""
    bounds = getattr(report, "layer_bounds", None)
    if bounds is not None:
        return [float(b) for b in bounds]
    rows = [c for c in report.conditions if c.kind == "lipschitz"]
    if not rows:
        return [math.inf] * num_layers
    return [float(v) for v in rows[0].lhs]


def network_bound_of(report) -> float:
    """The whole-network bound (`inf` where none is derived)."""
    bound = getattr(report, "network_bound", None)
    if bound is not None:
        return float(bound)
    product = report.lipschitz_product
    return math.inf if product is None else float(product)


def reasons_of(report) -> list[str]:
    reasons = getattr(report, "reasons", None)
    if reasons is not None:
        return [str(r) for r in reasons]
    return [f"{c.text} fails on layers {c.failing_layers[:3]}..." for c in report.conditions
            if c.level == "require" and c.failing_layers]


def api_problems(report, num_layers: int) -> list[str]:
    """Inconsistencies of the new API: a verdict outside the three, `ok` not `verdict ==
    "certified"`, layer bounds not one per layer, bounds below zero or NaN, a report that is not
    certified and gives no reason."""
    out = []
    verdict = report.verdict
    if verdict not in ("certified", "violated", "uncertified"):
        out.append(f"verdict {verdict!r}")
    if bool(report.ok) != (verdict == "certified"):
        out.append(f"ok={report.ok} with verdict {verdict!r}")
    bounds = layer_bounds_of(report, num_layers)
    if len(bounds) != num_layers:
        out.append(f"{len(bounds)} layer bounds for {num_layers} layers")
    for b in [*bounds, network_bound_of(report)]:
        if math.isnan(b) or b < 0:
            out.append(f"bound {b!r}")
            break
    if verdict != "certified" and not reasons_of(report):
        out.append(f"{verdict} without a reason")
    return out


def failing_kinds(report) -> set[str]:
    """Kinds of the required conditions that fail on some layer."""
    return {c.kind for c in report.conditions if c.level == "require" and c.failing_layers}


# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------


def lam_max(a: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(a.T @ a)[-1])


def lam_min(a: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(a.T @ a)[0])


def opnorm(a: np.ndarray) -> float:
    return float(np.linalg.svd(a, compute_uv=False)[0])


@dataclass
class Problem:
    """Random data of one configuration (numpy float64 copies for the independent checks)."""

    givens: dict[str, np.ndarray]
    inputs: dict[str, np.ndarray]
    facts: dict[str, float] = field(default_factory=dict)


def lasso_problem(rng: np.random.Generator, m: int, n: int, batch: int = 2) -> Problem:
    """H with unit-variance columns in expectation, x = H s_true + noise, s_true 3-sparse."""
    H = rng.standard_normal((m, n)) / math.sqrt(m)
    s = np.zeros((batch, n))
    for b in range(batch):
        s[b, rng.choice(n, 3, replace=False)] = rng.standard_normal(3)
    x = s @ H.T + 0.01 * rng.standard_normal((batch, m))
    return Problem({"H": H}, {"x": x}, {"L": lam_max(H), "lmin": lam_min(H)})


def tv_problem(rng: np.random.Generator, n: int, batch: int = 2) -> Problem:
    """1-D TV denoising of a noisy piecewise-constant signal; D the forward differences."""
    D = np.eye(n - 1, n, 1) - np.eye(n - 1, n)
    jumps = np.cumsum(rng.standard_normal((batch, n)) * (rng.random((batch, n)) < 0.15), axis=1)
    y = jumps + 0.1 * rng.standard_normal((batch, n))
    return Problem({"D": D}, {"y": y}, {"K2": opnorm(D) ** 2})


# --------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------


@dataclass
class Config:
    """One configuration: the spec, its data and parameters, the textbook conditions."""

    family: str
    name: str  # family + parameters, for messages
    spec: str
    schedules: tuple[str, ...]
    problem: Problem
    kwargs: dict[str, Any]  # constructor params (numbers)
    textbook: dict[str, bool]  # "condition (theorem)" -> holds, computed with numpy
    dtype: torch.dtype = torch.float64
    setup: Callable[[torch.nn.Module], None] | None = None  # e.g. scale a net's weights
    seed: int = 0
    # condition kind -> whether the family's condition of that kind is violated, computed
    # independently (a "step" condition reported failing must have step * L >= 2, ...)
    kinds: dict[str, bool] = field(default_factory=dict)

    @property
    def textbook_ok(self) -> bool:
        return all(self.textbook.values())


@dataclass
class Family:
    name: str
    spec: str
    schedules: tuple[str, ...]
    configs: Callable[[int], list[Config]]  # seed -> configurations
    note: str = ""


STEPS = (-0.5, 0.5, 0.95, 1.05, 1.5, 1.8, 2.2, 3.5)  # step * L
MOMENTA = (0.0, 0.5, 0.9, 1.1)
RELAX = (0.5, 1.0, 1.5, 1.95, 2.5)
PD_PRODUCTS = (0.5, 0.9, 1.5, 6.0)  # tau * sigma * ||K||^2
THETAS = (0.0, 0.5, 1.0, 1.5)
THRESHOLDS = (-0.05, 0.1)


def _step_ok(a: float, L: float) -> bool:
    """0 < a < 2 / L with L = lambda_max(H^T H) from numpy's eigvalsh."""
    return a > 0 and a * L < 2


def _grad_step(a: float, L: float) -> dict[str, bool]:
    return {"step > 0 (descent lemma)": a > 0,
            "step * lambda_max(H^T H) < 2 (Baillon-Haddad / Combettes-Wajs 2005)": a * L < 2}


GD_DIRECT = """
algorithm GD_DIRECT "gradient descent on least squares, per-layer steps"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
param  a0 : scalar = 0.1
train  mu : scalar per_layer = a0
layers 16:
    s <- s - mu * H.T @ (H @ s - x)
output s
"""

GD_RESIDUAL = """
algorithm GD_RESIDUAL "gradient descent written with a residual temporary, shared step"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
param  a0 : scalar = 0.1
train  mu : scalar shared = a0
layers 16:
    r = H @ s - x
    s <- s - mu * H.T @ r
output s
"""

GD_MATRIX = """
algorithm GD_MATRIX "gradient descent written as an affine map (I - mu H^T H) s + mu H^T x"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
param  a0 : scalar = 0.1
train  mu : scalar shared = a0
layers 16:
    s <- (I - mu * H.T @ H) @ s + mu * H.T @ x
output s
"""

GD_GRAD = """
algorithm GD_GRAD "gradient descent on a declared objective, fixed step"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
param  mu : scalar = 0.1
func   f(v : vector[n]) = 0.5 * sqnorm(H @ v - x)
layers 16:
    s <- s - mu * grad(f, s)
output s
"""


def _gd_configs(spec: str, family: str, step_name: str) -> Callable[[int], list[Config]]:
    def configs(seed: int) -> list[Config]:
        rng = np.random.default_rng(seed)
        prob = lasso_problem(rng, int(rng.integers(8, 16)), int(rng.integers(10, 24)))
        L = prob.facts["L"]
        return [Config(family, f"{family}[aL={a}]", spec, (), prob, {step_name: a / L},
                       _grad_step(a / L, L), seed=seed,
                       kinds={"step": not _step_ok(a / L, L), "coupling": False})
                for a in STEPS]
    return configs


def chebyshev_steps(lo: float, hi: float, period: int) -> list[float]:
    """Steps 1 / (Chebyshev nodes on [lo, hi]): one period of deep-unfolded GD with Chebyshev
    steps (Takabe-Wadayama); several exceed 2 / hi, while the period's map contracts."""
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    return [1 / (mid + rad * math.cos((2 * k + 1) * math.pi / (2 * period)))
            for k in range(period)]


def _per_layer_steps(steps: list[float]) -> Callable[[torch.nn.Module], None]:
    def setup(model: torch.nn.Module) -> None:
        with torch.no_grad():
            for k, layer in enumerate(model.layers):
                layer.mu.fill_(steps[k % len(steps)])
    return setup


def _chebyshev_configs(seed: int) -> list[Config]:
    """GD with per-layer Chebyshev steps repeated with period T (tall H). Every layer has its
    own step, so the per-layer textbook condition fails on some layers although the T-layer
    map contracts: the textbook entry is that contraction, computed with numpy."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 14))
    prob = lasso_problem(rng, n + int(rng.integers(6, 10)), n)
    H, L, lmin = prob.givens["H"], prob.facts["L"], prob.facts["lmin"]
    out = []
    for period in (4, 8):
        for top in (1.0, 0.6):  # nodes for the true spectrum, or with L underestimated
            steps = chebyshev_steps(lmin, top * L, period)
            M = np.eye(n)
            for a in steps:
                M = (np.eye(n) - a * H.T @ H) @ M
            cycle = opnorm(M)
            tb = {f"the {period}-layer map contracts: ||prod (I - a_k H^T H)|| < 1": cycle < 1}
            out.append(Config("gd_chebyshev", f"gd_chebyshev[T={period},top={top}L]",
                              GD_DIRECT, (), prob, {"a0": 1 / L}, tb,
                              setup=_per_layer_steps(steps), seed=seed,
                              kinds={"coupling": False}))
    return out


ISTA = """
algorithm ISTA_H "proximal gradient, soft threshold"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
param  a0 : scalar = 0.1
param  rho : scalar = 0.1
train  mu : scalar per_layer = a0
layers 16:
    s <- soft(s - mu * H.T @ (H @ s - x), mu * rho)
output s
"""


def _ista_configs(seed: int) -> list[Config]:
    rng = np.random.default_rng(seed)
    prob = lasso_problem(rng, int(rng.integers(8, 16)), int(rng.integers(10, 24)))
    L = prob.facts["L"]
    out = []
    for a in STEPS:
        for rho in THRESHOLDS:
            tb = _grad_step(a / L, L) | {"threshold mu * rho >= 0 (Moreau)": a * rho >= 0}
            out.append(Config("ista", f"ista[aL={a},rho={rho}]", ISTA, (), prob,
                              {"a0": a / L, "rho": rho}, tb, seed=seed,
                              kinds={"step": not _step_ok(a / L, L),
                                     "threshold": a * rho < 0, "coupling": False}))
    return out


BOX = """
algorithm PGD_BOX "projected gradient onto a box"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
param  mu : scalar = 0.1
param  lo : scalar = -0.5
param  hi : scalar = 0.5
layers 16:
    s <- {proj}(s - mu * H.T @ (H @ s - x), lo, hi)
output s
"""


def _box_configs(proj: str) -> Callable[[int], list[Config]]:
    def configs(seed: int) -> list[Config]:
        rng = np.random.default_rng(seed)
        prob = lasso_problem(rng, int(rng.integers(8, 16)), int(rng.integers(10, 24)))
        L = prob.facts["L"]
        out = []
        for a in STEPS:
            for lo, hi in ((-0.5, 0.5), (0.5, -0.5)):
                tb = _grad_step(a / L, L) | {"box lo <= hi (projection onto a nonempty convex "
                                              "set)": lo <= hi}
                out.append(Config(f"pgd_{proj}", f"pgd_{proj}[aL={a},lo={lo},hi={hi}]",
                                  BOX.replace("{proj}", proj), (), prob,
                                  {"mu": a / L, "lo": lo, "hi": hi}, tb, seed=seed,
                                  kinds={"step": not _step_ok(a / L, L),
                                         "threshold": lo > hi, "coupling": False}))
        return out
    return configs


FISTA = """
algorithm FISTA_H "FISTA with the t_k sequence"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
state  z : vector[n] = 0
state  t : scalar = 1
param  a0 : scalar = 0.1
param  rho : scalar = 0.1
train  mu : scalar shared = a0
layers 16:
    s_new = soft(z - mu * H.T @ (H @ z - x), mu * rho)
    t_new = (1 + sqrt(1 + 4 * t^2)) / 2
    z <- s_new + ((t - 1) / t_new) * (s_new - s)
    s <- s_new
    t <- t_new
output s, z, t
"""


def _fista_configs(seed: int) -> list[Config]:
    rng = np.random.default_rng(seed)
    prob = lasso_problem(rng, int(rng.integers(8, 16)), int(rng.integers(10, 24)))
    L = prob.facts["L"]
    out = []
    for a in STEPS:
        tb = {"step > 0 (Beck-Teboulle 2009)": a > 0,
              "step * L <= 1 (Beck-Teboulle 2009)": a <= 1}
        out.append(Config("fista", f"fista[aL={a}]", FISTA, ("t",), prob,
                          {"a0": a / L, "rho": 0.1}, tb, seed=seed,
                          kinds={"step": not _step_ok(a / L, L),
                                 "momentum_step": not 0 < a <= 1, "threshold": a < 0,
                                 "coupling": False}))
    return out


NESTEROV = """
algorithm NESTEROV_CONST "accelerated proximal gradient with constant momentum"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
state  s_prev : vector[n] = 0
param  mu : scalar = 0.1
param  beta : scalar = 0.5
param  rho : scalar = 0.05
layers 16:
    z = s + beta * (s - s_prev)
    s_new = soft(z - mu * H.T @ (H @ z - x), mu * rho)
    s_prev <- s
    s <- s_new
output s, s_prev
"""


def tb_momentum(a: float, beta: float) -> bool:
    """Constant-momentum acceleration on a quadratic, mode by mode (c = 1 - a lambda):
    r^2 - (1 + beta) c r + beta c = 0 has its roots in the unit disc for every lambda in
    (0, L] iff 0 <= beta < 1 (here) and a L < 2 (1 + beta) / (1 + 2 beta)."""
    return 0 <= beta < 1 and 0 < a < 2 * (1 + beta) / (1 + 2 * beta)


def _nesterov_configs(seed: int) -> list[Config]:
    rng = np.random.default_rng(seed)
    prob = lasso_problem(rng, int(rng.integers(8, 16)), int(rng.integers(10, 24)))
    L = prob.facts["L"]
    out = []
    for a in STEPS:
        for beta in MOMENTA:
            tb = {"0 <= beta < 1 (Nesterov 1983, constant momentum)": 0 <= beta < 1,
                  "step > 0": a > 0,
                  "step * L <= 1 (accelerated proximal gradient, Beck-Teboulle 2009)": a <= 1,
                  "step * L < 2 (1 + beta) / (1 + 2 beta) (quadratic stability)":
                      a < 2 * (1 + beta) / (1 + 2 * beta)}
            out.append(Config("nesterov", f"nesterov[aL={a},beta={beta}]", NESTEROV, (), prob,
                              {"mu": a / L, "beta": beta, "rho": 0.05}, tb, seed=seed,
                              kinds={"step": not _step_ok(a / L, L), "coupling": False,
                                     "threshold": a < 0, "momentum_step": not 0 < a <= 1,
                                     "momentum": not tb_momentum(a, beta)}))
    return out


HEAVY_BALL = """
algorithm HEAVY_BALL "Polyak's heavy ball on least squares"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
state  s_prev : vector[n] = 0
param  alpha : scalar = 0.1
param  beta : scalar = 0.5
layers 16:
    g = H.T @ (H @ s - x)
    s_new = s - alpha * g + beta * (s - s_prev)
    s_prev <- s
    s <- s_new
output s, s_prev
"""


HEAVY_BALL_EXPANDED = HEAVY_BALL.replace(
    "s_new = s - alpha * g + beta * (s - s_prev)",
    "s_new = (1 + beta) * s - beta * s_prev - alpha * g").replace("HEAVY_BALL", "HEAVY_BALL_X")


def _heavy_ball_configs(seed: int, spec: str = HEAVY_BALL,
                        family: str = "heavy_ball") -> list[Config]:
    rng = np.random.default_rng(seed)
    # tall H: the quadratic is strongly convex, Polyak's theorem applies as stated
    n = int(rng.integers(8, 14))
    prob = lasso_problem(rng, n + int(rng.integers(4, 8)), n)
    L = prob.facts["L"]
    out = []
    for a in STEPS + (2.8, 3.2):
        for beta in MOMENTA:
            tb = {"0 <= beta < 1 (Polyak 1964)": 0 <= beta < 1,
                  "0 < alpha * L < 2 (1 + beta) (Polyak 1964)": 0 < a < 2 * (1 + beta)}
            out.append(Config(family, f"{family}[aL={a},beta={beta}]", spec,
                              (), prob, {"alpha": a / L, "beta": beta}, tb, seed=seed,
                              kinds={"step": a <= 0, "coupling": False,
                                     "momentum": not (-1 < beta < 1
                                                      and 0 < a < 2 * (1 + beta))}))
    return out


ADMM = """
algorithm ADMM_RELAXED "ADMM for the LASSO with over-relaxation"
given  H : matrix[m, n]
input  x : vector[m]
state  z : vector[n] = 0
state  u : vector[n] = 0
param  rho : scalar = 0.1
param  beta : scalar = 1
param  lam : scalar = 1
layers 16:
    s = solve(H.T @ H + beta * I, H.T @ x + beta * (z - u))
    w = {relax}
    z <- soft(w + u, rho / beta)
    u <- u + w - z
output z, u
"""
ADMM_RELAX = {"convex": "(1 - lam) * z + lam * s", "increment": "z + lam * (s - z)"}


def _admm_configs(spelling: str) -> Callable[[int], list[Config]]:
    def configs(seed: int) -> list[Config]:
        rng = np.random.default_rng(seed)
        prob = lasso_problem(rng, int(rng.integers(8, 16)), int(rng.integers(10, 24)))
        out = []
        for lam in RELAX:
            for beta in (-0.5, 0.3, 3.0):
                tb = {"penalty beta > 0 (Boyd et al. 2011)": beta > 0,
                      "0 < lam < 2 (Eckstein-Bertsekas 1992)": 0 < lam < 2}
                out.append(Config(f"admm_{spelling}", f"admm_{spelling}[lam={lam},beta={beta}]",
                                  ADMM.replace("{relax}", ADMM_RELAX[spelling]), (), prob,
                                  {"lam": lam, "beta": beta, "rho": 0.1}, tb, seed=seed,
                                  kinds={"penalty": beta <= 0, "threshold": beta < 0,
                                         "relaxation": not 0 < lam < 2}))
        return out
    return configs


DR = """
algorithm DOUGLAS_RACHFORD "relaxed Douglas-Rachford for the LASSO"
given  H : matrix[m, n]
input  x : vector[m]
state  z : vector[n] = 0
param  g : scalar = 1
param  rho : scalar = 0.1
param  lam : scalar = 1
layers 16:
    s = {resolvent}
    w = soft(2 * s - z, g * rho)
    z <- {relax}
output z
"""
DR_RESOLVENT = {"solve": "solve(I + g * H.T @ H, z + g * H.T @ x)",
                "inv": "inv(I + g * H.T @ H) @ (z + g * H.T @ x)"}
DR_RELAX = {"increment": "z + lam * (w - s)", "convex": "(1 - lam) * z + lam * (z + w - s)"}


# Douglas-Rachford with `prox` on both sides (issue 12): prox(g * f, z) of the least-squares term
# is the resolvent solve(I + g H^T H, z + g H^T x), prox(g * r, .) of rho * norm1 is soft.
DR_PROX = (DR.replace("for the LASSO", "for the LASSO, prox on both sides")
           .replace("param  lam : scalar = 1\n", "param  lam : scalar = 1\n"
                    "func   f(u : vector[n]) = 0.5 * sqnorm(H @ u - x)\n"
                    "func   r(u : vector[n]) = rho * norm1(u)\n")
           .replace("{resolvent}", "prox(g * f, z)")
           .replace("soft(2 * s - z, g * rho)", "prox(g * r, 2 * s - z)"))
DR_RESOLVENT["prox"] = "prox"  # DR_PROX: the resolvent is written `prox(g * f, z)`


def dr_spec(resolvent: str, relax: str) -> str:
    if resolvent == "prox":
        return DR_PROX.replace("{relax}", DR_RELAX[relax])
    return DR.replace("{resolvent}", DR_RESOLVENT[resolvent]).replace("{relax}", DR_RELAX[relax])


def _dr_configs(resolvent: str, relax: str) -> Callable[[int], list[Config]]:
    family = f"dr_{resolvent}_{relax}"

    def configs(seed: int) -> list[Config]:
        rng = np.random.default_rng(seed)
        prob = lasso_problem(rng, int(rng.integers(8, 16)), int(rng.integers(10, 24)))
        out = []
        for lam in RELAX:
            for g in (-0.5, 0.3, 3.0):
                tb = {"gamma > 0 (Lions-Mercier 1979)": g > 0,
                      "0 < lam < 2 (Krasnosel'skii-Mann, Eckstein-Bertsekas 1992)":
                          0 < lam < 2}
                out.append(Config(family, f"{family}[lam={lam},gamma={g}]",
                                  dr_spec(resolvent, relax), (), prob,
                                  {"g": g, "lam": lam, "rho": 0.1}, tb, seed=seed,
                                  kinds={"relaxation": not 0 < lam < 2,
                                         "threshold": g < 0, "penalty": g <= 0}))
        return out
    return configs


CP_TV = """
algorithm CP_TV "Chambolle-Pock for 1-D TV denoising"
given  D : matrix[d, n]
input  y : vector[n]
state  x : vector[n] = 0
state  xbar : vector[n] = 0
state  q : vector[d] = 0
param  tau : scalar = 0.5
param  sigma : scalar = 0.5
param  theta : scalar = 1
param  lam : scalar = 0.3
layers 16:
    q <- clamp(q + sigma * D @ xbar, -lam, lam)
    x_new = (x - tau * D.T @ q + tau * y) / (1 + tau)
    xbar <- x_new + theta * (x_new - x)
    x <- x_new
output x, xbar, q
"""

CP_LASSO = """
algorithm CP_LASSO "Chambolle-Pock for the LASSO, K = H"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
state  sbar : vector[n] = 0
state  q : vector[m] = 0
param  tau : scalar = 0.5
param  sigma : scalar = 0.5
param  theta : scalar = 1
param  rho : scalar = 0.1
layers 16:
    q <- (q + sigma * (H @ sbar - x)) / (1 + sigma)
    s_new = soft(s - tau * H.T @ q, tau * rho)
    sbar <- s_new + theta * (s_new - s)
    s <- s_new
output s, sbar, q
"""


# The same with the built-in finite differences (issue 12): K = diff, K^T = diff_adj, and the
# report bounds ||diff||^2 by 4 (the exact norm, used by the textbook check, is just below).
CP_TV_DIFF = (CP_TV.replace("given  D : matrix[d, n]\n", "").replace("vector[d]", "vector[n - 1]")
              .replace("D @ xbar", "diff(xbar)").replace("D.T @ q", "diff_adj(q)")
              .replace("1-D TV denoising", "1-D TV denoising, diff / diff_adj"))


def _cp_textbook(tau: float, sigma: float, k2: float, theta: float) -> dict[str, bool]:
    return {"tau > 0, sigma > 0 (Chambolle-Pock 2011)": tau > 0 and sigma > 0,
            "tau * sigma * ||K||^2 < 1 (Chambolle-Pock 2011)": tau * sigma * k2 < 1,
            "0 <= theta <= 1 (Chambolle-Pock 2011)": 0 <= theta <= 1}


def _cp_configs(which: str) -> Callable[[int], list[Config]]:
    def configs(seed: int) -> list[Config]:
        rng = np.random.default_rng(seed)
        if which in ("tv", "tv_diff"):
            prob = tv_problem(rng, int(rng.integers(10, 24)))
            k2 = prob.facts["K2"]
            if which == "tv_diff":  # no matrix D: the spec writes diff(xbar)
                prob = Problem({}, prob.inputs, prob.facts)
        else:
            prob = lasso_problem(rng, int(rng.integers(8, 16)), int(rng.integers(10, 24)))
            k2 = prob.facts["L"]
        out = []
        for prod in PD_PRODUCTS:
            for theta in THETAS:
                tau = sigma = math.sqrt(prod / k2)
                kw = {"tau": tau, "sigma": sigma, "theta": theta}
                tb = _cp_textbook(tau, sigma, k2, theta)
                out.append(Config(f"cp_{which}", f"cp_{which}[tsK2={prod},theta={theta}]",
                                  {"tv": CP_TV, "tv_diff": CP_TV_DIFF}.get(which, CP_LASSO), (),
                                  prob, kw, tb,
                                  seed=seed, kinds={"primal_dual": not all(tb.values()),
                                                    "threshold": False}))
        return out
    return configs


LISTA = """
algorithm LISTA_RANDOM "LISTA with random untied weights"
given  H : matrix[m, n]
given  W2i : matrix[n, n]
given  W1i : matrix[n, m]
input  x : vector[m]
state  s : vector[n] = 0
param  theta : scalar = 0.05
train  W2 : matrix[n, n] shared = W2i
train  W1 : matrix[n, m] shared = W1i
layers 16:
    s <- soft(W2 @ s + W1 @ x, theta)
output s
"""


def _lista_configs(seed: int) -> list[Config]:
    rng = np.random.default_rng(seed)
    prob0 = lasso_problem(rng, int(rng.integers(8, 16)), int(rng.integers(10, 24)))
    H = prob0.givens["H"]
    m, n = H.shape
    R = rng.standard_normal((n, n))
    B = rng.standard_normal((n, m)) / math.sqrt(m)
    out = []
    for c in (0.5, 0.95, 1.05, 1.5):
        A = c * R / opnorm(R)
        prob = Problem({"H": H, "W2i": A, "W1i": B}, prob0.inputs, prob0.facts)
        for theta in THRESHOLDS:
            tb = {"theta >= 0 (Moreau)": theta >= 0,
                  "||W2|| < 1 (Banach contraction)": c < 1,
                  "W2 = I - W1 H (Chen-Liu-Wang-Yin 2018, LISTA-CP)":
                      opnorm(A + B @ H - np.eye(n)) < 1e-9}
            out.append(Config("lista", f"lista[||W2||={c},theta={theta}]", LISTA, (), prob,
                              {"theta": theta}, tb, seed=seed,
                              kinds={"threshold": theta < 0}))
    return out


LISTA_CP = """
algorithm LISTA_COUPLED "LISTA with coupled weights W2 = I - W1 H"
given  H : matrix[m, n]
given  W0 : matrix[n, m]
input  x : vector[m]
state  s : vector[n] = 0
param  theta : scalar = 0.05
train  W : matrix[n, m] per_layer = W0
layers 16:
    s <- soft({arg}, theta)
output s
"""
LISTA_CP_ARG = {"cp": "s + W @ (x - H @ s)", "explicit": "(I - W @ H) @ s + W @ x"}


def _lista_cp_configs(spelling: str) -> Callable[[int], list[Config]]:
    def configs(seed: int) -> list[Config]:
        rng = np.random.default_rng(seed)
        n = int(rng.integers(8, 14))
        prob0 = lasso_problem(rng, n + int(rng.integers(4, 8)), n)  # tall: contractions exist
        H, L = prob0.givens["H"], prob0.facts["L"]
        m = H.shape[0]
        R = rng.standard_normal((n, m))
        out = []
        for a in (0.5, 1.5, 2.2):
            for eps in (0.0, 0.3):
                B = a / L * H.T + eps * R / opnorm(R) / math.sqrt(L)
                prob = Problem({"H": H, "W0": B}, prob0.inputs, prob0.facts)
                for theta in THRESHOLDS:
                    tb = {"theta >= 0 (Moreau)": theta >= 0,
                          "||I - W H|| < 1 (Banach contraction)":
                              opnorm(np.eye(n) - B @ H) < 1}
                    out.append(Config(f"lista_cp_{spelling}",
                                      f"lista_cp_{spelling}[aL={a},eps={eps},theta={theta}]",
                                      LISTA_CP.replace("{arg}", LISTA_CP_ARG[spelling]), (),
                                      prob, {"theta": theta}, tb, seed=seed,
                                      kinds={"threshold": theta < 0, "coupling": False}))
        return out
    return configs


ISTA_NET = """
algorithm ISTA_NET "ISTA plus a learned correction psi(s), shared"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
param  mu0 : scalar = 0.1
param  rho : scalar = 0.05
train  mu : scalar shared = mu0
net    psi : mlp[n -> n](hidden = [16], act = relu) shared
layers 16:
    s <- soft(s - mu * H.T @ (H @ s - x) + psi(s), mu * rho)
output s
"""


def net_lipschitz_bound(module: torch.nn.Module) -> float:
    """Product of the spectral norms of the Linear layers' weights (ReLU is 1-Lipschitz)."""
    out = 1.0
    for lin in module.modules():
        if isinstance(lin, torch.nn.Linear):
            out *= opnorm(lin.weight.detach().double().numpy())
    return out


def _scale_net(target: float) -> Callable[[torch.nn.Module], None]:
    def setup(model: torch.nn.Module) -> None:
        with torch.no_grad():
            now = net_lipschitz_bound(model.psi)
            last = [m for m in model.psi.modules() if isinstance(m, torch.nn.Linear)][-1]
            last.weight.mul_(target / now)
            last.bias.mul_(0.1)
    return setup


def _net_configs(seed: int) -> list[Config]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 14))
    prob = lasso_problem(rng, n + int(rng.integers(6, 10)), n)
    L, lmin = prob.facts["L"], prob.facts["lmin"]
    out = []
    for a in (0.5, 1.0, 1.5, 2.2):
        q = max(abs(1 - a), abs(1 - a * lmin / L))
        for lip in (0.0, 0.05, 0.3, 1.5):
            tb = {"||I - mu H^T H|| + Lip(psi) < 1 (Banach contraction)": q + lip < 1}
            out.append(Config("ista_net", f"ista_net[aL={a},Lip={lip}]", ISTA_NET, (), prob,
                              {"mu0": a / L, "rho": 0.05}, tb, setup=_scale_net(lip),
                              seed=seed, kinds={"threshold": False}))
    return out


TISTA = """
algorithm TISTA_H "TISTA: MMSE shrinkage with an error-variance estimator (Ito et al. 2019)"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
param  sigma2 : scalar = 0.0001
param  p : scalar = 0.15
param  alpha2 : scalar = 1
let    W = pinv(H)
let    trHtH = sum(H * H)
let    trWWt = sum(W * W)
train  gamma : scalar per_layer = 1
layers 16:
    e = x - H @ s
    r = s + gamma * W @ e
    v2 = max((sqnorm(e) - m * sigma2) / trHtH, 1e-9)
    tau2 = v2 / n * (n + (gamma^2 - 2 * gamma) * m) + gamma^2 * sigma2 / n * trWWt
    xi = alpha2 + tau2
    F = p * exp(-r^2 / (2 * xi)) / sqrt(xi)
    G = (1 - p) * exp(-r^2 / (2 * tau2)) / sqrt(tau2)
    s <- (alpha2 / xi) * r * F / (F + G)
output s
"""


def _tista_configs(seed: int) -> list[Config]:
    rng = np.random.default_rng(seed)
    prob = lasso_problem(rng, int(rng.integers(8, 16)), int(rng.integers(10, 24)))
    return [Config("tista", "tista[untrained]", TISTA, (), prob, {}, {}, seed=seed)]


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("gd_direct", GD_DIRECT, (), _gd_configs(GD_DIRECT, "gd_direct", "a0")),
    Family("gd_residual", GD_RESIDUAL, (), _gd_configs(GD_RESIDUAL, "gd_residual", "a0")),
    Family("gd_grad", GD_GRAD, (), _gd_configs(GD_GRAD, "gd_grad", "mu")),
    Family("gd_matrix", GD_MATRIX, (), _gd_configs(GD_MATRIX, "gd_matrix", "a0")),
    Family("gd_chebyshev", GD_DIRECT, (), _chebyshev_configs),
    Family("ista", ISTA, (), _ista_configs),
    Family("pgd_proj_box", BOX.replace("{proj}", "proj_box"), (), _box_configs("proj_box")),
    Family("pgd_clamp", BOX.replace("{proj}", "clamp"), (), _box_configs("clamp")),
    Family("fista", FISTA, ("t",), _fista_configs),
    Family("nesterov", NESTEROV, (), _nesterov_configs),
    Family("heavy_ball", HEAVY_BALL, (), _heavy_ball_configs),
    Family("heavy_ball_expanded", HEAVY_BALL_EXPANDED, (),
           lambda seed: _heavy_ball_configs(seed, HEAVY_BALL_EXPANDED, "heavy_ball_expanded")),
    Family("admm_convex", ADMM.replace("{relax}", ADMM_RELAX["convex"]), (),
           _admm_configs("convex")),
    Family("admm_increment", ADMM.replace("{relax}", ADMM_RELAX["increment"]), (),
           _admm_configs("increment")),
    *[Family(f"dr_{r}_{x}", dr_spec(r, x), (), _dr_configs(r, x))
      for r in DR_RESOLVENT for x in DR_RELAX],
    Family("cp_tv", CP_TV, (), _cp_configs("tv")),
    Family("cp_tv_diff", CP_TV_DIFF, (), _cp_configs("tv_diff")),
    Family("cp_lasso", CP_LASSO, (), _cp_configs("lasso")),
    Family("lista", LISTA, (), _lista_configs),
    Family("lista_cp_cp", LISTA_CP.replace("{arg}", LISTA_CP_ARG["cp"]), (),
           _lista_cp_configs("cp")),
    Family("lista_cp_explicit", LISTA_CP.replace("{arg}", LISTA_CP_ARG["explicit"]), (),
           _lista_cp_configs("explicit")),
    Family("ista_net", ISTA_NET, (), _net_configs),
    Family("tista", TISTA, (), _tista_configs),
]}


# --------------------------------------------------------------------------------------------
# Compiling: the network, and its layer map (states started from inputs)
# --------------------------------------------------------------------------------------------

_STATE = re.compile(r"^state\s+(\w+)\s*:\s*([^=]+?)\s*=\s*([^#\n]+?)\s*$", re.M)


def state_decls(spec: str) -> list[tuple[str, str, str]]:
    """(name, type, initial value) of every state, in order."""
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in _STATE.finditer(spec)]


def map_spec(spec: str, schedules: tuple[str, ...]) -> str:
    """The spec with each state's start read from an input `NAME_0` (a param for schedules),
    outputting every non-schedule state."""
    def repl(m: re.Match) -> str:
        name, typ, init = m.group(1), m.group(2).strip(), m.group(3)
        if name in schedules:
            return f"param {name}_0 : {typ} = {init}\nstate {name} : {typ} = {name}_0"
        return f"input {name}_0 : {typ}\nstate {name} : {typ} = {name}_0"

    text = _STATE.sub(repl, spec)
    states = [n for n, _, _ in state_decls(spec) if n not in schedules]
    return re.sub(r"^output .*$", "output " + ", ".join(states), text, flags=re.M)


@cache
def compiled(spec: str, name: str) -> type:
    return unfoldc.load_source(spec, name=f"{name}.unf")


def build(cls: type, cfg: Config, num_layers: int, **extra) -> torch.nn.Module:
    givens = {k: torch.as_tensor(v, dtype=cfg.dtype) for k, v in cfg.problem.givens.items()}
    kwargs = {k: v for k, v in cfg.kwargs.items() if k in _params(cls)}
    model = cls(**givens, **kwargs, **extra, num_layers=num_layers)
    if cfg.setup is not None:
        cfg.setup(model)
    return model


def _params(cls: type) -> tuple[str, ...]:
    return tuple(cls.PARAMS)


def inputs_of(cfg: Config) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, dtype=cfg.dtype) for k, v in cfg.problem.inputs.items()}


def _flatten(out, names: list[str], all_names: tuple[str, ...]) -> torch.Tensor:
    """(B, N): the named states of one output (tensor or NamedTuple) concatenated."""
    if isinstance(out, torch.Tensor):
        return out.reshape(out.shape[0], -1)
    parts = [getattr(out, n) for n in names]
    return torch.cat([p.reshape(p.shape[0], -1) for p in parts], dim=1)


# --------------------------------------------------------------------------------------------
# Dynamics
# --------------------------------------------------------------------------------------------


@dataclass
class Dynamics:
    status: str  # "converged", "converging" (slowly), "bounded", "diverged"
    max_norm: float
    last_step: float  # ||S_K - S_{K-1}|| / (1 + ||S_K||), worst sample
    drift: float  # ||S_K - S_{K - K/6}|| / (1 + ||S_K||)
    states: torch.Tensor | None = None  # (K, B, N) non-schedule states after each layer
    schedules: dict[str, list[float]] = field(default_factory=dict)  # value after each layer

    @property
    def converges(self) -> bool:
        return self.status in ("converged", "converging")


def classify(S: torch.Tensor) -> tuple[str, float, float, float]:
    """(status, max norm, last relative step, drift) of iterates S : (K, B, N)."""
    K = S.shape[0]
    norms = torch.linalg.vector_norm(S, dim=-1)  # (K, B)
    if not bool(torch.isfinite(S).all()) or float(norms.max()) > DIVERGED:
        return "diverged", float(norms.nan_to_num(math.inf).max()), math.inf, math.inf
    absolute = torch.linalg.vector_norm(S[1:] - S[:-1], dim=-1)  # (K-1, B)
    steps = absolute / (1 + norms[1:])
    last = float(steps[-1].max())
    drift = float((torch.linalg.vector_norm(S[-1] - S[K - 1 - K // 6], dim=-1)
                   / (1 + norms[-1])).max())
    q = steps.shape[0] // 4
    shrinking = bool((absolute[-q:].mean(0) <= SHRINK * absolute[-2 * q:-q].mean(0)).all())
    if last < STEP_TOL:
        status = "converged"
    elif last < SLOW_TOL and shrinking:
        status = "converging"
    else:
        status = "bounded"
    return status, float(norms.max()), last, drift


def run_dynamics(model: torch.nn.Module, cfg: Config) -> Dynamics:
    names = [n for n, _, _ in state_decls(cfg.spec) if n not in cfg.schedules]
    with torch.no_grad():
        hist = model(**inputs_of(cfg), all_layers=True)
    S = torch.stack([_flatten(h, names, model.OUTPUTS) for h in hist])
    sched = {t: [float(getattr(h, t).reshape(-1)[0]) for h in hist] for t in cfg.schedules}
    status, max_norm, last, drift = classify(S)
    return Dynamics(status, max_norm, last, drift, S, sched)


# --------------------------------------------------------------------------------------------
# Measured Lipschitz constants
# --------------------------------------------------------------------------------------------


def jvp_power_norm(f: Callable, a: torch.Tensor, iters: int = 60, seed: int = 0) -> float:
    """||J_f(a)||_2 by power iteration on J^T J with forward (jvp) and reverse (vjp) products;
    a lower estimate of the norm, exact in the limit."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(a.shape, generator=g, dtype=a.dtype)
    v = v / torch.linalg.vector_norm(v)
    _, vjp_fn = torch.func.vjp(f, a)
    est = 0.0
    for _ in range(iters):
        _, jv = torch.func.jvp(f, (a,), (v,))
        if not bool(torch.isfinite(jv).all()):  # the map overflowed at this point
            return math.nan
        est = max(est, float(torch.linalg.vector_norm(jv)))
        (w,) = vjp_fn(jv)
        size = torch.linalg.vector_norm(w)
        if not bool(torch.isfinite(size)) or float(size) == 0:
            break
        v = w / size
    return est


def exact_norm(f: Callable, a: torch.Tensor) -> float:
    """||J_f(a)||_2 from the full Jacobian (reverse mode)."""
    jac = torch.autograd.functional.jacobian(f, a)
    if not bool(torch.isfinite(jac).all()):  # the map overflowed at this point
        return math.nan
    return float(torch.linalg.matrix_norm(jac, ord=2))


def local_norm(f: Callable, a: torch.Tensor, exact_up_to: int = 160) -> float:
    return exact_norm(f, a) if a.numel() <= exact_up_to else jvp_power_norm(f, a)


def map_fn(model: torch.nn.Module, names: list[str], sizes: list[int],
           inputs: dict[str, torch.Tensor], num_layers: int) -> Callable:
    """The flat map (N,) -> (N,): the first sample's states through `num_layers` layers."""
    first = {k: v[:1] for k, v in inputs.items()}

    def f(flat: torch.Tensor) -> torch.Tensor:
        parts, i = {}, 0
        for nm, size in zip(names, sizes):
            parts[f"{nm}_0"] = flat[i:i + size].reshape(1, size)
            i += size
        out = model(**first, **parts, num_layers=num_layers)
        return _flatten(out, names, ()).reshape(-1)
    return f


def measured_lipschitz(f: Callable, points: list[torch.Tensor], seed: int = 0,
                       pairs: int = 4) -> float:
    """The largest Jacobian norm at `points` and difference quotient of random pairs near
    them: a lower bound on the map's Lipschitz constant. Points where the map overflows are
    skipped; NaN when every point does (a diverging map at depth), never a silent 0."""
    g = torch.Generator().manual_seed(seed)
    best, measured = 0.0, False
    for a in points:
        norm = local_norm(f, a)
        if not math.isfinite(norm):
            continue
        measured = True
        best = max(best, norm)
        for j in range(pairs):
            d = torch.randn(a.shape, generator=g, dtype=a.dtype) * (10.0 ** (-j))
            with torch.no_grad():
                fa, fb = f(a), f(a + d)
            q = float(torch.linalg.vector_norm(fa - fb) / torch.linalg.vector_norm(d))
            if math.isfinite(q):
                best = max(best, q)
    return best if measured else math.nan


# --------------------------------------------------------------------------------------------
# One configuration, end to end
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    cfg: Config
    verdict: str
    new_api: bool
    reasons: list[str]
    failing: set[str]  # kinds of failing required conditions
    dyn: Dynamics
    # (layer index, reported bound, measured constant) for the measured layers
    layers: list[tuple[int, float, float]] = field(default_factory=list)
    network: tuple[int, float, float] | None = None  # (K_net, network_bound, measured)
    error: str = ""
    api_problems: list[str] = field(default_factory=list)  # see api_problems()

    @property
    def false_certificate(self) -> bool:
        return self.verdict == "certified" and not self.dyn.converges

    @property
    def false_alarm(self) -> bool:
        return self.verdict != "certified" and self.dyn.converges

    @property
    def false_violation(self) -> bool:
        """Reported violated although every textbook condition of the family holds."""
        return self.verdict == "violated" and self.cfg.textbook_ok

    def unsound_bounds(self, rel: float = 1e-9) -> list[str]:
        out = []
        for k, bound, measured in self.layers:
            if measured > bound * (1 + rel) + 1e-12:  # False for NaN: not measured
                out.append(f"layer {k}: bound {bound!r} < measured {measured!r} "
                           f"(relative gap {measured / bound - 1:.2g})")
        if self.network is not None:
            K, bound, measured = self.network
            if measured > bound * (1 + rel) + 1e-12:
                out.append(f"{K}-layer map: network_bound {bound!r} < measured {measured!r} "
                           f"(relative gap {measured / bound - 1:.2g})")
        return out

    def line(self) -> str:
        lay = ", ".join(f"L{k}: {b:.3g}/{m:.3g}" for k, b, m in self.layers)
        net = "" if self.network is None else \
            f"net{self.network[0]}: {self.network[1]:.3g}/{self.network[2]:.3g}"
        tb = "textbook ok" if self.cfg.textbook_ok else "textbook violated: " + "; ".join(
            k for k, v in self.cfg.textbook.items() if not v)
        return (f"{self.cfg.name:45s} {self.verdict:11s} {self.dyn.status:9s} "
                f"step {self.dyn.last_step:.1e}  {tb}  [bound/measured {lay} {net}]")


def _points(dyn: Dynamics, size: int, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    """Where to measure: a random point, and early iterates (perturbed) when finite."""
    g = torch.Generator().manual_seed(seed)
    pts = [torch.randn(size, generator=g, dtype=dtype)]
    S = dyn.states
    for k in (2, 20):
        if S is not None and k < S.shape[0] and bool(torch.isfinite(S[k, 0]).all()) \
                and float(S[k, 0].norm()) < 1e3:
            pts.append(S[k, 0] + 0.05 * torch.randn(size, generator=g, dtype=dtype))
    return pts


def evaluate(cfg: Config, K: int = 1200, K_net: int = 6, layers: tuple[int, ...] = (0,),
             measure: bool = True, with_report: bool = True) -> Result:
    """Report, dynamics and (optionally) measured Lipschitz constants of one configuration.

    A report that raises gives the verdict "error" (with the exception in `error`)."""
    cls = compiled(cfg.spec, cfg.family)
    model = build(cls, cfg, K)
    dyn = run_dynamics(model, cfg)
    if not with_report:
        return Result(cfg, "not evaluated", False, [], set(), dyn)
    try:
        report = model.convergence_report()
    except Exception as exc:  # noqa: BLE001 - a crashing report is a finding, not a harness bug
        return Result(cfg, "error", True, [f"{type(exc).__name__}: {exc}"], set(), dyn,
                      error=f"{type(exc).__name__}: {str(exc)[:200]}")
    res = Result(cfg, verdict_of(report), has_new_api(report), reasons_of(report),
                 failing_kinds(report), dyn)
    if res.new_api:
        res.api_problems = api_problems(report, K)
    if not measure:
        return res
    names = [n for n, _, _ in state_decls(cfg.spec) if n not in cfg.schedules]
    inputs = inputs_of(cfg)
    with torch.no_grad():
        first = model(**inputs, num_layers=1)
    sizes = [int(_flatten(first, [n], ()).shape[1]) for n in names]
    size = sum(sizes)
    mcls = compiled(map_spec(cfg.spec, cfg.schedules), cfg.family + "_map")
    bounds = layer_bounds_of(report, K)
    pts = _points(dyn, size, cfg.dtype, cfg.seed)
    for k in layers:
        k = k % K
        extra = {f"{t}_0": (dyn.schedules[t][k - 1] if k else None) for t in cfg.schedules}
        extra = {key: v for key, v in extra.items() if v is not None}
        mmodel = build(mcls, cfg, 1, **extra)
        f = map_fn(mmodel, names, sizes, inputs, 1)
        res.layers.append((k, bounds[k], measured_lipschitz(f, pts, cfg.seed)))
    if K_net:
        mmodel = build(mcls, cfg, K_net)
        f = map_fn(mmodel, names, sizes, inputs, K_net)
        try:
            bound = network_bound_of(mmodel.convergence_report())
        except Exception as exc:  # noqa: BLE001 - reported as a finding
            res.error = f"{K_net}-layer report: {type(exc).__name__}: {str(exc)[:200]}"
            return res
        res.network = (K_net, bound, measured_lipschitz(f, pts, cfg.seed, pairs=2))
    return res


def named_configs(seed: int = 0) -> dict[str, Config]:
    """The issue's named cases: what they must not be reported as is in the test."""
    rng = np.random.default_rng(seed)
    prob = lasso_problem(rng, 12, 20)
    L = prob.facts["L"]
    out = {}
    for resolvent in DR_RESOLVENT:
        fam = f"dr_{resolvent}_increment"
        out[f"{fam}_float32_gamma1e4"] = Config(
            fam, f"{fam}[lam=1,gamma=1e4,float32]", dr_spec(resolvent, "increment"), (), prob,
            {"g": 1e4, "lam": 1.0, "rho": 0.1}, {"gamma > 0": True, "0 < lam < 2": True},
            dtype=torch.float32, seed=seed)
    out["tista_untrained"] = _tista_configs(seed)[0]
    for a in (0.5, 1.0, 1.8):
        out[f"gd_residual_aL{a}"] = Config(
            "gd_residual", f"gd_residual[aL={a}]", GD_RESIDUAL, (), prob, {"a0": a / L},
            _grad_step(a / L, L), seed=seed, kinds={"step": False, "coupling": False})
    return out


def all_configs(seed: int, families: list[str] | None = None) -> list[Config]:
    out = []
    for name, fam in FAMILIES.items():
        if families is None or name in families:
            out.extend(fam.configs(seed))
    return out
