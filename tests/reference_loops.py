"""Reference loops: plain float64 implementations of the unfolded algorithms.

These are the oracles the compiler is tested against, so they are written for obviousness, not
speed: one Python loop over layers, each update a line-for-line transcription of the textbook
formula, and every matrix-vector product written as a per-sample product `A v` (see `_mv`) rather
than the transposed batched layout a code generator would pick. Nothing here imports unfoldc.

Conventions shared by every function:

- `H : (m, n)`, input `x : (B, m)` (RPCA: `Y : (B, m, n)`); states start at zero unless stated.
- Everything is computed in float64; `.to(float64)` keeps autograd, so gradient checks may pass
  parameters that require grad.
- A per-layer parameter may be given as a list or tuple of `num_layers` values (one per layer) or
  as a single value used by every layer; `None` means the algorithm's documented init.
- The return value is the final output; with `all_layers=True` it is instead the list of the
  outputs after layers 1, ..., K (the last entry equals the final output), which mirrors the
  `all_layers` flag of generated modules. RPCA returns a tuple `(L, S)`, per layer too.

Notation: `L = opnorm(H)^2` (largest singular value squared), `mu0 = 1 / L`,
`soft(v, t) = sign(v) * max(|v| - t, 0)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

DTYPE = torch.float64


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def as64(value: Any) -> torch.Tensor:
    """Return `value` as a float64 tensor, keeping autograd history if it has any.

    Python numbers are converted directly to float64: going through the default float32 dtype
    first would round 0.1 to 0.100000001 and make every comparison against it off by 1e-8.
    """
    if isinstance(value, torch.Tensor):
        return value.to(DTYPE)
    return torch.as_tensor(value, dtype=DTYPE)


def opnorm_sq(H: torch.Tensor) -> float:
    """Return `opnorm(H)^2`, the Lipschitz constant of the gradient of `0.5 ||H s - x||^2`."""
    return torch.linalg.matrix_norm(as64(H).detach(), ord=2).item() ** 2


def step0(H: torch.Tensor) -> float:
    """Return `mu0 = 1 / opnorm(H)^2`, the classical ISTA step size."""
    return 1.0 / opnorm_sq(H)


def soft(v: torch.Tensor, t: Any) -> torch.Tensor:
    """Soft thresholding `sign(v) * max(|v| - t, 0)`, elementwise."""
    return torch.sign(v) * torch.clamp(v.abs() - t, min=0)


def svt(M: torch.Tensor, t: Any) -> torch.Tensor:
    """Singular value soft thresholding of a batch of matrices `M : (B, m, n)`.

    Returns `U diag(max(sigma - t, 0)) V^T` for each matrix, the proximal map of `t ||.||_*`.
    """
    U, sigma, Vh = torch.linalg.svd(M, full_matrices=False)
    return U @ torch.diag_embed(torch.clamp(sigma - t, min=0)) @ Vh


def _mv(A: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Matrix-vector product `A v` applied to every sample of a batch `v : (B, k)`."""
    return (A @ v.unsqueeze(-1)).squeeze(-1)


def _per_layer(value: Any, num_layers: int, name: str) -> list[torch.Tensor]:
    """Expand a parameter to one float64 tensor per layer.

    Args:
        value: a list/tuple of `num_layers` values, or one value shared by every layer.
        num_layers: K, the number of layers.
        name: the parameter's name, for the error message.

    Returns:
        A list of `num_layers` float64 tensors.
    """
    if isinstance(value, Sequence):
        if len(value) != num_layers:
            raise ValueError(f"`{name}` has {len(value)} entries, expected {num_layers}")
        return [as64(v) for v in value]
    return [as64(value)] * num_layers


def _finish(history: list, all_layers: bool):
    """Return the per-layer history or only its last entry, as the caller asked."""
    return history if all_layers else history[-1]


def lasso_objective(H: torch.Tensor, x: torch.Tensor, s: torch.Tensor, rho: float) -> torch.Tensor:
    """Per-sample LASSO objective `0.5 ||H s - x||^2 + rho ||s||_1`, shape `(B,)`."""
    H, x, s = as64(H), as64(x), as64(s)
    return 0.5 * (_mv(H, s) - x).square().sum(-1) + rho * s.abs().sum(-1)


# --------------------------------------------------------------------------------------------
# Algorithms
# --------------------------------------------------------------------------------------------


def gd_steps(H, x, num_layers: int, mu=None, all_layers: bool = False):
    """Gradient descent on `0.5 ||H s - x||^2`: `s <- s - mu H^T (H s - x)`.

    Args:
        H: the `(m, n)` measurement matrix.
        x: the `(B, m)` batch of observations.
        num_layers: K.
        mu: per-layer step sizes (init `mu0`).
        all_layers: return every layer's output instead of the last one.

    Returns:
        `s : (B, n)`, or the list of it after each layer.
    """
    H, x = as64(H), as64(x)
    mus = _per_layer(step0(H) if mu is None else mu, num_layers, "mu")
    s = x.new_zeros(x.shape[0], H.shape[1])
    history = []
    for k in range(num_layers):
        s = s - mus[k] * _mv(H.T, _mv(H, s) - x)
        history.append(s)
    return _finish(history, all_layers)


def ista(H, x, num_layers: int, mu=None, rho=0.1, all_layers: bool = False):
    """ISTA: `s <- soft(s - mu H^T (H s - x), mu rho)`.

    Args:
        H: the `(m, n)` measurement matrix.
        x: the `(B, m)` batch of observations.
        num_layers: K.
        mu: per-layer step sizes (init `mu0`).
        rho: per-layer LASSO weights (init 0.1).
        all_layers: return every layer's output instead of the last one.

    Returns:
        `s : (B, n)`, or the list of it after each layer.
    """
    H, x = as64(H), as64(x)
    mus = _per_layer(step0(H) if mu is None else mu, num_layers, "mu")
    rhos = _per_layer(rho, num_layers, "rho")
    s = x.new_zeros(x.shape[0], H.shape[1])
    history = []
    for k in range(num_layers):
        s = soft(s - mus[k] * _mv(H.T, _mv(H, s) - x), mus[k] * rhos[k])
        history.append(s)
    return _finish(history, all_layers)


def lista(H, x, num_layers: int, W1=None, W2=None, theta=None, all_layers: bool = False):
    """LISTA (Gregor & LeCun 2010): `s <- soft(W2 s + W1 x, theta)`.

    Args:
        H: the `(m, n)` measurement matrix (only used for the inits).
        x: the `(B, m)` batch of observations.
        num_layers: K.
        W1: per-layer `(n, m)` matrices (init `mu0 H^T`).
        W2: per-layer `(n, n)` matrices (init `I - mu0 H^T H`).
        theta: per-layer thresholds (init `0.1 mu0`).
        all_layers: return every layer's output instead of the last one.

    Returns:
        `s : (B, n)`, or the list of it after each layer.
    """
    H, x = as64(H), as64(x)
    mu0, n = step0(H), H.shape[1]
    W1s = _per_layer(mu0 * H.T if W1 is None else W1, num_layers, "W1")
    W2s = _per_layer(
        torch.eye(n, dtype=DTYPE) - mu0 * H.T @ H if W2 is None else W2, num_layers, "W2"
    )
    thetas = _per_layer(0.1 * mu0 if theta is None else theta, num_layers, "theta")
    s = x.new_zeros(x.shape[0], n)
    history = []
    for k in range(num_layers):
        s = soft(_mv(W2s[k], s) + _mv(W1s[k], x), thetas[k])
        history.append(s)
    return _finish(history, all_layers)


def lista_cp(H, x, num_layers: int, W=None, theta=None, all_layers: bool = False):
    """LISTA with coupled weights (Chen et al. 2018): `s <- soft(s + W (x - H s), theta)`.

    Args:
        H: the `(m, n)` measurement matrix.
        x: the `(B, m)` batch of observations.
        num_layers: K.
        W: per-layer `(n, m)` matrices (init `mu0 H^T`).
        theta: per-layer thresholds (init `0.1 mu0`).
        all_layers: return every layer's output instead of the last one.

    Returns:
        `s : (B, n)`, or the list of it after each layer.
    """
    return _coupled(H, x, num_layers, W, theta, lambda v, t, k: soft(v, t), all_layers)


def _coupled(H, x, num_layers, W, theta, shrink, all_layers):
    """`s <- shrink(s + W_k (x - H s), theta_k, k)` from s = 0, W_k = mu0 H^T, theta_k = 0.1 mu0
    (k is the 0-based layer)."""
    H, x = as64(H), as64(x)
    mu0 = step0(H)
    Ws = _per_layer(mu0 * H.T if W is None else W, num_layers, "W")
    thetas = _per_layer(0.1 * mu0 if theta is None else theta, num_layers, "theta")
    s = x.new_zeros(x.shape[0], H.shape[1])
    history = []
    for k in range(num_layers):
        s = shrink(s + _mv(Ws[k], x - _mv(H, s)), thetas[k], k)
        history.append(s)
    return _finish(history, all_layers)


def soft_ss(v: torch.Tensor, t: Any, q: float) -> torch.Tensor:
    """Support selection, one sample at a time, as the LISTA-CPSS reference code selects
    (`tf.contrib.distributions.percentile(|v|, 100 - 100 q)`, "nearest"): the magnitudes sorted
    in decreasing order, the level is the one at index np.round((n - 1) q) (half to even)."""
    rows = []
    for row in v:
        ranked = np.sort(row.abs().numpy())[::-1]
        level = float(ranked[int(np.clip(np.round((len(ranked) - 1) * q), 0, len(ranked) - 1))])
        keep = (row.abs() > t) & (row.abs() > level)
        rows.append(torch.where(keep, row, soft(row, t)))
    return torch.stack(rows)


def lista_cpss(H, x, num_layers: int, W=None, theta=None, p_step: float = 0.012,
               p_max: float = 0.13, all_layers: bool = False):
    """LISTA-CPSS (Chen et al. 2018): `s <- soft_ss(s + W_t (x - H s), theta_t, q_t)` with the
    reference code's fraction `q_t = min(t * p_step, p_max)` at layer t = 1, 2, ...

    Args: as `lista_cp`, plus the schedule of the fraction of entries eligible to skip the
    threshold.
    """
    return _coupled(H, x, num_layers, W, theta,
                    lambda v, t, k: soft_ss(v, t, min((k + 1) * p_step, p_max)), all_layers)


def alista(A, W, y, num_layers: int, gamma=1.0, theta=None, p_step: float = 0.012,
           p_max: float = 0.13, all_layers: bool = False):
    """ALISTA (Liu et al. 2019), as its reference code: `x <- soft_ss(x + gamma_t W^T (y - A x),
    theta_t, q_t)` with `q_t = min(t * p_step, p_max)` at layer t = 1, 2, ...

    Args:
        A: the `(m, n)` sensing matrix.
        W: the `(m, n)` analytic weight.
        y: the `(B, m)` batch of measurements.
        num_layers: K.
        gamma: per-layer step sizes (init 1).
        theta: per-layer thresholds (init `0.4 / (1.001 ||A||_2^2)`).
        p_step, p_max: the support-selection schedule.
        all_layers: return every layer's output instead of the last one.

    Returns:
        `x : (B, n)`, or the list of it after each layer.
    """
    A, W, y = as64(A), as64(W), as64(y)
    init = 0.4 / (1.001 * float(torch.linalg.matrix_norm(A, 2)) ** 2)
    gammas = _per_layer(gamma, num_layers, "gamma")
    thetas = _per_layer(init if theta is None else theta, num_layers, "theta")
    x = y.new_zeros(y.shape[0], A.shape[1])
    history = []
    for k in range(num_layers):
        x = soft_ss(x + gammas[k] * _mv(W.T, y - _mv(A, x)), thetas[k],
                    min((k + 1) * p_step, p_max))
        history.append(x)
    return _finish(history, all_layers)


def fista(H, x, num_layers: int, mu=None, rho=0.1, all_layers: bool = False):
    """FISTA (Beck & Teboulle 2009): ISTA steps taken from an extrapolated point `z`.

    Per layer: `s_new = soft(z - mu H^T (H z - x), mu rho)`,
    `t_new = (1 + sqrt(1 + 4 t^2)) / 2`, `z <- s_new + ((t - 1) / t_new) (s_new - s)`,
    `s <- s_new`, `t <- t_new`, with `s = z = 0` and `t = 1` initially.

    Args:
        H: the `(m, n)` measurement matrix.
        x: the `(B, m)` batch of observations.
        num_layers: K.
        mu: per-layer step sizes (init `mu0`).
        rho: per-layer LASSO weights (init 0.1).
        all_layers: return every layer's output instead of the last one.

    Returns:
        `s : (B, n)`, or the list of it after each layer.
    """
    H, x = as64(H), as64(x)
    mus = _per_layer(step0(H) if mu is None else mu, num_layers, "mu")
    rhos = _per_layer(rho, num_layers, "rho")
    s = x.new_zeros(x.shape[0], H.shape[1])
    z = torch.zeros_like(s)
    t = 1.0
    history = []
    for k in range(num_layers):
        s_new = soft(z - mus[k] * _mv(H.T, _mv(H, z) - x), mus[k] * rhos[k])
        t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        z = s_new + ((t - 1.0) / t_new) * (s_new - s)
        s, t = s_new, t_new
        history.append(s)
    return _finish(history, all_layers)


def admm_lasso(H, x, num_layers: int, beta=1.0, rho: float = 0.1, all_layers: bool = False):
    """Scaled-form ADMM for the LASSO `min 0.5 ||H s - x||^2 + rho ||z||_1  s.t.  s = z`.

    Per layer: `s = solve(H^T H + beta I, H^T x + beta (z - u))`, `z <- soft(s + u, rho / beta)`,
    `u <- u + s - z`, with `z = u = 0` initially.

    Args:
        H: the `(m, n)` measurement matrix.
        x: the `(B, m)` batch of observations.
        num_layers: K.
        beta: per-layer penalty parameters (init 1).
        rho: the LASSO weight, fixed (0.1).
        all_layers: return every layer's output instead of the last one.

    Returns:
        `z : (B, n)`, or the list of it after each layer.
    """
    H, x = as64(H), as64(x)
    betas = _per_layer(beta, num_layers, "beta")
    n = H.shape[1]
    eye = torch.eye(n, dtype=DTYPE)
    z = x.new_zeros(x.shape[0], n)
    u = torch.zeros_like(z)
    history = []
    for k in range(num_layers):
        rhs = _mv(H.T, x) + betas[k] * (z - u)
        s = torch.linalg.solve(H.T @ H + betas[k] * eye, rhs.unsqueeze(-1)).squeeze(-1)
        z = soft(s + u, rho / betas[k])
        u = u + s - z
        history.append(z)
    return _finish(history, all_layers)


def rpca(Y, num_layers: int, mu=0.5, lam1=1.0, lam2=0.05, all_layers: bool = False):
    """Robust PCA by proximal gradient on `0.5 ||L + S - Y||^2 + lam1 ||L||_* + lam2 ||S||_1`.

    Per layer: `R = L + S - Y`, `L <- svt(L - mu R, mu lam1)`, `S <- soft(S - mu R, mu lam2)`;
    both updates use the same `R` (a joint gradient step, not alternating minimization).

    Args:
        Y: the `(B, m, n)` batch of observed matrices.
        num_layers: K.
        mu: per-layer step sizes (init 0.5, the inverse Lipschitz constant 1/2).
        lam1: per-layer nuclear-norm weights (init 1).
        lam2: per-layer l1 weights (init 0.05).
        all_layers: return every layer's `(L, S)` instead of the last one.

    Returns:
        The tuple `(L, S)`, both `(B, m, n)`, or the list of it after each layer.
    """
    Y = as64(Y)
    mus = _per_layer(mu, num_layers, "mu")
    lam1s = _per_layer(lam1, num_layers, "lam1")
    lam2s = _per_layer(lam2, num_layers, "lam2")
    L = torch.zeros_like(Y)
    S = torch.zeros_like(Y)
    history = []
    for k in range(num_layers):
        R = L + S - Y
        L, S = svt(L - mus[k] * R, mus[k] * lam1s[k]), soft(S - mus[k] * R, mus[k] * lam2s[k])
        history.append((L, S))
    return _finish(history, all_layers)


def tv_grad(u: np.ndarray) -> np.ndarray:
    """Forward differences of an `(h, w)` image, zero past the border (Chambolle 2004), the
    vertical ones stacked over the horizontal ones: `(2h, w)`."""
    h, w = u.shape
    g = np.zeros((2 * h, w))
    for i in range(h - 1):
        g[i] = u[i + 1] - u[i]
    for j in range(w - 1):
        g[h:, j] = u[:, j + 1] - u[:, j]
    return g


def tv_div(p: np.ndarray) -> np.ndarray:
    """The discrete divergence of Chambolle 2004, term by term (the negative adjoint of
    `tv_grad`): `(2h, w)` -> `(h, w)`."""
    h, w = p.shape[0] // 2, p.shape[1]
    px, py = p[:h], p[h:]
    out = np.zeros((h, w))
    for i in range(h):
        out[i] += (px[i] if i < h - 1 else 0) - (px[i - 1] if i > 0 else 0)
    for j in range(w):
        out[:, j] += (py[:, j] if j < w - 1 else 0) - (py[:, j - 1] if j > 0 else 0)
    return out


def chambolle_pock_tv(Y, num_layers: int, tau=0.35, sigma=0.35, lam=0.1,
                      all_layers: bool = False):
    """Chambolle-Pock for anisotropic TV denoising `0.5 ||X - Y||^2 + lam ||grad X||_1`, one
    image at a time in NumPy: `P <- clip(P + sigma grad Xbar, -lam, lam)`,
    `X_new = (X + tau div P + tau Y) / (1 + tau)`, `Xbar <- 2 X_new - X` (theta = 1).

    Args:
        Y: the `(B, h, w)` batch of noisy images (X and Xbar start at Y, P at zero).
        num_layers: K.
        tau, sigma, lam: primal step, dual step, TV weight.
        all_layers: return every layer's X instead of the last one.

    Returns:
        X, `(B, h, w)` float64 (a torch tensor), or the list of it after each layer.
    """
    Y = np.asarray(as64(Y).detach())
    out = []
    for y in Y:
        X, Xbar, P = y.copy(), y.copy(), np.zeros((2 * y.shape[0], y.shape[1]))
        history = []
        for _ in range(num_layers):
            P = np.clip(P + sigma * tv_grad(Xbar), -lam, lam)
            X_new = (X + tau * tv_div(P) + tau * y) / (1 + tau)
            Xbar, X = 2 * X_new - X, X_new
            history.append((X, P))
        out.append(history)
    layers = [torch.as_tensor(np.stack([h[k][0] for h in out])) for k in range(num_layers)]
    return _finish(layers, all_layers)
# --------------------------------------------------------------------------------------------
# Optimal transport and message passing (issue 12): NumPy, one sample at a time
# --------------------------------------------------------------------------------------------


def _np_logsumexp(v: np.ndarray) -> float:
    """log sum exp(v) with the largest entry shifted out (the textbook stable form)."""
    top = np.max(v)
    return float(top + np.log(np.sum(np.exp(v - top))))


def sinkhorn_log(C, a, b, num_layers: int, eps: float = 1e-3, all_layers: bool = False):
    """Log-domain Sinkhorn (Peyre & Cuturi 2019, Remark 4.23) in NumPy float64.

    Per layer, per sample: `f_i = eps log a_i - eps LSE_j((g_j - C_ij) / eps)`, then
    `g_j = eps log b_j - eps LSE_i((f_i - C_ij) / eps)` (with the new f), and the plan
    `P_ij = exp((f_i + g_j - C_ij) / eps)`.

    Args:
        C: the `(m, n)` cost.
        a: `(B, m)` source histograms; b: `(B, n)` target histograms.
        num_layers: K.
        eps: the entropic regularization.
        all_layers: return every layer's `(P, f, g)`.

    Returns:
        The tuple `(P, f, g)` of float64 tensors `(B, m, n)`, `(B, m)`, `(B, n)`.
    """
    C = np.asarray(as64(C).detach())
    a, b = np.asarray(as64(a).detach()), np.asarray(as64(b).detach())
    m, n = C.shape
    per_sample = []
    for s in range(a.shape[0]):
        f, g = np.zeros(m), np.zeros(n)
        layers = []
        for _ in range(num_layers):
            for i in range(m):
                f[i] = eps * np.log(a[s, i]) - eps * _np_logsumexp((g - C[i, :]) / eps)
            for j in range(n):
                g[j] = eps * np.log(b[s, j]) - eps * _np_logsumexp((f - C[:, j]) / eps)
            P = np.exp((f[:, None] + g[None, :] - C) / eps)
            layers.append((P.copy(), f.copy(), g.copy()))
        per_sample.append(layers)
    history = [tuple(torch.tensor(np.stack([per_sample[s][k][i] for s in range(a.shape[0])]))
                     for i in range(3)) for k in range(num_layers)]
    return _finish(history, all_layers)


def lamp(A, y, num_layers: int, B=None, alpha=1.1, all_layers: bool = False):
    """Learned AMP (Borgerding, Schniter & Rangan 2017) with soft thresholds, NumPy float64.

    Per layer, per sample: `r = xhat + B z`, `tau = alpha_k ||z|| / sqrt(m)`,
    `xhat = soft(r, tau)`, `z = y - A xhat + (#{i : |r_i| > tau} / m) z` (the Onsager term
    `z * mean(|r| > tau) / delta`, delta = m / n); xhat starts at 0 and z at y.

    Args:
        A: the `(m, n)` measurement matrix; y: `(B, m)` measurements.
        num_layers: K.
        B: the tied `(n, m)` matrix (default A^T: AMP).
        alpha: per-layer threshold multipliers (default 1.1).
        all_layers: return every layer's estimate.
    """
    A = np.asarray(as64(A).detach())
    y = np.asarray(as64(y).detach())
    m, n = A.shape
    Bm = A.T.copy() if B is None else np.asarray(as64(B).detach())
    alphas = [float(x) for x in _per_layer(alpha, num_layers, "alpha")]
    history = [np.zeros((y.shape[0], n)) for _ in range(num_layers)]
    for s in range(y.shape[0]):
        xhat, z = np.zeros(n), y[s].copy()
        for k in range(num_layers):
            r = xhat + Bm @ z
            tau = alphas[k] * np.sqrt(np.sum(z * z)) / np.sqrt(m)
            xhat = np.sign(r) * np.maximum(np.abs(r) - tau, 0.0)
            nonzeros = sum(1 for i in range(n) if abs(r[i]) > tau)
            z = y[s] - A @ xhat + (nonzeros / m) * z
            history[k][s] = xhat
    return _finish([torch.tensor(h) for h in history], all_layers)
