"""Source of the small helper functions a generated file may define (only those it uses).

They are written out into each generated file, so that it depends on torch alone.
"""

from __future__ import annotations

HELPERS: dict[str, str] = {
    "fill": '''
def fill(value, shape, like):
    """`value` (a number or a tensor) broadcast to `shape`, in the dtype/device of `like`."""
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return value.expand(shape).clone()
''',
    "eye": '''
def eye(n, like):
    """The n x n identity in the dtype/device of `like`."""
    return torch.eye(n, dtype=like.dtype, device=like.device)
''',
    "zeros": '''
def zeros(shape, like):
    """Zeros of `shape` in the dtype/device of `like`."""
    return like.new_zeros(shape)
''',
    "ones": '''
def ones(shape, like):
    """Ones of `shape` in the dtype/device of `like`."""
    return like.new_ones(shape)
''',
    "opnorm": '''
def opnorm(a):
    """Spectral norm: the largest singular value."""
    return torch.linalg.matrix_norm(a, ord=2)
''',
    "soft": '''
def soft(v, t):
    """Soft threshold sign(v) * max(|v| - t, 0), elementwise."""
    return torch.sign(v) * torch.relu(torch.abs(v) - t)
''',
    "hard": '''
def hard(v, t):
    """Hard threshold: keep the entries with |v| > t, zero the others."""
    return v * (torch.abs(v) > t).to(v.dtype)
''',
    "svt": '''
def svt(x, t):
    """Singular value thresholding: soft-threshold the singular values of (each) matrix x."""
    u, sv, vh = torch.linalg.svd(x, full_matrices=False)
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    sv = torch.relu(sv - (t.unsqueeze(-1) if t.dim() > 0 else t))
    return u @ (sv.unsqueeze(-1) * vh)
''',
    "proj_simplex": '''
def proj_simplex(v):
    """Euclidean projection of (each) vector onto the probability simplex (sort-based)."""
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = torch.cumsum(u, dim=-1) - 1
    ks = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    count = (u - css / ks > 0).sum(dim=-1, keepdim=True)
    tau = torch.gather(css, -1, count - 1) / count.to(v.dtype)
    return torch.relu(v - tau)
''',
    "proj_l2ball": '''
def proj_l2ball(v, r):
    """Projection of (each) vector onto the l2 ball of radius r."""
    norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    r = torch.as_tensor(r, dtype=v.dtype, device=v.device)
    r = r.unsqueeze(-1) if r.dim() > 0 else r
    return v * torch.clamp(r / torch.clamp(norm, min=torch.finfo(v.dtype).tiny), max=1)
''',
    "interval": '''
def interval(raw, init, lo, hi):
    """A value in [lo, hi] equal to `init` exactly where raw == 0 (tanh on either side)."""
    up = init + (hi - init) * torch.tanh(raw)
    down = init + (init - lo) * torch.tanh(raw)
    return torch.where(raw >= 0, up, down)
''',
}

# Fixed order of helpers in generated files (determinism).
ORDER = tuple(HELPERS)
