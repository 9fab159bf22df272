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


def python_name(model_cls, name: str) -> str:
    """The generated name of the spec's symbol `name` (a spec's `B` is `B_` in the module,
    `SPEC_NAMES` says so); names that are not renamed are returned as they are."""
    return {spec: py for py, spec in getattr(model_cls, "SPEC_NAMES", {}).items()}.get(name, name)


def spec_name(model_cls, name: str) -> str:
    """The spec's name of the generated symbol `name` (the inverse of python_name)."""
    return getattr(model_cls, "SPEC_NAMES", {}).get(name, name)


def build(model_cls, givens: dict[str, torch.Tensor], num_layers: int | None = None,
          origins: dict[str, str] | None = None, params: dict[str, float] | None = None):
    """Construct the network after checking the givens against the spec's types.

    Args:
        model_cls: the compiled network class.
        givens: every given operand, by spec name.
        num_layers: the depth (None: the spec's).
        origins: where each given came from, for messages (default: "the givens").
        params: fixed parameters (`param` in the spec) set to other values than the spec's,
            by spec name; a number fills a vector or matrix parameter.

    Raises:
        DataError: a given of the wrong rank or size, a name that is not a fixed parameter of
            the spec, or a value the network's own checks refuse.
    """
    givens = {python_name(model_cls, name): value for name, value in givens.items()}
    origins = {python_name(model_cls, name): o for name, o in (origins or {}).items()}
    check_shapes(model_cls, givens, set(), origins)
    layers = model_cls.DEFAULT_LAYERS if num_layers is None else num_layers
    try:
        return model_cls(num_layers=layers, **givens, **_params(model_cls, params or {}))
    except ValueError as exc:  # the generated constructor's checks of initial values
        raise DataError(f"cannot build `{model_cls.SPEC_NAME}` from these givens: {exc}") from None


def _params(model_cls, params: dict[str, float]) -> dict[str, float]:
    """Spec names of fixed parameters -> constructor keywords; refuse any other name."""
    out = {}
    for name, value in params.items():
        py = python_name(model_cls, name)
        if py not in model_cls.PARAMS:
            known = ", ".join(f"`{spec_name(model_cls, p)}`" for p in model_cls.PARAMS) or "none"
            raise DataError(f"`{name}` is not a fixed parameter (`param`) of "
                            f"`{model_cls.SPEC_NAME}`; its fixed parameters: {known}")
        out[py] = value
    return out


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
    givens = {python_name(model_cls, name): value for name, value in givens.items()}
    origins = {python_name(model_cls, name): o for name, o in (origins or {}).items()}
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
