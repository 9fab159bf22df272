"""Per-layer evaluation: NMSE in dB (a ratio of sums over the set) and the objective."""

from __future__ import annotations

import math

import torch
from torch import nn

from unfoldc.train.binding import Binding
from unfoldc.train.criterion import run_network, to_model
from unfoldc.train.losses import sample_sq_norm
from unfoldc.train.tasks import Arrays


def to_db(ratio: float) -> float:
    """10 log10(ratio), -inf for an exact recovery."""
    return 10 * math.log10(ratio) if ratio > 0 else -math.inf


@torch.no_grad()
def evaluate(model: nn.Module, arrays: Arrays, binding: Binding, num_layers: int | None = None,
             chunk: int = 250, safeguard: float | None = None) -> dict[str, list[float] | None]:
    """NMSE (dB) and mean objective after each layer, over a whole fixed set.

    NMSE is `10 log10(sum ||x_hat - x||^2 / sum ||x||^2)` over the set, for the binding's primary
    output; the objective is `model.objective(...)` averaged over samples when the network has
    one.

    Args:
        model: the network.
        arrays: the set (task names, leading batch dimension).
        binding: maps task names to the network's.
        num_layers: evaluate the first g layers (default: all).
        chunk: samples per forward pass (bounds memory).
        safeguard: None, or the delta of a safeguarded run (`forward(..., safeguard=True)`).

    Returns:
        `{"nmse_db": [...] or None, "objective": [...] or None}`, one entry per layer.
    """
    g = model.num_layers if num_layers is None else num_layers
    sums = _Sums(g)
    rows = next(iter(arrays.values())).shape[0]
    for start in range(0, rows, chunk):
        part = to_model({k: v[start:start + chunk] for k, v in arrays.items()}, model)
        inputs = binding.model_inputs(part)
        outs = run_network(model, inputs, g, all_layers=True, safeguard=safeguard)
        sums.add(model, outs, inputs, binding.model_targets(part), binding.primary)
    return sums.result(rows)


class _Sums:
    """Accumulates per-layer error, signal and objective sums in float64."""

    def __init__(self, layers: int):
        self.err = [0.0] * layers
        self.ref = 0.0
        self.obj = [0.0] * layers if layers else None
        self.has_target = False
        self.has_objective = True

    def add(self, model, outs, inputs, targets, primary) -> None:
        self.has_target = primary is not None and primary in targets
        self.has_objective = callable(getattr(model, "objective", None))
        if self.has_target:
            self.ref += float(sample_sq_norm(targets[primary].double()).sum())
        for k, out in enumerate(outs):
            if self.has_target:
                diff = out[primary].double() - targets[primary].double()
                self.err[k] += float(sample_sq_norm(diff).sum())
            if self.has_objective:
                self.obj[k] += float(model.objective(**out, **inputs).double().sum())

    def result(self, rows: int) -> dict[str, list[float] | None]:
        nmse = [to_db(e / self.ref) for e in self.err] if self.has_target and self.ref else None
        objective = [o / rows for o in self.obj] if self.has_objective else None
        return {"nmse_db": nmse, "objective": objective}
