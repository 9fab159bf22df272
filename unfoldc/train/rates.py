"""Learning rates per kind of parameter: scalars, matrices and network weights.

One Adam rate does not suit every trainable: a step size stored as a log moves by about the
rate per step, so 1e-3 leaves it almost where it started after a few hundred steps, while the
same rate is already large for a 250 x 500 matrix initialised at `mu * H.T` or for an MLP. Each
parameter therefore belongs to one kind, and each kind has its own default rate:

- `scalar`: scalars and vectors declared with `train` (step sizes, thresholds, per-entry
  weights), whatever their reparametrization (`positive` ones are stored as a log).
- `matrix`: matrices (and higher-order arrays) declared with `train` (LISTA's `W1`, `W2`).
- `net`: the weights and biases of `net` blocks (any parameter owned by a sub-module).

The defaults were measured (docs/training.md, "Learning rates"); `--lr` overrides them, for
every kind (`--lr 1e-3`) or per kind (`--lr scalar=1e-2,net=1e-4`).
"""

from __future__ import annotations

import math
import re

from torch import nn

from unfoldc.train.errors import ConfigError

KINDS = ("scalar", "matrix", "net")

# Measured on the sparse-recovery and robust-PCA tasks (docs/training.md, "Learning rates").
DEFAULT_RATES = {"scalar": 2e-2, "matrix": 5e-4, "net": 1e-3}

Rates = dict[str, float]

_LAYER = re.compile(r"^layers\.\d+\.")


def kind_of(name: str, param: nn.Parameter) -> str:
    """The kind of a parameter from its qualified name and shape.

    A name that still holds a dot once a generated layer's `layers.<k>.` prefix is removed
    belongs to a sub-module (a `net` block); otherwise the parameter is a declared trainable,
    a scalar when it has at most one dimension.
    """
    if "." in _LAYER.sub("", name):
        return "net"
    return "scalar" if param.dim() <= 1 else "matrix"


def resolve(lr: float | Rates | None) -> Rates:
    """The rate of every kind: the defaults, one rate for all, or defaults updated per kind."""
    if lr is None:
        return dict(DEFAULT_RATES)
    if isinstance(lr, dict):
        return {**DEFAULT_RATES, **lr}
    return dict.fromkeys(KINDS, float(lr))


def check(lr: float | Rates | None) -> None:
    """Refuse an unknown kind or a rate that is not a positive number (a `ConfigError`)."""
    if lr is None:
        return
    rates = lr if isinstance(lr, dict) else {"": lr}
    unknown = sorted(set(rates) - set(KINDS) - {""})
    if unknown:
        raise ConfigError(f"unknown parameter kind(s) {', '.join(unknown)} in `lr`; use "
                          f"{', '.join(KINDS)}")
    for kind, rate in rates.items():
        if not (isinstance(rate, int | float) and rate > 0 and math.isfinite(rate)):
            where = f"`lr` for {kind}" if kind else "`lr`"
            raise ConfigError(f"{where} must be a positive number, got {rate}")


def parse(text: str) -> float | Rates:
    """`--lr`'s value: `R` (every kind), `kind=R,...` (those kinds), or `R,kind=R,...`.

    Raises:
        ValueError: malformed text (argparse turns it into a usage error).
    """
    every, rates = None, {}
    for item in (part.strip() for part in text.split(",")):
        kind, sep, value = item.rpartition("=")
        if not sep:
            every = _rate(item)
        elif kind.strip() in KINDS:
            rates[kind.strip()] = _rate(value)
        else:
            raise ValueError(f"unknown parameter kind `{kind.strip()}`; use {', '.join(KINDS)}")
    if not rates:
        if every is None:
            raise ValueError("give a rate, e.g. 1e-3 or scalar=1e-2")
        return every
    return {**(dict.fromkeys(KINDS, every) if every is not None else {}), **rates}


def _rate(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"a rate must be a positive number, got {text}")
    return value


def describe(lr: float | Rates | None, scale: float = 1.0) -> str:
    """Rates as `--lr` text (`scalar=0.01,matrix=0.0005,net=0.001`), each times `scale`."""
    rates = resolve(lr)
    if len(set(rates.values())) == 1:
        return f"{rates[KINDS[0]] * scale:g}"
    return ",".join(f"{kind}={rates[kind] * scale:g}" for kind in KINDS)


def scales(model: nn.Module) -> dict[str, float]:
    """Each scalar-kind parameter's size: the factor its kind's rate is multiplied by.

    A scalar's rate is relative, so that a threshold of 0.01 and one of 100 both move by about
    the rate times their size per Adam step. A log (a name ending in `_log`) or a raw tensor
    stored relative to its initial value (beside an `<x>_init` buffer: a `positive` or an
    `interval` trainable) is already relative, as is one that starts at zero: their size is 1.
    Otherwise the size is the root mean square of the value as the run starts (read when the
    trainer is built, so that a resumed run scales exactly like the interrupted one).
    """
    buffers = {name for name, _ in model.named_buffers()}
    sizes = {}
    for name, param in model.named_parameters():
        if kind_of(name, param) != "scalar":
            continue
        stem = name.rpartition("_")[0]
        size = float(param.detach().double().pow(2).mean().sqrt()) if param.numel() else 0.0
        relative = stem and f"{stem}_init" in buffers
        sizes[name] = 1.0 if relative or not (size > 0 and math.isfinite(size)) else size
    return sizes


def split(named: list[tuple[str, nn.Parameter]], sizes: dict[str, float]):
    """Parameters by (kind, size), in the given order: one Adam group each."""
    groups: dict[tuple[str, float], list[nn.Parameter]] = {}
    for name, param in named:
        groups.setdefault((kind_of(name, param), sizes.get(name, 1.0)), []).append(param)
    return groups
