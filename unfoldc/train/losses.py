"""Losses on named outputs, normalised over the global batch.

A loss is a per-sample numerator and a per-sample denominator; a batch's value is
`sum(numerator over the local shard) / sum(denominator over the global batch)`. Summing that over
the ranks of a distributed run gives exactly the single-process value (and gradient), which a
mean of per-rank NMSEs would not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from unfoldc.train.errors import ConfigError

PerSample = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sample_sq_norm(t: torch.Tensor) -> torch.Tensor:
    """Squared norm of each sample (all dimensions but the first)."""
    return t.pow(2).flatten(1).sum(1)


def _ones(target: torch.Tensor) -> torch.Tensor:
    return target.new_ones(target.shape[0])


@dataclass(frozen=True)
class Loss:
    """A loss as a per-sample numerator over a per-sample denominator."""

    name: str
    numerator: PerSample
    denominator: Callable[[torch.Tensor], torch.Tensor]


def _mse_numerator(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return sample_sq_norm(pred - target) / target[0].numel()


def _nmse_numerator(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return sample_sq_norm(pred - target)


MSE = Loss("mse", _mse_numerator, _ones)
NMSE = Loss("nmse", _nmse_numerator, sample_sq_norm)


def custom_loss(fn: PerSample) -> Loss:
    """Wrap a user callable `fn(pred, target)`, returning per-sample values or their mean."""

    def numerator(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        value = fn(pred, target)
        if value.dim() == 0:
            # A scalar is read as the mean over this shard, so it counts once per sample.
            return value.expand(pred.shape[0])
        if value.shape != (pred.shape[0],):
            raise ConfigError(f"custom loss `{_name(fn)}` must return a scalar or one value per "
                              f"sample, got shape {tuple(value.shape)}")
        return value

    return Loss(_name(fn), numerator, _ones)


def _name(fn) -> str:
    return getattr(fn, "__qualname__", type(fn).__name__)


def resolve_loss(loss: str | Loss | PerSample) -> Loss:
    """`"mse"`, `"nmse"`, a `Loss`, or a callable -> `Loss`."""
    if isinstance(loss, Loss):
        return loss
    if callable(loss):
        return custom_loss(loss)
    table = {"mse": MSE, "nmse": NMSE}
    if loss not in table:
        raise ConfigError(f"unknown loss `{loss}`; use `mse`, `nmse` or a callable")
    return table[loss]


def layer_weights(weights: str | Sequence[float], num_layers: int) -> list[float]:
    """Deep-supervision weights, one per layer.

    Args:
        weights: `"uniform"` (1/K each), `"log"` (log(k+1) for layer k = 1..K, scaled to sum
            to 1, so later layers count more), or an explicit sequence used as given.
        num_layers: K.

    Returns:
        K floats.
    """
    if weights == "uniform":
        return [1.0 / num_layers] * num_layers
    if weights == "log":
        raw = [math.log(k + 1) for k in range(1, num_layers + 1)]
        return [w / sum(raw) for w in raw]
    if isinstance(weights, str):
        raise ConfigError(f"unknown layer weights `{weights}`; use `uniform`, `log` or a list")
    weights = [float(w) for w in weights]
    if len(weights) != num_layers or min(weights) < 0:
        raise ConfigError(f"layer weights must be {num_layers} nonnegative numbers, "
                          f"got {len(weights)}")
    return weights
