"""The optimisation loop: runs a scheme's stages with validation, checkpoints and divergence checks.

A checkpoint is taken only between steps and holds the network, the stage's Adam state, the
data generator and the loop counters, so a resumed run repeats exactly the steps an uninterrupted
one would take. The last checkpoint is also the "last good" state that divergence falls back to.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from unfoldc.train.binding import Binding
from unfoldc.train.checkpoint import save_checkpoint, save_weights
from unfoldc.train.config import TrainConfig, lr_factor
from unfoldc.train.criterion import Criterion, to_model
from unfoldc.train.distributed import Ranks
from unfoldc.train.errors import DataError, TrainingDiverged
from unfoldc.train.files import CHECKPOINT, WEIGHTS
from unfoldc.train.logs import StepLog, use_tensorboard
from unfoldc.train.metrics import evaluate
from unfoldc.train.progress import Progress
from unfoldc.train.rates import describe, resolve, scales, split
from unfoldc.train.schemes import Stage
from unfoldc.train.tasks import Task


@dataclass
class LoopState:
    """Counters saved in checkpoints (steps are counted within the current stage)."""

    stage: int = 0
    step: int = 0
    total: int = 0
    best: float = math.inf
    since_best: int = 0
    first_loss: float | None = None
    window: list[float] = field(default_factory=lambda: [0.0, 0])
    history: list[dict] = field(default_factory=list)

    def next_stage(self) -> None:
        """Move on, forgetting the finished stage's validation record."""
        self.stage, self.step, self.best, self.since_best = self.stage + 1, 0, math.inf, 0
        self.first_loss, self.window = None, [0.0, 0]


@dataclass(frozen=True)
class StepInfo:
    """What a step callback sees (tests use it to check stage mechanics)."""

    stage: Stage
    stage_index: int
    step: int
    loss: float
    model: nn.Module
    optimizer: torch.optim.Optimizer


class Trainer:
    """Runs stages on a network; see `fit` for the wiring.

    Args:
        model: the network (trained in place).
        task: the training problem.
        binding: task names -> spec names.
        criterion: the objective of a step.
        stages: the scheme.
        config: the options.
        ranks: the distributed context.
        out: directory for checkpoints (None: keep the last good state in memory only).
        fingerprint: identifies the run in checkpoints (refuses mismatched resumes).
        callback: called after every step with a `StepInfo`.
    """

    def __init__(self, model: nn.Module, task: Task, binding: Binding, criterion: Criterion,
                 stages: list[Stage], config: TrainConfig, ranks: Ranks, out: Path | None,
                 fingerprint: dict, callback: Callable[[StepInfo], None] | None = None):
        self.model, self.task, self.binding, self.criterion = model, task, binding, criterion
        self.stages, self.config, self.ranks, self.out = stages, config, ranks, out
        self.fingerprint, self.callback = fingerprint, callback
        self.state = LoopState()
        self.gen = torch.Generator().manual_seed(config.seed)
        self.params = dict(model.named_parameters())
        self.rates, self.sizes = resolve(config.lr), scales(model)
        self._pending_optimizer: dict | None = None
        self._good = self._snapshot(None)
        every = None if _stderr_is_tty() else config.progress_every
        self.progress = Progress(config.progress is not False and ranks.is_main, every=every)
        self.log = StepLog(out if ranks.is_main else None, use_tensorboard(config.tensorboard))

    def restore(self, checkpoint: dict) -> None:
        """Continue from a checkpoint's state instead of the start."""
        self.model.load_state_dict(checkpoint["model"])
        self.gen.set_state(checkpoint["generator"])
        torch.set_rng_state(checkpoint["rng"])
        self.state = LoopState(**checkpoint["loop"])
        self._pending_optimizer = checkpoint["optimizer"]
        self._good = checkpoint

    def run(self) -> LoopState:
        """Run the remaining stages; return the final loop state."""
        flags = {n: p.requires_grad for n, p in self.params.items()}
        try:
            while self.state.stage < len(self.stages):
                self._run_stage(self.stages[self.state.stage])
        finally:
            self.progress.close()
            self.log.close()
            for name, p in self.params.items():
                p.requires_grad_(flags[name])
        return self.state

    def _run_stage(self, stage: Stage) -> None:
        optimizer = self._optimizer(stage)
        while self.state.step < stage.max_steps and not self._out_of_patience(stage):
            loss = self._step(stage, optimizer)
            self.state.step += 1
            self.state.total += 1
            self._after_step(stage, optimizer, loss)
        self.state.next_stage()
        self._checkpoint(None)

    def _optimizer(self, stage: Stage) -> torch.optim.Optimizer:
        """A fresh Adam per stage (as in the reference code), one param group per multiplier,
        parameter kind and size; `base_lr` is the kind's rate times the size and multiplier."""
        trained = {n for names, _ in stage.groups for n in names}
        for name, p in self.params.items():
            p.requires_grad_(name in trained)
        rates = self.rates
        groups = [{"params": params, "lr": rates[kind] * size * mult,
                   "base_lr": rates[kind] * size * mult, "multiplier": mult, "kind": kind,
                   "size": size}
                  for names, mult in stage.groups
                  for (kind, size), params in split([(n, self.params[n]) for n in names],
                                                    self.sizes).items()]
        optimizer = torch.optim.Adam(groups)
        if self._pending_optimizer is not None:
            optimizer.load_state_dict(self._pending_optimizer)
            self._pending_optimizer = None
            # Loading restores the interrupted run's rates; a resumed run may choose new ones.
            for group, fresh in zip(optimizer.param_groups, groups, strict=True):
                group["base_lr"] = fresh["base_lr"]
        return optimizer

    def _step(self, stage: Stage, optimizer: torch.optim.Optimizer) -> float:
        batch = to_model(self.task.train_batch(self.config.batch, self.gen), self.model)
        norms = self.criterion.normalizers(self.binding.model_targets(batch), self.config.batch)
        zero = next((name for name, norm in norms.items() if not norm > 0), None)
        if zero is not None:  # not the rate's fault: say so instead of reporting divergence
            raise DataError(f"every target `{zero}` of the training batch at step "
                            f"{self.state.total + 1} is zero, so its NMSE is 0 / 0; use a larger "
                            f"--batch, denser targets or --loss mse")
        local = self.ranks.shard(batch)
        loss = self.criterion(self.model, self.binding.model_inputs(local),
                              self.binding.model_targets(local), norms, stage,
                              self.config.grad_checkpoint, self.config.safeguarded())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trained = [p for group in optimizer.param_groups for p in group["params"]]
        self.ranks.sum_grads(trained)
        value = float(self.ranks.sum(loss.detach()))
        self._check_loss(stage, value)
        # The rate is a function of the stage's step counter, which checkpoints keep, so a
        # resumed run anneals exactly like an uninterrupted one.
        factor = lr_factor(self.config.lr_schedule, self.state.step, stage.max_steps)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        optimizer.step()
        self._check_params(stage, trained)
        return value

    def _check_loss(self, stage: Stage, value: float) -> None:
        if self.state.first_loss is None:
            self.state.first_loss = value
        if not math.isfinite(value):
            self._diverged(stage, f"the loss is {value}")
        if exploded(value, self.state.first_loss, self.config.divergence_factor):
            self._diverged(stage, f"the loss exploded to {value:.3e} (the stage began at "
                                  f"{self.state.first_loss:.3e})")

    def _check_params(self, stage: Stage, params: list[nn.Parameter]) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in params):
            self._diverged(stage, "a parameter became NaN or infinite")

    def _diverged(self, stage: Stage, why: str) -> None:
        """Fall back to the last good state, save it (if it holds any training), and stop."""
        self.progress.close()
        self.model.load_state_dict(self._good["model"])
        trained = self._good["loop"]["total"]
        where = f"the checkpoint at step {trained}" if trained else "the initial weights"
        kept, retry = "", f"try a smaller learning rate than {describe(self.config.lr)}"
        if self.out is not None and trained:
            if self.ranks.is_main:
                save_weights(self.model, self.out / WEIGHTS)
            kept = f" and saved to {self.out / WEIGHTS}"
            retry += f", e.g. continue with --resume --lr {describe(self.config.lr, 0.1)}"
        raise TrainingDiverged(
            f"training diverged in stage `{stage.name}` at step {self.state.step + 1}: {why}; "
            f"the network was reset to {where}{kept}; {retry}"
        )

    def _after_step(self, stage: Stage, optimizer, loss: float) -> None:
        # The history keeps one record per validation (mean training loss since the last one),
        # so checkpoints stay small on long runs.
        self.state.window = [self.state.window[0] + loss, self.state.window[1] + 1]
        record = {}
        if self.state.step % self.config.eval_every == 0 or self.state.step == stage.max_steps:
            record = {"step": self.state.total, "stage": self.state.stage,
                      "loss": self.state.window[0] / self.state.window[1]}
            record.update(self._validate(stage))
            self.state.history.append(record)
            self.state.window = [0.0, 0]
        if self.state.step % self.config.checkpoint_every == 0:
            self._checkpoint(optimizer)
        self.progress.update(stage.name, self.state.stage, len(self.stages), self.state.step,
                             stage.max_steps, loss, record.get("val_nmse_db"), self.state.total)
        group = optimizer.param_groups[0]
        self.log.write({"step": self.state.total, "stage": self.state.stage + 1,
                        "stage_name": stage.name, "stage_step": self.state.step,
                        "num_layers": stage.num_layers, "loss": loss,
                        # the first group's kind's rate (schedule applied; rates.py)
                        "lr": group["lr"] / (group["multiplier"] * group["size"]),
                        "val_nmse_db": record.get("val_nmse_db"),
                        "val_objective": record.get("val_objective")})
        if self.callback is not None:
            self.callback(StepInfo(stage, self.state.stage, self.state.step, loss, self.model,
                                   optimizer))

    def _validate(self, stage: Stage) -> dict:
        """Validation value at layer g; NMSE in dB, or the objective when unsupervised."""
        self.model.eval()
        result = evaluate(self.model, self.task.val, self.binding, stage.num_layers,
                          safeguard=self.config.safeguarded())
        self.model.train()
        result = result.get("fixed_point", result)  # a fixed-point spec trains the fixed point
        record = {}
        final = {k: v[-1] if isinstance(v, list) else v for k, v in result.items()}
        if final["nmse_db"] is not None:
            record["val_nmse_db"] = final["nmse_db"]
        if final["objective"] is not None:
            record["val_objective"] = final["objective"]
        key = "val_objective" if self.criterion.unsupervised else "val_nmse_db"
        value = record.get(key, math.inf)
        if value < self.state.best:
            self.state.best, self.state.since_best = value, 0
        else:
            self.state.since_best += self.config.eval_every
        return record

    def _out_of_patience(self, stage: Stage) -> bool:
        return stage.patience is not None and self.state.since_best >= stage.patience

    def _snapshot(self, optimizer) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": None if optimizer is None else copy.deepcopy(optimizer.state_dict()),
            "generator": self.gen.get_state(),
            "rng": torch.get_rng_state(),
            "loop": copy.deepcopy(dataclasses.asdict(self.state)),
        }

    def _checkpoint(self, optimizer) -> None:
        self._good = self._snapshot(optimizer)
        if self.out is not None and self.ranks.is_main:
            save_checkpoint(self.out / CHECKPOINT, self._good)


def exploded(value: float, first: float, factor: float) -> bool:
    """Whether `value` rose above `first` by more than `factor` times the first loss's size.

    Measured from the first value on its own scale, so that objectives which start negative
    (an unsupervised objective with a constant term) or at zero are not divergent at once.
    """
    return value - first > factor * abs(first) if first else False


def _stderr_is_tty() -> bool:
    import sys

    return sys.stderr.isatty()
