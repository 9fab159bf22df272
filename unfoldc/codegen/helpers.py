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
    "as_mask": '''
def as_mask(condition, like):
    """1 where `condition` holds, else 0, in the dtype/device of `like` (no gradient flows)."""
    return torch.as_tensor(condition, device=like.device).to(like.dtype)
''',
    "svt": '''
def svt(x, t):
    """Singular value thresholding: soft-threshold the singular values of (each) matrix x.

    A matrix with a NaN or infinite entry gives NaN, as elementwise operators do, instead of
    an SVD error: a diverging network is then caught as divergence."""
    finite = torch.isfinite(x).all(dim=-1, keepdim=True).all(dim=-2, keepdim=True)
    u, sv, vh = torch.linalg.svd(torch.where(finite, x, 0.0), full_matrices=False)
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    sv = torch.relu(sv - (t.unsqueeze(-1) if t.dim() > 0 else t))
    return torch.where(finite, u @ (sv.unsqueeze(-1) * vh), torch.nan)
''',
    "diff_adj": '''
def diff_adj(p):
    """The adjoint of torch.diff (forward differences): p[i - 1] - p[i], p[-1] = p[n - 1] = 0."""
    zero = torch.zeros_like(p[..., :1])
    padded = torch.cat([zero, p, zero], dim=-1)
    return padded[..., :-1] - padded[..., 1:]
''',
    "grad2d": '''
def grad2d(u):
    """Forward differences of (each) m x n image, zero past the last row / column (Chambolle
    2004): the vertical differences (rows 0..m-1) stacked over the horizontal (m..2m-1)."""
    dx = torch.cat([u[..., 1:, :] - u[..., :-1, :], torch.zeros_like(u[..., :1, :])], dim=-2)
    dy = torch.cat([u[..., :, 1:] - u[..., :, :-1], torch.zeros_like(u[..., :, :1])], dim=-1)
    return torch.cat([dx, dy], dim=-2)
''',
    "div2d": '''
def div2d(p):
    """Discrete divergence of (each) stacked pair of m x n fields, the negative adjoint of
    grad2d: <grad2d(u), p> = -<u, div2d(p)> (Chambolle 2004)."""
    m = p.shape[-2] // 2
    px, py = p[..., :m, :], p[..., m:, :]
    zx, zy = torch.zeros_like(px[..., :1, :]), torch.zeros_like(py[..., :, :1])
    ex = torch.cat([zx, px[..., :-1, :], zx], dim=-2)  # grad2d's zero last row is not read
    ey = torch.cat([zy, py[..., :, :-1], zy], dim=-1)
    return (ex[..., 1:, :] - ex[..., :-1, :]) + (ey[..., :, 1:] - ey[..., :, :-1])
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
    "positive": '''
def positive(raw, init):
    """init * exp(raw): equal to `init` where raw == 0, and > 0 even where exp(raw) underflows."""
    return torch.clamp(init * torch.exp(raw), min=torch.finfo(raw.dtype).tiny)
''',
    "soft_ss": '''
def soft_ss(v, t, q):
    """Soft threshold with support selection (LISTA-CPSS), selecting as the reference code does
    (TensorFlow's `percentile`, "nearest" rule): with the magnitudes of each vector sorted in
    decreasing order, the level is entry round(q (n - 1)) (ties to even); entries above both the
    level and t pass unchanged, the others are soft-thresholded by t. The selection is a mask
    (not differentiated)."""
    a = torch.abs(v)
    n = v.shape[-1]
    q = torch.as_tensor(q, dtype=torch.float64, device=v.device)  # the reference's precision
    rank = torch.round(q * (n - 1)).clamp(0, n - 1).long().unsqueeze(-1)
    ranked = torch.sort(a, dim=-1, descending=True).values
    level = torch.gather(ranked, -1, rank.expand(a.shape[:-1] + (1,)))
    keep = (a > t) & (a > level)
    return torch.where(keep, v, torch.sign(v) * torch.relu(a - t))
''',
    "block_soft": '''
def block_soft(v, t):
    """Block soft threshold v * max(1 - t / ||v||, 0): the proximal map of t * norm2."""
    norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    t = torch.as_tensor(t, dtype=v.dtype, device=v.device)
    t = t.unsqueeze(-1) if t.dim() > 0 else t
    return v * torch.relu(1 - t / torch.clamp(norm, min=torch.finfo(v.dtype).tiny))
''',
    "indicator": '''
def indicator(inside):
    """0 where `inside` holds, +inf elsewhere: the value of a set's indicator function."""
    zero = torch.zeros((), dtype=torch.get_default_dtype(), device=inside.device)
    return torch.where(inside, zero, torch.full_like(zero, float("inf")))
''',
    "eigvals": '''
def eigvals(a):
    """Eigenvalues of the symmetric matrix a, ascending."""
    return torch.linalg.eigvalsh(a)
''',
    "eigvecs": '''
def eigvecs(a):
    """Orthonormal eigenvectors (columns) of the symmetric matrix a, by ascending eigenvalue."""
    return torch.linalg.eigh(a).eigenvectors
''',
    "tsvd": '''
def tsvd_left(a, r):
    """U_r diag(sqrt(s_r)): the left factor of the rank-r truncated SVD of (each) matrix a."""
    u, sv, _ = torch.linalg.svd(a, full_matrices=False)
    return u[..., :r] * sv[..., None, :r].sqrt()


def tsvd_right(a, r):
    """V_r diag(sqrt(s_r)), so that tsvd_left(a, r) @ tsvd_right(a, r).mT has rank r."""
    _, sv, vh = torch.linalg.svd(a, full_matrices=False)
    return vh[..., :r, :].mT * sv[..., None, :r].sqrt()
''',
    "autograd_grad": '''
def autograd_grad(value, v):
    """Gradient of the per-sample scalar value(v) at v, by autograd (kept differentiable)."""
    with torch.enable_grad():
        leaf = v if v.requires_grad else v.detach().requires_grad_(True)
        total = value(leaf).sum()
        (grad,) = torch.autograd.grad(total, leaf, create_graph=torch.is_grad_enabled())
    return grad
''',
    "interval": '''
def interval(raw, init, lo, hi):
    """A value in [lo, hi] equal to `init` exactly where raw == 0 (tanh on either side)."""
    up = init + (hi - init) * torch.tanh(raw)
    down = init + (init - lo) * torch.tanh(raw)
    # Where tanh saturates, `init + (hi - init)` can round one ulp past `hi`.
    return torch.clamp(torch.where(raw >= 0, up, down), lo, hi)
''',
}

# Fixed order of helpers in generated files (determinism).
ORDER = tuple(HELPERS)

# The helpers whose last parameter is `like` (dtype and device of the tensors they make): code
# that calls one reads the local `like` (codegen/liveness.py). tests/test_liveness.py checks
# this against the definitions above.
TAKES_LIKE = frozenset({"fill", "eye", "zeros", "ones", "as_mask"})


# Learned sub-networks (semantics/nets.py): written into generated files that declare a `net`.
HELPERS["activations"] = '''
ACTIVATIONS = {
    "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
    "gelu": nn.functional.gelu, "elu": nn.functional.elu, "softplus": nn.functional.softplus,
}
'''
HELPERS["init_layers"] = '''
def init_layers(layers, generator, zero_last):
    """PyTorch's default uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) init, drawn from `generator`
    (reproducible from the seed); with zero_last the last layer starts at exactly zero."""
    with torch.no_grad():
        for i, layer in enumerate(layers):
            if zero_last and i == len(layers) - 1:
                layer.weight.zero_()
                layer.bias.zero_()
                continue
            bound = layer.weight[0].numel() ** -0.5
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
'''
HELPERS["mlp"] = '''
class MLP(nn.Module):
    """Fully connected net: concatenated vector arguments -> hidden layers -> a vector."""

    def __init__(self, sizes, out, hidden, generator, act="relu", residual=False,
                 zero_last=False):
        super().__init__()
        widths = [sum(sizes), *hidden, out]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.act = ACTIVATIONS[act]
        self.residual = residual
        init_layers(self.linears, generator, zero_last)

    def forward(self, *args):
        batch = torch.broadcast_shapes(*(a.shape[:-1] for a in args))
        h = torch.cat([a.expand(*batch, a.shape[-1]) for a in args], dim=-1)
        for i, linear in enumerate(self.linears):
            h = linear(h)
            if i < len(self.linears) - 1:
                h = self.act(h)
        return args[0] + h if self.residual else h
'''
HELPERS["convnet"] = '''
class ConvNet(nn.Module):
    """Same-size convolutions over signals (dim 1) or images (dim 2): the arguments are
    stacked as channels, `depth` layers map them to one output channel."""

    def __init__(self, dim, n_in, channels, kernel, depth, generator, act="relu",
                 residual=False, zero_last=False):
        super().__init__()
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        widths = [n_in] + [channels] * (depth - 1) + [1]
        self.convs = nn.ModuleList(
            conv(a, b, kernel, padding=kernel // 2) for a, b in zip(widths, widths[1:])
        )
        self.dim = dim
        self.act = ACTIVATIONS[act]
        self.residual = residual
        init_layers(self.convs, generator, zero_last)

    def forward(self, *args):
        d = self.dim
        batch = torch.broadcast_shapes(*(a.shape[:-d] for a in args))
        h = torch.stack([a.expand(*batch, *a.shape[-d:]) for a in args], dim=-d - 1)
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.convs) - 1:
                h = self.act(h)
        h = h.squeeze(-d - 1)
        return args[0] + h if self.residual else h
'''
ORDER = tuple(HELPERS)
