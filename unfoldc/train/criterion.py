"""Running a compiled network on named arrays, and the training objective of a stage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from unfoldc.train.losses import Loss, layer_weights
from unfoldc.train.schemes import Stage
from unfoldc.train.tasks import Arrays


def placement(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    """dtype and device of the network (its givens set them, per the contract)."""
    for tensor in list(model.buffers()) + list(model.parameters()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return torch.get_default_dtype(), torch.device("cpu")


def to_model(arrays: Arrays, model: nn.Module) -> Arrays:
    """Cast task arrays (CPU float64) to the network's dtype and device."""
    dtype, device = placement(model)
    return {name: value.to(device=device, dtype=dtype) for name, value in arrays.items()}


def outputs_by_name(model: nn.Module, out) -> dict[str, torch.Tensor]:
    """A forward result (tensor or `Output` named tuple) as {output name: tensor}."""
    if isinstance(out, torch.Tensor):
        return {model.OUTPUTS[0]: out}
    return dict(out._asdict())


def run_network(model: nn.Module, inputs: Arrays, num_layers: int, all_layers: bool,
                checkpoint: bool = False,
                safeguard: float | None = None) -> list[dict[str, torch.Tensor]]:
    """Outputs after every layer (`all_layers`) or after the last one, each by output name;
    `safeguard`: None, or the delta of a safeguarded run (`forward(..., safeguard=True)`)."""
    kwargs = dict(inputs, num_layers=num_layers, all_layers=all_layers)
    if checkpoint:
        kwargs["checkpoint"] = True
    if safeguard is not None:
        kwargs.update(safeguard=True, safeguard_delta=safeguard)
    out = model(**kwargs)
    return [outputs_by_name(model, o) for o in (out if all_layers else [out])]


@dataclass(frozen=True)
class Criterion:
    """The scalar a stage minimises.

    Attributes:
        loss: the supervised loss (ignored when `unsupervised`).
        targets: supervised output names.
        unsupervised: use `model.objective(**outputs, **inputs)` instead of the loss.
        weights: deep-supervision weights (`uniform`, `log` or explicit).
    """

    loss: Loss
    targets: tuple[str, ...]
    unsupervised: bool = False
    weights: str | Sequence[float] = "uniform"

    def normalizers(self, targets: Arrays, count: int) -> dict[str, torch.Tensor]:
        """Denominators from the *global* batch (see losses.py)."""
        if self.unsupervised:
            return {"": torch.tensor(float(count))}
        return {name: self.loss.denominator(targets[name]).sum() for name in self.targets}

    def __call__(self, model: nn.Module, inputs: Arrays, targets: Arrays,
                 norms: dict[str, torch.Tensor], stage: Stage, checkpoint: bool = False,
                 safeguard: float | None = None):
        outs = run_network(model, inputs, stage.num_layers, stage.supervision == "all",
                           checkpoint, safeguard)
        terms = [self._term(model, out, inputs, targets, norms) for out in outs]
        if stage.supervision == "final":
            return terms[0]
        weights = layer_weights(self.weights, len(terms))
        return sum(w * term for w, term in zip(weights, terms, strict=True))

    def _term(self, model, out, inputs, targets, norms) -> torch.Tensor:
        if self.unsupervised:
            return model.objective(**out, **inputs).sum() / norms[""]
        return sum(self.loss.numerator(out[n], targets[n]).sum() / norms[n]
                   for n in self.targets)
