"""Hand-written stand-ins for compiled networks, following docs/generated-module.md exactly.

The training tests run against these until the compiler core can compile `examples/ista.unf`;
they also cover corners a single example does not (a shared trainable, the `checkpoint=` forward
argument proposed to codegen).

`LearnedISTA` is ISTA for the LASSO `0.5 ||H s - x||^2 + lam ||s||_1` with a learned step `mu`
(positive) and threshold weight `rho` (nonnegative) per layer:
`s <- soft(s - mu H^T (H s - x), mu rho)`, started from `s = 0`.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

SOURCE = """algorithm learned_ista
given H: matrix[m, n]
input x: vector[m]
output s: vector[n]
param lam = 0.1
trainable mu: positive per_layer = 1 / norm2(H)^2
trainable rho: nonneg per_layer = lam
layers 16
s <- soft(s - mu * H.T @ (H @ s - x), mu * rho)
"""


def _inverse_softplus(value: float) -> float:
    """Raw value whose softplus is `value` (used to start `rho` at `lam`)."""
    return value + math.log(-math.expm1(-value))


def _soft(z: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    return torch.sign(z) * torch.clamp(z.abs() - threshold, min=0)


class _Layer(nn.Module):
    """One layer's trainables, stored raw and exposed constrained (the contract's layout)."""

    def __init__(self, mu: float, rho: float, dtype, device, with_mu: bool = True):
        super().__init__()
        if with_mu:
            self.mu_log = nn.Parameter(torch.tensor(math.log(mu), dtype=dtype, device=device))
        self.rho_raw = nn.Parameter(
            torch.tensor(_inverse_softplus(rho), dtype=dtype, device=device)
        )

    @property
    def mu(self) -> torch.Tensor:
        return torch.exp(self.mu_log)

    @property
    def rho(self) -> torch.Tensor:
        return nn.functional.softplus(self.rho_raw)


class LearnedISTA(nn.Module):
    """Learned ISTA: per-layer step `mu` and threshold weight `rho`."""

    SPEC_NAME = "learned_ista"
    SPEC_SHA256 = hashlib.sha256(SOURCE.encode()).hexdigest()
    GIVENS = ("H",)
    INPUTS = ("x",)
    OUTPUTS = ("s",)
    STATES = ("s",)
    PARAMS = ("lam",)
    TRAINABLES = {"mu": "per_layer", "rho": "per_layer"}
    DEFAULT_LAYERS = 16

    def __init__(self, *, num_layers: int = DEFAULT_LAYERS, H: torch.Tensor, lam: float = 0.1):
        super().__init__()
        self.num_layers = num_layers
        self.lam = lam
        self.register_buffer("H", H)
        step = 1.0 / float(torch.linalg.matrix_norm(H.double(), 2) ** 2)
        self.layers = nn.ModuleList(
            self._make_layer(step, lam, H.dtype, H.device) for _ in range(num_layers)
        )

    def _make_layer(self, step, lam, dtype, device) -> nn.Module:
        return _Layer(step, lam, dtype, device)

    def _mu(self, k: int) -> torch.Tensor:
        return self.layers[k].mu

    def _update(self, s, x, mu, rho):
        grad = (s @ self.H.T - x) @ self.H
        return _soft(s - mu * grad, mu * rho)

    def forward(self, x=None, *, num_layers=None, all_layers=False, checkpoint=False):
        g = self.num_layers if num_layers is None else num_layers
        if not 0 < g <= self.num_layers:
            raise ValueError(f"num_layers must be in 1..{self.num_layers}, got {g}")
        s = x.new_zeros(x.shape[0], self.H.shape[1])
        outs = []
        for k in range(g):
            args = (s, x, self._mu(k), self.layers[k].rho)
            if checkpoint:
                s = torch_checkpoint(self._update, *args, use_reentrant=False)
            else:
                s = self._update(*args)
            outs.append(s)
        return outs if all_layers else s

    def objective(self, *, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-sample LASSO objective `0.5 ||H s - x||^2 + lam ||s||_1`."""
        residual = s @ self.H.T - x
        return 0.5 * (residual**2).sum(-1) + self.lam * s.abs().sum(-1)


class SharedStepISTA(LearnedISTA):
    """Learned ISTA with one step `mu` shared by all layers and a per-layer `rho`."""

    SPEC_NAME = "shared_step_ista"
    SPEC_SHA256 = hashlib.sha256((SOURCE + "shared mu").encode()).hexdigest()
    TRAINABLES = {"mu": "shared", "rho": "per_layer"}

    def __init__(self, *, num_layers: int = 16, H: torch.Tensor, lam: float = 0.1):
        super().__init__(num_layers=num_layers, H=H, lam=lam)
        step = 1.0 / float(torch.linalg.matrix_norm(H.double(), 2) ** 2)
        self.mu_log = nn.Parameter(torch.tensor(math.log(step), dtype=H.dtype, device=H.device))

    def _make_layer(self, step, lam, dtype, device) -> nn.Module:
        return _Layer(step, lam, dtype, device, with_mu=False)

    @property
    def mu(self) -> torch.Tensor:
        return torch.exp(self.mu_log)

    def _mu(self, k: int) -> torch.Tensor:
        return self.mu


def make_matrix(m: int = 20, n: int = 40, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """A small Gaussian matrix with unit-norm columns, for tests."""
    gen = torch.Generator().manual_seed(seed)
    H = torch.randn(m, n, generator=gen, dtype=dtype) / math.sqrt(m)
    return H / H.norm(dim=0, keepdim=True)
