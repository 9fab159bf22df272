"""Training options, as one dataclass that is written to config.json and checked on resume."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from unfoldc.train import rates
from unfoldc.train.errors import ConfigError
from unfoldc.train.schemes import SCHEMES

# Options that only change how a run is shown or summarised, not its trajectory: a resumed run
# may change them.
COSMETIC = ("progress", "progress_every", "tensorboard", "plots", "classical_layers",
            "checkpoint_every")

# Options a resumed run may change on purpose: recorded in checkpoints, not compared. The rate
# is one, so that a run that diverged can continue from its last checkpoint more slowly.
ADJUSTABLE = ("lr",)

LR_SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, max_steps: int) -> float:
    """The multiplier of every rate at a stage's 0-based `step` of `max_steps`."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / max_steps))
    return 1.0


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run.

    Attributes:
        scheme: one of `end-to-end`, `deep-supervision`, `layerwise`, `incremental`,
            `unsupervised`.
        loss: `mse`, `nmse` or a callable `(pred, target) -> per-sample values`.
        steps: total steps (end-to-end, deep supervision, unsupervised), or the step cap of
            each stage (layer-wise) or generation (incremental).
        lr: Adam learning rates: None for each parameter kind's default (`rates.py`), one
            number for every kind, or a dict kind -> rate (`scalar`, `matrix`, `net`; kinds it
            leaves out keep their default).
        lr_schedule: `constant`, or `cosine`: within every stage, each rate is annealed from its
            value at the stage's start to 0 at the stage's step cap (half a cosine period).
        batch: global batch size (split over ranks under torchrun).
        seed: seeds the training-data stream and torch's global generator.
        patience: end a stage after this many steps without a better validation value.
        eval_every: steps between validations.
        checkpoint_every: steps between resumable checkpoints (when writing to a directory).
        layer_weights: deep-supervision weights: `uniform`, `log` or one number per layer.
        every_layer: unsupervised scheme: objective on every layer's output, not only the last.
        refine: layer-wise refinement factors (0.2 then 0.02 in the reference code).
        decay: layer-wise per-later-layer lr decay (0.3 in the reference code).
        shared: layer-wise policy for shared parameters, `first` or `refine` (see schemes.py).
        grad_checkpoint: recompute each layer in backward (`forward(..., checkpoint=True)`).
        safeguard: train, validate and test with the safeguard on (`forward(...,
            safeguard=True)`: a layer's update is kept per sample only where it shrinks the
            classical layer's fixed-point residual, Heaton et al. 2023).
        safeguard_delta: the safeguard's delta in (0, 1) (`forward(..., safeguard_delta=)`).
        divergence_factor: a loss that rises above the stage's first loss by more than this
            multiple of the first loss's magnitude is divergence.
        classical_layers: layers for the "run to convergence" classical baseline (0: skip).
        mapping: explicit `{spec_name: task_name}` pairs for binding.
        progress: show progress on stderr (None or True: a line redrawn in place on a terminal,
            elsewhere a line every `progress_every` steps; False: nothing).
        progress_every: steps between progress lines when stderr is not a terminal.
        tensorboard: also log to `out/tensorboard/` (None: when the `tensorboard` package is
            installed); steps.csv and layers.csv are written either way (logs.py).
        plots: write PNG plots to the output directory.
    """

    scheme: str = "end-to-end"
    loss: str | Callable = "nmse"
    steps: int = 1000
    lr: float | dict[str, float] | None = None
    lr_schedule: str = "constant"
    batch: int = 64
    seed: int = 0
    patience: int | None = None
    eval_every: int = 50
    checkpoint_every: int = 100
    layer_weights: str | Sequence[float] = "uniform"
    every_layer: bool = False
    refine: tuple[float, ...] = (0.2, 0.02)
    decay: float = 0.3
    shared: str = "first"
    grad_checkpoint: bool = False
    safeguard: bool = False
    safeguard_delta: float = 0.1
    divergence_factor: float = 1e4
    classical_layers: int = 1000
    mapping: dict[str, str] | None = None
    progress: bool | None = None
    progress_every: int = 50
    tensorboard: bool | None = None
    plots: bool = True

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ConfigError(f"unknown scheme `{self.scheme}`; use one of {', '.join(SCHEMES)}")
        for name in ("steps", "batch", "eval_every", "checkpoint_every", "progress_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        rates.check(self.lr)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown lr schedule `{self.lr_schedule}`; use one of "
                              f"{', '.join(LR_SCHEDULES)}")
        if not 0 < self.safeguard_delta < 1:
            raise ConfigError(f"`safeguard_delta` must lie in (0, 1), got {self.safeguard_delta}")
        if not 0 < self.decay <= 1:
            raise ConfigError(f"`decay` must lie in (0, 1], got {self.decay}")
        if any(not (f > 0 and math.isfinite(f)) for f in self.refine):
            raise ConfigError(f"`refine` factors must be positive numbers, got {self.refine}")

    def to_json(self) -> dict:
        """The options as JSON values (a callable loss is recorded by name)."""
        data = dataclasses.asdict(self)
        if callable(self.loss):
            data["loss"] = f"callable:{getattr(self.loss, '__qualname__', '?')}"
        data["refine"] = list(self.refine)
        if not isinstance(self.layer_weights, str):
            data["layer_weights"] = [float(w) for w in self.layer_weights]
        return data

    def safeguarded(self) -> float | None:
        """The safeguard's delta when the run is safeguarded, else None."""
        return self.safeguard_delta if self.safeguard else None

    def fingerprint(self) -> dict:
        """The options a resumed run must share with the interrupted one."""
        return {k: v for k, v in self.to_json().items() if k not in COSMETIC}


def make_config(config: TrainConfig | None, options: dict) -> TrainConfig:
    """A config from an optional base plus keyword overrides, with a clear unknown-name error."""
    base = config or TrainConfig()
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown training option(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    return dataclasses.replace(base, **options)
