"""Detect the symmetric plateau of whole-network training.

When every layer's copy of a per-layer trainable starts at the same value and the loss is
symmetric in them (deep-unfolded gradient descent on a quadratic: the error after K layers is
prod_k (I - mu_k H^T H) e_0, whatever the order of the steps), every copy receives the same
gradient, so training moves them together: they only separate as fast as rounding errors grow,
and may stay equal to many digits for thousands of steps, on the best *constant* value instead
of the better distinct ones (Chebyshev steps). End-to-end training cannot break the tie without
changing the network; incremental training can (each generation trains a new layer beside
layers that were already trained, so the copies differ from the first step). The untrained
network must stay the classical algorithm, so nothing is perturbed here: the run is inspected
afterwards and a note says what happened and what to do.
"""

from __future__ import annotations

import re

import torch
from torch import nn

# Schemes that train every layer at once from the start (schemes.whole_network).
WHOLE_NETWORK = ("end-to-end", "deep-supervision", "unsupervised")

# Copies are "still equal" when they differ by less than this fraction of how far they moved.
TIE = 1e-4

_LAYER = re.compile(r"^layers\.(\d+)\.(.+)$")


def per_layer_copies(model: nn.Module) -> dict[str, list[torch.Tensor]]:
    """Each per-layer parameter's copies (detached clones), in layer order, by name within a
    layer: take it before training to compare with after."""
    copies: dict[str, list[torch.Tensor]] = {}
    for name, param in model.named_parameters():
        match = _LAYER.match(name)
        if match:
            copies.setdefault(match.group(2), []).append(param.detach().clone())
    return copies


def tied(before: list[torch.Tensor], after: list[torch.Tensor]) -> bool:
    """Whether copies that started equal moved, yet together: the spread of the trained copies
    is below TIE times the distance their mean travelled."""
    if len(before) < 2 or not all(torch.equal(before[0], b) for b in before[1:]):
        return False
    stacked = torch.stack([a.double() for a in after])
    mean = stacked.mean(dim=0)
    moved = float((mean - before[0].double()).abs().max())
    spread = float((stacked - mean).abs().max())
    return moved > 0 and spread <= TIE * moved


def plateau_notes(before: dict[str, list[torch.Tensor]], trained: nn.Module,
                  scheme: str) -> list[str]:
    """Notes naming the per-layer trainables that whole-network training left tied.

    Args:
        before: `per_layer_copies` of the network as training started.
        trained: the network after training.
        scheme: the scheme that trained it; only whole-network schemes can tie.

    Returns:
        One note per tied trainable (empty when none is, or for layer-wise schemes).
    """
    if scheme not in WHOLE_NETWORK:
        return []
    after = per_layer_copies(trained)
    notes = []
    for name, copies in after.items():
        if name in before and len(before[name]) == len(copies) and tied(before[name], copies):
            notes.append(
                f"the {len(copies)} layers' `{_spec_name(trained, name)}` started equal and "
                f"moved together in {scheme} training (they differ by less than {TIE:g} of the "
                f"distance they moved): the loss is likely symmetric in them, so every copy "
                f"gets the same gradient and training finds the best common value, not "
                f"per-layer ones (a symmetric plateau); train with --scheme incremental "
                f"(scheme='incremental'), whose generations separate the layers")
    return notes


def _spec_name(model: nn.Module, name: str) -> str:
    """The spec's name of a stored parameter (`mu` for `mu_log`), when the model says it."""
    stem = name.rpartition("_")[0]
    trainables = getattr(model, "TRAINABLES", {})
    return stem if name not in trainables and stem in trainables else name
