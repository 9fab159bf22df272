"""Training schemes as lists of stages.

A stage says which parameters train, at which learning-rate multipliers (Adam param groups, so
the multiplier really scales the step: Adam would cancel a gradient scaling), through how many
layers, with which supervision, and when it ends. Every scheme is a list of stages; one loop
(`loop.py`) runs them all.

Shared (non-per-layer) parameters in layer-wise training: with `shared="first"` (the default,
as in the LISTA-CPSS / ALISTA reference code, where tied weights belong to the first layer's
variables) they are trained with layer 1 and decay like layer 1 afterwards. With
`shared="refine"` they are frozen while a new layer trains alone and join every refinement at the
stage's factor with no decay, so that later layers can still adapt them.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from unfoldc.train.errors import ConfigError

SCHEMES = ("end-to-end", "deep-supervision", "layerwise", "incremental", "unsupervised")


@dataclass(frozen=True)
class Stage:
    """One phase of training.

    Attributes:
        name: shown in the progress line and the history.
        num_layers: layers run in the forward pass (`num_layers=g`).
        groups: (parameter names, lr multiplier) pairs; all other parameters are frozen.
        supervision: `"final"` (loss on layer g's output) or `"all"` (weighted, every layer).
        max_steps: step cap.
        patience: end after this many steps without a better validation NMSE (None: never).
    """

    name: str
    num_layers: int
    groups: tuple[tuple[tuple[str, ...], float], ...]
    supervision: str
    max_steps: int
    patience: int | None


def layer_params(model: nn.Module, k: int) -> tuple[str, ...]:
    """Names of layer k's parameters (0-based k), as in `model.named_parameters()`."""
    prefix = f"layers.{k}."
    return tuple(n for n, p in model.named_parameters() if n.startswith(prefix))


def shared_params(model: nn.Module) -> tuple[str, ...]:
    """Names of the parameters that belong to no layer."""
    return tuple(n for n, _ in model.named_parameters() if not n.startswith("layers."))


def _all_params(model: nn.Module, g: int) -> tuple[str, ...]:
    names = shared_params(model)
    for k in range(g):
        names += layer_params(model, k)
    return names


def whole_network(model, steps, patience, supervision="final", name="end-to-end"):
    """One stage training every parameter through all layers."""
    K = model.num_layers
    return [Stage(name, K, ((_all_params(model, K), 1.0),), supervision, steps, patience)]


def incremental(model, steps, patience, supervision="final"):
    """Generations g = 1..K, each training the first g layers (and shared ones) jointly."""
    return [
        Stage(f"generation {g}", g, ((_all_params(model, g), 1.0),), supervision, steps,
              patience)
        for g in range(1, model.num_layers + 1)
    ]


def layerwise(model, steps, patience, refine=(0.2, 0.02), decay=0.3, shared="first"):
    """LISTA-CPSS / ALISTA layer-wise training with refinement.

    For layer t = 1..K: train layer t alone at the base rate, then layers 1..t at each `refine`
    factor, where layer k's rate is further multiplied by `decay ** (t - k)` (one factor per
    later layer already trained).
    """
    if shared not in ("first", "refine"):
        raise ConfigError(f"unknown shared-parameter policy `{shared}`; use `first` or `refine`")
    stages = []
    for t in range(1, model.num_layers + 1):
        new = _owned(model, t - 1, shared)
        if new:
            stages.append(Stage(f"layer {t}", t, ((new, 1.0),), "final", steps, patience))
        for factor in refine:
            stages.append(Stage(f"layer {t} x{factor:g}", t,
                                _refine_groups(model, t, factor, decay, shared), "final",
                                steps, patience))
    return stages


def _owned(model, k: int, shared: str) -> tuple[str, ...]:
    """Layer k's parameters, plus the shared ones when layer 1 owns them."""
    extra = shared_params(model) if (k == 0 and shared == "first") else ()
    return extra + layer_params(model, k)


def _refine_groups(model, t: int, factor: float, decay: float, shared: str):
    groups = [(_owned(model, k, shared), factor * decay ** (t - 1 - k)) for k in range(t)]
    if shared == "refine" and shared_params(model):
        groups.append((shared_params(model), factor))
    return tuple((names, mult) for names, mult in groups if names)


def build_stages(model, scheme: str, steps: int, patience: int | None, *,
                 every_layer: bool = False, refine=(0.2, 0.02), decay: float = 0.3,
                 shared: str = "first") -> list[Stage]:
    """The stages of `scheme` for `model` (see the module docstring for the schemes)."""
    if scheme == "end-to-end":
        return whole_network(model, steps, patience)
    if scheme == "deep-supervision":
        return whole_network(model, steps, patience, "all", scheme)
    if scheme == "unsupervised":
        return whole_network(model, steps, patience, "all" if every_layer else "final", scheme)
    if scheme == "incremental":
        return incremental(model, steps, patience)
    if scheme == "layerwise":
        return layerwise(model, steps, patience, refine, decay, shared)
    raise ConfigError(f"unknown scheme `{scheme}`; use one of {', '.join(SCHEMES)}")
