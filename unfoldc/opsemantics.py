"""Reference semantics of the operators that take more than a line to define.

The IR interpreter (`ir/interpreter.py`) evaluates an operator by its table entry's
`OPS[op].semantics`: a one-line function written in the entry itself (tensor methods: `ops.py`
does not import torch), or the name of a function here. Both are written from the operator's
mathematical definition, independently of its rendering in `ops.py` and of the helpers in
`codegen/helpers.py`: they work on one sample (unbatched tensors) and prefer the textbook
formula to the fast one, so that they serve as the oracle the generated code is tested against.

Calling conventions (`Semantics.call` in ops.py):
    values   fn(*argument values)
    shape    fn(shape, dtype): the value depends only on the result's (unbatched) shape
    binder   fn(evaluate, args, env): the operator binds a variable in one of its arguments, so
             it evaluates its (unevaluated) arguments itself with `evaluate(expr, env)`

This module imports torch only (never the IR nor `ops.py`).
"""

from __future__ import annotations

import torch


# ---- created values -----------------------------------------------------------------------------
def eye(shape, dtype):
    return torch.eye(shape[0], dtype=dtype)


def zeros(shape, dtype):
    return torch.zeros(shape, dtype=dtype)


def ones(shape, dtype):
    return torch.ones(shape, dtype=dtype)


# ---- linear algebra -----------------------------------------------------------------------------
def solve(a, b):
    return torch.linalg.solve(a, b)


def inv(a):
    return torch.linalg.inv(a)


def pinv(a):
    return torch.linalg.pinv(a)


def chol(a):
    return torch.linalg.cholesky(a)


def opnorm(a):
    """The largest singular value."""
    return torch.linalg.svdvals(a)[0]


def nucnorm(a):
    """The sum of the singular values."""
    return torch.linalg.svdvals(a).sum()


def eigvals(a):
    """Eigenvalues of a symmetric matrix, ascending."""
    return torch.linalg.eigvalsh(a)


def eigvecs(a):
    """Orthonormal eigenvectors (columns) of a symmetric matrix, by ascending eigenvalue."""
    return torch.linalg.eigh(a).eigenvectors


def _tsvd(a, r: int):
    u, sv, vh = torch.linalg.svd(a, full_matrices=False)
    root = torch.sqrt(sv[:r])
    return u[:, :r] * root, vh[:r, :].T * root


def tsvd_left(a, r):
    """U_r diag(sqrt(s_r)) of the rank-r truncated SVD."""
    return _tsvd(a, int(r))[0]


def tsvd_right(a, r):
    """V_r diag(sqrt(s_r)) of the rank-r truncated SVD."""
    return _tsvd(a, int(r))[1]


# ---- finite differences: as products with the difference matrices -----------------------------
def _forward_diff(n: int, dtype, pad: bool) -> torch.Tensor:
    """The (n - 1) x n matrix of v[i+1] - v[i]; with `pad`, n x n with a last row of zeros."""
    eye = torch.eye(n, dtype=dtype)
    d = eye[1:] - eye[:-1]
    return torch.cat([d, torch.zeros(1, n, dtype=dtype)]) if pad else d


def diff(v):
    return _forward_diff(v.shape[0], v.dtype, False) @ v


def diff_adj(p):
    return _forward_diff(p.shape[0] + 1, p.dtype, False).T @ p


def grad2d(u):
    m, n = u.shape
    return torch.cat([_forward_diff(m, u.dtype, True) @ u,
                      u @ _forward_diff(n, u.dtype, True).T])


def div2d(p):
    m, n = p.shape[0] // 2, p.shape[1]
    return -(_forward_diff(m, p.dtype, True).T @ p[:m] + p[m:] @ _forward_diff(n, p.dtype, True))


# ---- thresholds and proximal maps ---------------------------------------------------------------
def _norm2(v):
    return torch.sqrt((v * v).sum())


def soft_ss(v, t, q):
    """Entries above both t and the selection level pass; the others are soft(v, t). The level
    is the reference code's "nearest" percentile: the magnitude of rank round(q (n - 1)) in
    decreasing order, rounding half to even (Python's round, like TensorFlow's tf.round)."""
    a = v.abs()
    order = torch.sort(a, descending=True).values
    rank = min(max(round(float(q) * (a.numel() - 1)), 0), a.numel() - 1)
    keep = (a > t) & (a > order[rank])
    return torch.where(keep, v, torch.sign(v) * torch.clamp(a - t, min=0))


def svt(x, t):
    """Soft threshold of the singular values: the proximal map of t ||.||_* (nuclear norm)."""
    u, sv, vh = torch.linalg.svd(x, full_matrices=False)
    return u @ torch.diag_embed(torch.clamp(sv - t, min=0)) @ vh


def block_soft(v, t):
    """v max(1 - t / ||v||, 0), and 0 at v = 0: the proximal map of t ||.||_2."""
    norm = _norm2(v)
    if norm == 0:
        return torch.zeros_like(v)
    return v * torch.clamp(1 - t / norm, min=0)


def proj_simplex(v):
    """Euclidean projection onto {x >= 0, sum x = 1}: Michelot's algorithm on the sorted vector,
    tau from the largest k with u_k > (sum_{j<=k} u_j - 1) / k."""
    u = torch.sort(v, descending=True).values
    tau = None
    for k in range(1, v.numel() + 1):
        cand = (u[:k].sum() - 1) / k
        if u[k - 1] > cand:
            tau = cand
    return torch.clamp(v - tau, min=0)


def proj_l2ball(v, r):
    """The nearest point of the l2 ball of radius r."""
    norm = _norm2(v)
    return v if norm <= r else v * (r / norm)


# ---- masks and selections -----------------------------------------------------------------------
def _mask(holds, a, b):
    """1 where `holds`, else 0, in the operands' (promoted) dtype."""
    return holds.to(torch.result_type(a, b))


def lt(a, b):
    return _mask(a < b, a, b)


def le(a, b):
    return _mask(a <= b, a, b)


def gt(a, b):
    return _mask(a > b, a, b)


def ge(a, b):
    return _mask(a >= b, a, b)


def where(c, a, b):
    """a where c is nonzero, else b (all three broadcast)."""
    c, a, b = torch.broadcast_tensors(c, a, b)
    out = b.clone()
    out[c != 0] = a[c != 0]
    return out


# ---- reductions ---------------------------------------------------------------------------------
def trace(a):
    """The sum of the diagonal entries a[i, i]."""
    return sum(a[i, i] for i in range(a.shape[0]))


def logsumexp(a):
    """log sum exp(a), with the largest entry m shifted out: m + log sum exp(a - m)."""
    m = a.max()
    if not torch.isfinite(m):
        return m if m > 0 else torch.log(torch.exp(a).sum())  # +inf, or all entries -inf
    return m + torch.log(torch.exp(a - m).sum())


def logsumexp_rows(a):
    """The log-sum-exp of each row."""
    return torch.stack([logsumexp(row) for row in a])


# ---- indicators: 0 inside the set, +inf outside -------------------------------------------------
def _indicator(inside: bool, like):
    return torch.tensor(0.0 if inside else float("inf"), dtype=like.dtype)


def ind_box(v, lo, hi):
    return _indicator(bool(((v >= lo) & (v <= hi)).all()), v)


def ind_nonneg(v):
    return _indicator(bool((v >= 0).all()), v)


def ind_simplex(v):
    return _indicator(bool((v >= 0).all()) and bool((v.sum() - 1).abs() <= 1e-6), v)


def ind_l2ball(v, r):
    return _indicator(bool(_norm2(v) <= r), v)


# ---- operators the compiler writes --------------------------------------------------------------
def net(psi, *args):
    """A learned sub-network applied to its arguments: `psi` is the unbatched callable the
    interpreter's caller supplies for the net."""
    return psi(*args)


def autograd(evaluate, args, env):
    """The gradient of the scalar `value` in the bound `param`, at `at` (args: param, value, at)."""
    param, value, at = args
    point = evaluate(at, env).detach().requires_grad_(True)
    with torch.enable_grad():
        out = evaluate(value, {**env, param.name: point})
        (grad,) = torch.autograd.grad(out, point)
    return grad
