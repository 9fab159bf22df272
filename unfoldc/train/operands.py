"""Building a compiled network from user files: given operands and a weights file.

Shared by `unfoldc train` and `unfoldc check`, so that both refuse the same bad arrays and run
the same spec (sha256), depth and shape checks on weights (`checkpoint.apply_weights`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from unfoldc.train.checkpoint import apply_weights, read_weights, weights_layers
from unfoldc.train.errors import DataError
from unfoldc.train.files import read_npy
from unfoldc.train.validate import as_tensor, check_shapes


def read_given(name: str, path: str | Path) -> torch.Tensor:
    """A given operand from a `.npy` file: real, finite, non-empty, float64."""
    return as_tensor(f"`{path}`", name, read_npy(path, f"given `{name}`"))


def build(model_cls, givens: dict[str, torch.Tensor], num_layers: int | None = None,
          origins: dict[str, str] | None = None):
    """Construct the network after checking the givens against the spec's types.

    Args:
        model_cls: the compiled network class.
        givens: every given operand, by spec name.
        num_layers: the depth (None: the spec's).
        origins: where each given came from, for messages (default: "the givens").

    Raises:
        DataError: a given of the wrong rank or size, or one the network's own checks refuse.
    """
    check_shapes(model_cls, givens, set(), origins or {})
    layers = model_cls.DEFAULT_LAYERS if num_layers is None else num_layers
    try:
        return model_cls(num_layers=layers, **givens)
    except ValueError as exc:  # the generated constructor's checks of initial values
        raise DataError(f"cannot build `{model_cls.SPEC_NAME}` from these givens: {exc}") from None


def build_with_weights(model_cls, givens: dict[str, torch.Tensor], weights: str | Path,
                       num_layers: int | None = None, origins: dict[str, str] | None = None):
    """Construct the network from `weights` (a weights.safetensors of its spec) and load them.

    Givens missing from `givens` are taken from the file, which holds them as buffers, and those
    passed replace the file's; the depth defaults to the one the file records.

    Raises:
        WeightsError: the file does not fit (spec, depth, shapes) or is unreadable.
        DataError: a given is neither passed nor held by the file, or does not fit.
    """
    metadata, tensors = read_weights(weights)
    origins = dict(origins or {})
    for name in model_cls.GIVENS:
        if name not in givens and name in tensors:
            givens = {**givens, name: tensors[name].to(torch.float64)}
            origins[name] = f"`{weights}`"
    missing = [name for name in model_cls.GIVENS if name not in givens]
    if missing:
        raise DataError(f"`{weights}` does not hold the given(s) "
                        f"{', '.join(f'`{n}`' for n in missing)}; pass them with --given")
    layers = num_layers if num_layers is not None else weights_layers(metadata, weights)
    model = build(model_cls, givens, layers, origins)
    return apply_weights(model, metadata, tensors, Path(weights), keep_givens=True)


def build_from_files(model_cls, paths: dict[str, str | Path], weights: str | Path | None = None,
                     num_layers: int | None = None):
    """The network of `unfoldc check` and `unfoldc export`: givens from `.npy` files, weights.

    Args:
        model_cls: the compiled network class.
        paths: {given name: .npy path} (`--given`); with `weights`, the others come from it.
        weights: a weights.safetensors of the spec (None: the initial values).
        num_layers: the depth (None: the weights file's, else the spec's).

    Raises:
        TrainError: an unreadable or unfitting array or weights file (messages name the file).
    """
    givens = {name: read_given(name, path) for name, path in paths.items()}
    origins = {name: f"`{path}`" for name, path in paths.items()}
    if weights:
        return build_with_weights(model_cls, givens, weights, num_layers, origins)
    return build(model_cls, givens, num_layers, origins)
