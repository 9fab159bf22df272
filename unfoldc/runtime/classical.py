"""The classical layer and the safeguard of a generated network: real, linted, unit-tested Python.

The code generator copies these definitions into the generated modules that use them (read as
text, see unfoldc/codegen/runtime.py), so a generated file still imports only torch. Nothing
here imports unfoldc.
"""

from __future__ import annotations

import copy

import torch


def frozen(module):
    """A copy of `module` whose parameters became non-persistent buffers.

    The copy follows `.to()` / `.double()` with its network, is never trained (it has no
    parameters) and is not written to `state_dict()`: the network rebuilds it from `seed`.
    """
    module = copy.deepcopy(module)
    for sub in module.modules():
        for name, value in list(sub.named_parameters(recurse=False)):
            delattr(sub, name)
            sub.register_buffer(name, value.detach(), persistent=False)
    return module


class Safeguard:
    """Safeguarded learned updates (Heaton, Chen, Wang, Yin, "Safeguarded Learned Convex
    Optimization", AAAI 2023), per sample.

    T_k is classical layer k, `classical_step(k, states)`: one map T in every layer unless the
    spec reads the layer index, a schedule `v[layer]` or a periodic trainable. With residual
    R_k(s) = ||s - T_k(s)|| over all states and mu_1 = R_0(s_1), layer k's learned update
    y = L_k(s_k) is accepted when R_k(y) <= (1 - delta) mu_k; mu then follows the paper's
    exponential moving average, mu_{k+1} = theta R_k(y) + (1 - theta) mu_k. Otherwise the layer
    falls back on T_k(s_k) and mu_{k+1} = mu_k. Where T is averaged (e.g. ISTA with step
    <= 1/L), the safeguarded sequence converges to a fixed point of T whatever the learned layers
    do. Gradients flow through the branch each sample takes; the test itself (R_k(y), mu) carries
    none.
    """

    def __init__(self, classical_step, states, delta, theta):
        if not 0 < delta < 1:
            raise ValueError(f"safeguard_delta must be in (0, 1), got {delta!r}")
        if not 0 < theta <= 1:
            raise ValueError(f"safeguard_theta must be in (0, 1], got {theta!r}")
        self.step, self.delta, self.theta = classical_step, delta, theta
        with torch.no_grad():
            self.mu = self.residual(states, self.step(0, states))
        self.fallback_counts = []  # per layer: how many samples took the classical update

    @staticmethod
    def residual(a, b):
        """Per-sample Euclidean norm of a - b over every state (each (B, ...))."""
        total = 0
        for u, v in zip(a, b, strict=True):
            total = total + (u - v).flatten(1).square().sum(dim=1)
        return total.sqrt()

    def __call__(self, k, states, learned):
        """The states after safeguarded layer k: `learned` where accepted, else T_k(states)."""
        with torch.no_grad():
            residual = self.residual(learned, self.step(k, learned))
            accept = residual <= (1 - self.delta) * self.mu  # NaN or inf: never accepted
            self.mu = torch.where(accept, self.theta * residual + (1 - self.theta) * self.mu,
                                  self.mu)
        self.fallback_counts.append((~accept).sum())
        fallback = self.step(k, states)
        return tuple(torch.where(accept.reshape((-1,) + (1,) * (y.dim() - 1)), y, t)
                     for y, t in zip(learned, fallback, strict=True))

    def fallbacks(self):
        """Per layer, the number of samples that fell back on the classical update."""
        return [int(c) for c in self.fallback_counts]
