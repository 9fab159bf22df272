"""Hand-written PyTorch unfolded networks: the baseline generated modules are measured against.

Each class is what a careful engineer would write by hand for the same algorithm, with the same
inits as the reference loops (`tests/reference_loops.py`), plus a naive ISTA that shows what the
loop-invariant hoisting is worth. They follow the calling and parameter layout of generated
modules (see docs/generated-module.md) so that weights and calls carry over:

- constructor `(H, num_layers=16)`; `H` becomes a buffer and sets dtype and device;
- per-layer trainables live in `model.layers[k]` (`layers.3.mu` in the state dict), stored
  unconstrained;
- `model(x, num_layers=None, all_layers=False)` with `x : (B, m)` returns `s : (B, n)`, or the
  list of every layer's output.

Batched vectors are rows, so the per-sample product `A v` is written `v @ A.T` throughout.
"""

from __future__ import annotations

import torch
from torch import nn


def soft(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Soft thresholding `sign(v) * max(|v| - t, 0)`.

    Written with `relu` rather than `v - clamp(v, -t, t)`: with a tensor threshold the clamp form
    measured about 4x slower forward+backward on CPU (torch 2.13, a (256, 500) batch).
    """
    return torch.sign(v) * torch.relu(v.abs() - t)


def step0(H: torch.Tensor) -> float:
    """Return `mu0 = 1 / opnorm(H)^2`."""
    return 1.0 / torch.linalg.matrix_norm(H.detach(), ord=2).item() ** 2


class _ScalarLayer(nn.Module):
    """One layer's scalar trainables, named as in the spec (`mu`, `rho`, `theta`, ...)."""

    def __init__(self, like: torch.Tensor, **inits: float) -> None:
        super().__init__()
        for name, value in inits.items():
            self.register_parameter(name, nn.Parameter(like.new_tensor(value)))


class _UnfoldedBase(nn.Module):
    """Shared constructor and layer-count handling; subclasses implement `_run`."""

    def __init__(self, H: torch.Tensor, num_layers: int) -> None:
        super().__init__()
        self.register_buffer("H", H.detach().clone())
        self.num_layers = num_layers
        self.mu0 = step0(H)

    def forward(
        self, x: torch.Tensor, num_layers: int | None = None, all_layers: bool = False
    ) -> torch.Tensor | list[torch.Tensor]:
        """Run the first `num_layers` layers (all by default) on the batch `x : (B, m)`.

        Args:
            x: the `(B, m)` batch of observations.
            num_layers: how many layers to run, at most `self.num_layers`.
            all_layers: return the list of every layer's output instead of the last one.

        Returns:
            `s : (B, n)`, or the list of it after each layer.
        """
        count = self.num_layers if num_layers is None else num_layers
        if not 1 <= count <= self.num_layers:
            raise ValueError(f"num_layers must be in 1..{self.num_layers}, got {count}")
        history = self._run(x, count)
        return history if all_layers else history[-1]

    def _run(self, x: torch.Tensor, count: int) -> list[torch.Tensor]:
        raise NotImplementedError(type(self).__name__)


class LearnedISTA(_UnfoldedBase):
    """ISTA with learned per-layer `mu` (init mu0) and `rho` (init 0.1).

    Layer: `s <- soft(s - mu (H^T H s - H^T x), mu rho)`. `H^T H` and `H^T x` do not change from
    layer to layer, so they are computed once per forward; each layer then costs one `(B, n, n)`
    product instead of two `(B, n, m)` ones. (That wins when m > n / 2; at m = n / 2 the two cost
    the same and hoisting only adds the `H^T H` product.) `H^T H` is computed in forward rather
    than cached at construction so that `H` may be swapped or moved like any buffer.
    """

    def __init__(self, H: torch.Tensor, num_layers: int = 16) -> None:
        super().__init__(H, num_layers)
        self.layers = nn.ModuleList(
            _ScalarLayer(self.H, mu=self.mu0, rho=0.1) for _ in range(num_layers)
        )

    def _run(self, x: torch.Tensor, count: int) -> list[torch.Tensor]:
        gram = self.H.T @ self.H  # symmetric, so s @ gram.T == s @ gram
        htx = x @ self.H
        s = x.new_zeros(x.shape[0], self.H.shape[1])
        history = []
        for layer in self.layers[:count]:
            s = soft(s - layer.mu * (s @ gram - htx), layer.mu * layer.rho)
            history.append(s)
        return history


class NaiveISTA(LearnedISTA):
    """`LearnedISTA` without hoisting: every layer recomputes `H^T (H s - x)` from `H`."""

    def _run(self, x: torch.Tensor, count: int) -> list[torch.Tensor]:
        H = self.H
        s = x.new_zeros(x.shape[0], H.shape[1])
        history = []
        for layer in self.layers[:count]:
            s = soft(s - layer.mu * ((s @ H.T - x) @ H), layer.mu * layer.rho)
            history.append(s)
        return history


class _LISTALayer(nn.Module):
    """One LISTA layer's trainables: `W1 (n, m)`, `W2 (n, n)` and the threshold `theta`."""

    def __init__(self, W1: torch.Tensor, W2: torch.Tensor, theta: float) -> None:
        super().__init__()
        self.W1 = nn.Parameter(W1.clone())
        self.W2 = nn.Parameter(W2.clone())
        self.theta = nn.Parameter(W1.new_tensor(theta))


class LISTA(_UnfoldedBase):
    """LISTA (Gregor & LeCun 2010): `s <- soft(W2 s + W1 x, theta)`, untied weights.

    Inits: `W1 = mu0 H^T`, `W2 = I - mu0 H^T H`, `theta = 0.1 mu0` (so the untrained network is
    ISTA). Every weight is per layer, so no product is loop invariant: `x @ W1.T` is computed in
    each layer, and `addmm` fuses the sum into the `W2` product.
    """

    def __init__(self, H: torch.Tensor, num_layers: int = 16) -> None:
        super().__init__(H, num_layers)
        H = self.H
        W1 = self.mu0 * H.T
        W2 = torch.eye(H.shape[1], dtype=H.dtype, device=H.device) - self.mu0 * H.T @ H
        self.layers = nn.ModuleList(_LISTALayer(W1, W2, 0.1 * self.mu0) for _ in range(num_layers))

    def _run(self, x: torch.Tensor, count: int) -> list[torch.Tensor]:
        s = x.new_zeros(x.shape[0], self.H.shape[1])
        history = []
        for layer in self.layers[:count]:
            s = soft(torch.addmm(x @ layer.W1.T, s, layer.W2.T), layer.theta)
            history.append(s)
        return history
