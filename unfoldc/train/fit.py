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
from unfoldc.train.checkpoint import CHECKPOINT, WEIGHTS, load_checkpoint, save_weights
from unfoldc.train.config import TrainConfig, make_config
from unfoldc.train.criterion import Criterion, placement
from unfoldc.train.distributed import Ranks, setup
from unfoldc.train.errors import ConfigError
from unfoldc.train.loop import Trainer
from unfoldc.train.losses import resolve_loss
from unfoldc.train.metrics import evaluate
from unfoldc.train.schemes import build_stages
from unfoldc.train.tasks import Task
from unfoldc.train.userdata import user_task


@dataclass
class FitResult:
    """What `fit` returns: the trained network (the same object), metrics and history."""

    model: nn.Module
    metrics: dict
    history: list[dict]
    out: Path | None


def fit(model: nn.Module, data: Task | str | Path, config: TrainConfig | None = None, *,
        out: str | Path | None = None, resume: bool = False, callback=None,
        record: dict | None = None, baseline: nn.Module | None = None,
        **options) -> FitResult:
    """Train a compiled network in place with one of the schemes.

    Args:
        model: any network following docs/generated-module.md (its givens already set).
        data: a `Task` (tasks.py) or the path of a user `.npz`/`.pt` file.
        config: base options; keyword `options` (fields of `TrainConfig`) override them,
            e.g. `fit(model, task, scheme="layerwise", steps=500, lr=5e-4)`.
        out: directory for weights.safetensors, config.json, metrics.json, plots, checkpoint.
        resume: continue from `out/checkpoint.pt` when it exists.
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
    task = data if isinstance(data, Task) else user_task(data, type(model))
    binding = bind(model, task, config.mapping)
    criterion = _criterion(model, binding, config)
    _check_grad_checkpoint(model, config)
    stages = build_stages(model, config.scheme, config.steps, config.patience,
                          every_layer=config.every_layer, refine=config.refine,
                          decay=config.decay, shared=config.shared)
    ranks = setup(placement(model)[1])
    torch.manual_seed(config.seed)
    out = None if out is None else Path(out)
    untrained = copy.deepcopy(model) if baseline is None else baseline
    fingerprint = _fingerprint(model, task, config)
    trainer = Trainer(model, task, binding, criterion, stages, config, ranks, out, fingerprint,
                      callback)
    _prepare_out(out, ranks, resume, trainer, fingerprint)
    start = time.perf_counter()
    state = trainer.run()
    metrics = measure(model, untrained, task, binding, config.classical_layers)
    metrics.update(scheme=config.scheme, steps=state.total, wall_s=time.perf_counter() - start)
    if out is not None and ranks.is_main:
        _write_outputs(out, model, task, config, metrics, state.history, record)
    ranks.barrier()
    return FitResult(model, metrics, state.history, out)


def _criterion(model, binding: Binding, config: TrainConfig) -> Criterion:
    unsupervised = config.scheme == "unsupervised"
    if unsupervised and not callable(getattr(model, "objective", None)):
        raise ConfigError(f"the unsupervised scheme needs an objective, but `{model.SPEC_NAME}` "
                          f"has no `objective` method; declare one in the spec")
    if not unsupervised and not binding.targets:
        raise ConfigError("the data has no ground truth for any output; use "
                          "--scheme unsupervised or provide targets named after the outputs")
    return Criterion(resolve_loss(config.loss), tuple(binding.targets), unsupervised,
                     config.layer_weights)


def _check_grad_checkpoint(model, config: TrainConfig) -> None:
    if config.grad_checkpoint and "checkpoint" not in inspect.signature(model.forward).parameters:
        raise ConfigError(f"gradient checkpointing needs `{type(model).__name__}.forward` to "
                          f"accept `checkpoint=True`; recompile the spec with a compiler that "
                          f"emits it, or train without --grad-checkpoint")


def _fingerprint(model: nn.Module, task: Task, config: TrainConfig) -> dict:
    return {"spec_sha256": model.SPEC_SHA256, "num_layers": model.num_layers,
            "task": json.dumps(task.description, sort_keys=True), **config.fingerprint()}


def _prepare_out(out: Path | None, ranks: Ranks, resume: bool, trainer: Trainer,
                 fingerprint: dict) -> None:
    if out is None:
        if resume:
            raise ConfigError("resume needs an output directory to resume from")
        return
    if ranks.is_main:
        out.mkdir(parents=True, exist_ok=True)
    ranks.barrier()
    if resume and (out / CHECKPOINT).is_file():
        trainer.restore(load_checkpoint(out / CHECKPOINT, fingerprint))
    elif not resume and (out / CHECKPOINT).is_file():
        raise ConfigError(f"`{out}` already holds a training run; pass resume=True (--resume) "
                          f"to continue it or choose another output directory")


def measure(model: nn.Module, untrained: nn.Module, task: Task, binding: Binding,
            classical_layers: int) -> dict:
    """Test metrics per layer for the trained and untrained network, and a long classical run."""
    model.eval()
    trained = evaluate(model, task.test, binding)
    classical = evaluate(untrained, task.test, binding)
    model.train()
    return {
        "nmse_db": trained["nmse_db"], "objective": trained["objective"],
        "classical_nmse_db": classical["nmse_db"], "classical_objective": classical["objective"],
        "classical_converged": converged_baseline(untrained, task, binding, classical_layers),
    }


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
    _write_json(out / "config.json", run)
    _write_json(out / "metrics.json", {**metrics, "history": history})
    if config.plots:
        plots.plot_nmse(metrics, out / "nmse_per_layer.png")
        plots.plot_training(history, out / "training_curve.png")
        plots.plot_parameters(model, out / "parameters.png")


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
