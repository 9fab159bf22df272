"""`fit`: the one place that wires task, binding, scheme, loop, metrics and output files."""

from __future__ import annotations

import copy
import inspect
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from unfoldc.train import plots
from unfoldc.train.binding import Binding, bind
from unfoldc.train.checkpoint import load_checkpoint, save_weights
from unfoldc.train.config import TrainConfig, make_config
from unfoldc.train.criterion import Criterion, fixed_point_mode, placement
from unfoldc.train.distributed import Ranks, setup
from unfoldc.train.errors import ConfigError
from unfoldc.train.files import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    PLOTS,
    WEIGHTS,
    check_out_dir,
    clear_outputs,
    one_line,
)
from unfoldc.train.logs import use_tensorboard, write_layer_logs
from unfoldc.train.loop import Trainer
from unfoldc.train.losses import resolve_loss
from unfoldc.train.metrics import evaluate
from unfoldc.train.schemes import build_stages
from unfoldc.train.symmetry import per_layer_copies, plateau_notes
from unfoldc.train.tasks import Task
from unfoldc.train.userdata import user_task
from unfoldc.train.validate import check_targets


@dataclass
class FitResult:
    """What `fit` returns: the trained network (the same object), metrics and history."""

    model: nn.Module
    metrics: dict
    history: list[dict]
    out: Path | None


def fit(model: nn.Module, data: Task | str | Path, config: TrainConfig | None = None, *,
        out: str | Path | None = None, resume: bool = False, overwrite: bool = False,
        callback=None, record: dict | None = None, baseline: nn.Module | None = None,
        **options) -> FitResult:
    """Train a compiled network in place with one of the schemes.

    Args:
        model: any network following docs/generated-module.md (its givens already set).
        data: a `Task` (tasks.py) or the path of a user `.npz`/`.pt` file.
        config: base options; keyword `options` (fields of `TrainConfig`) override them,
            e.g. `fit(model, task, scheme="layerwise", steps=500, lr=5e-4)`.
        out: directory for weights.safetensors, config.json, metrics.json, plots, checkpoint.
        resume: continue from `out/checkpoint.pt` when it exists.
        overwrite: replace the outputs of an earlier run in `out` (refused by default).
        callback: called after every step with a `loop.StepInfo`.
        record: extra JSON entries for config.json (the CLI records the spec path there).
        baseline: the network reported as `classical_nmse_db` (default: `model` as it is before
            training, i.e. the classical algorithm unless `model` was loaded from weights).

    Returns:
        A `FitResult`; `metrics["nmse_db"]` is the test NMSE per layer.

    Raises:
        TrainError: a user error (bad option or data, mismatched checkpoint, divergence).
    """
    config = make_config(config, options)
    out = None if out is None else check_out_dir(out, resume, overwrite)
    task = data if isinstance(data, Task) else user_task(data, type(model))
    binding = bind(model, task, config.mapping)
    criterion = _criterion(model, binding, config)
    _check_data(task, binding, config)
    _check_grad_checkpoint(model, config)
    _check_safeguard(model, config)
    stages = build_stages(model, config.scheme, config.steps, config.patience,
                          every_layer=config.every_layer, refine=config.refine,
                          decay=config.decay, shared=config.shared)
    ranks = setup(placement(model)[1])
    torch.manual_seed(config.seed)
    untrained = copy.deepcopy(model) if baseline is None else baseline
    tied_before = per_layer_copies(model)
    fingerprint = _fingerprint(model, task, config)
    trainer = Trainer(model, task, binding, criterion, stages, config, ranks, out, fingerprint,
                      callback)
    _prepare_out(out, ranks, resume, overwrite, trainer, fingerprint)
    start = time.perf_counter()
    state = trainer.run()
    metrics = measure(model, untrained, task, binding, config.classical_layers,
                      config.safeguarded())
    metrics.update(scheme=config.scheme, steps=state.total, wall_s=time.perf_counter() - start,
                   notes=plateau_notes(tied_before, model, config.scheme))
    if out is not None and ranks.is_main:
        _write_outputs(out, model, task, config, metrics, state.history, record)
    ranks.barrier()
    return FitResult(model, metrics, state.history, out)


FIXED_POINT_SCHEMES = ("end-to-end", "unsupervised")  # those with one output to train


def _criterion(model, binding: Binding, config: TrainConfig) -> Criterion:
    unsupervised = config.scheme == "unsupervised"
    if unsupervised and not callable(getattr(model, "objective", None)):
        raise ConfigError(f"the unsupervised scheme needs an objective, but `{model.SPEC_NAME}` "
                          f"has no `objective` method; declare one in the spec")
    if not unsupervised and not binding.targets:
        raise ConfigError("the data has no ground truth for any output; use "
                          "--scheme unsupervised or provide targets named after the outputs")
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"`{model.SPEC_NAME}` has no trainable parameter, so there is nothing "
                          f"to train; declare one with `train` in the spec")
    fixed_point = fixed_point_mode(model) is not None
    if fixed_point and (config.scheme not in FIXED_POINT_SCHEMES or config.every_layer):
        raise ConfigError(f"`{model.SPEC_NAME}` declares `fixed_point`: training runs its layer "
                          "map to the fixed point, which has no layers to supervise one by one; "
                          f"use --scheme {' or '.join(FIXED_POINT_SCHEMES)} (without "
                          "--every-layer), or remove the `fixed_point` line from the spec")
    return Criterion(resolve_loss(config.loss), tuple(binding.targets), unsupervised,
                     config.layer_weights, fixed_point)


def _check_data(task: Task, binding: Binding, config: TrainConfig) -> None:
    """All-zero targets make the NMSE undefined (0 / 0): refuse them before training."""
    if config.scheme != "unsupervised" and config.loss == "nmse":
        check_targets(task, binding)


def _check_grad_checkpoint(model, config: TrainConfig) -> None:
    if config.grad_checkpoint and "checkpoint" not in inspect.signature(model.forward).parameters:
        raise ConfigError(f"gradient checkpointing needs `{type(model).__name__}.forward` to "
                          f"accept `checkpoint=True`; recompile the spec with a compiler that "
                          f"emits it, or train without --grad-checkpoint")


def _check_safeguard(model, config: TrainConfig) -> None:
    if config.safeguard and "safeguard" not in inspect.signature(model.forward).parameters:
        raise ConfigError(f"the safeguard needs `{type(model).__name__}.forward` to accept "
                          f"`safeguard=True`; recompile the spec with this compiler, or train "
                          f"without --safeguard")


def _fingerprint(model: nn.Module, task: Task, config: TrainConfig) -> dict:
    return {"spec_sha256": model.SPEC_SHA256, "num_layers": model.num_layers,
            "task": json.dumps(task.description, sort_keys=True), **config.fingerprint()}


def _prepare_out(out: Path | None, ranks: Ranks, resume: bool, overwrite: bool,
                 trainer: Trainer, fingerprint: dict) -> None:
    """Create `out` (already checked by `check_out_dir`), clear it or restore its checkpoint."""
    if out is None:
        if resume:
            raise ConfigError("resume needs an output directory to resume from")
        return
    if ranks.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if overwrite:
            clear_outputs(out)
    ranks.barrier()
    if resume and (out / CHECKPOINT).is_file():
        _restore(trainer, out / CHECKPOINT, fingerprint)


def _restore(trainer: Trainer, path: Path, fingerprint: dict) -> None:
    checkpoint = load_checkpoint(path, fingerprint)
    try:
        trainer.restore(checkpoint)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot resume from `{path}`: its contents do not fit this network "
                          f"({one_line(exc)}); use another --out or drop --resume") from None


def measure(model: nn.Module, untrained: nn.Module, task: Task, binding: Binding,
            classical_layers: int, safeguard: float | None = None) -> dict:
    """Test metrics per layer for the trained (safeguarded if `safeguard`, its delta) and
    untrained network, and a long classical run."""
    model.eval()
    trained = evaluate(model, task.test, binding, safeguard=safeguard)
    classical = evaluate(untrained, task.test, binding)
    model.train()
    out = {
        "nmse_db": trained["nmse_db"], "objective": trained["objective"],
        "classical_nmse_db": classical["nmse_db"], "classical_objective": classical["objective"],
        "classical_converged": converged_baseline(untrained, task, binding, classical_layers),
    }
    if "fixed_point" in trained:  # what a fixed-point spec trains: its layer map's fixed point
        out["fixed_point"] = trained["fixed_point"]
        out["classical_fixed_point"] = classical["fixed_point"]
    return out


def converged_baseline(untrained: nn.Module, task: Task, binding: Binding, layers: int):
    """The classical algorithm run for `layers` iterations (a fresh, untrained network).

    Rebuilds the class with the same givens and fixed hyperparameters (read back as attributes);
    returns None when `layers` is 0 or the network cannot be rebuilt at that depth.
    """
    if layers <= 0:
        return None
    kwargs = {name: getattr(untrained, name) for name in untrained.GIVENS}
    kwargs.update({p: getattr(untrained, p) for p in untrained.PARAMS if hasattr(untrained, p)})
    try:
        deep = type(untrained)(num_layers=layers, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        return {"layers": layers, "error": f"cannot rebuild the network: {exc}"}
    result = evaluate(deep, task.test, binding)
    final = {k: (v[-1] if v else None) for k, v in result.items()}
    return {"layers": layers, **final}


def _write_outputs(out: Path, model, task: Task, config: TrainConfig, metrics: dict,
                   history: list[dict], record: dict | None) -> None:
    save_weights(model, out / WEIGHTS)
    spec = {"name": model.SPEC_NAME, "sha256": model.SPEC_SHA256,
            "num_layers": model.num_layers, "class": type(model).__name__}
    run = {"spec": spec, "task": task.description, "train": config.to_json(), **(record or {})}
    _write_json(out / CONFIG, run)
    _write_json(out / METRICS, {**metrics, "history": history})
    write_layer_logs(out, metrics, use_tensorboard(config.tensorboard))
    if config.plots:
        nmse, training, parameters = (out / name for name in PLOTS)
        plots.plot_nmse(metrics, nmse)
        plots.plot_training(history, training)
        plots.plot_parameters(model, parameters)


def _write_json(path: Path, data: dict) -> None:
    # Infinite NMSE (exact recovery) is written as a string: JSON has no infinity.
    path.write_text(json.dumps(_finite(data), indent=2) + "\n")


def _finite(value):
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
