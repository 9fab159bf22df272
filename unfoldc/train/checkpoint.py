"""Weights files (safetensors with the spec's sha256) and resumable training checkpoints.

`weights.safetensors` is what users ship: the network's `state_dict()` plus metadata naming the
spec (sha256), the layer count and every shape, so that loading it into a network compiled from
another spec, or with other sizes, is refused with a message instead of silently misbehaving.
`checkpoint.pt` is private to training: weights, optimizer, data-stream and loop state.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from unfoldc.limits import MAX_LAYERS
from unfoldc.train.config import ADJUSTABLE
from unfoldc.train.errors import ConfigError, WeightsError
from unfoldc.train.files import CHECKPOINT, WEIGHTS, one_line, read_torch, require_file

__all__ = ["CHECKPOINT", "WEIGHTS", "apply_weights", "load_checkpoint", "load_weights",
           "checkpoint_lr", "read_weights", "save_checkpoint", "save_weights", "weights_layers"]


def _atomic(path: Path, write) -> None:
    """Write through a temporary file so an interrupted run never leaves a torn file."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Save `model.state_dict()` with its spec's sha256, name, layer count and shapes."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "spec_sha256": str(model.SPEC_SHA256),
        "spec_name": str(model.SPEC_NAME),
        "num_layers": str(model.num_layers),
        "shapes": json.dumps({k: list(v.shape) for k, v in state.items()}),
    }
    _atomic(Path(path), lambda tmp: save_file(state, str(tmp), metadata=metadata))


def load_weights(model: nn.Module, path: str | Path, keep_givens: bool = False) -> nn.Module:
    """Load a weights file into a compiled network, after checking that it fits.

    Args:
        model: the network (compiled from the same spec, with the same sizes).
        path: a file written by `save_weights`.
        keep_givens: keep the network's own givens (its data) instead of the file's copies.

    Returns:
        The same network, with the weights loaded.

    Raises:
        WeightsError: unreadable file, another spec (sha256), other layer count or shapes, or
            values that are NaN or infinite.
    """
    path = Path(path)
    metadata, tensors = read_weights(path)
    return apply_weights(model, metadata, tensors, path, keep_givens)


def apply_weights(model: nn.Module, metadata: dict[str, str], tensors: dict[str, torch.Tensor],
                  path: Path, keep_givens: bool = False) -> nn.Module:
    """Load tensors read by `read_weights` after the spec, depth and shape checks."""
    _check_spec(model, metadata, path)
    own = model.state_dict()
    if keep_givens:
        tensors = {**tensors, **{name: own[name] for name in model.GIVENS if name in own}}
    _check_shapes(model, tensors, path)
    model.load_state_dict(tensors)
    return model


def read_weights(path: str | Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and tensors of a weights file, refusing NaN or infinite values.

    Raises:
        WeightsError: the file is missing, unreadable, or holds non-finite values.
    """
    path = require_file(path, "weights file", WeightsError)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"cannot read `{path}` as a safetensors file: {one_line(exc)}") from None
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise WeightsError(f"`{path}` holds NaN or infinite values in `{name}`; it is not "
                               f"usable (was it saved from a diverged run?)")
    return metadata, tensors


def weights_layers(metadata: dict[str, str], path: str | Path) -> int | None:
    """The layer count a weights file records (None when it records none)."""
    layers = metadata.get("num_layers")
    if layers is None:
        return None
    if not layers.isdigit() or int(layers) < 1:
        raise WeightsError(f"`{path}` records an invalid layer count {layers!r}")
    if len(layers) > len(str(MAX_LAYERS)) or int(layers) > MAX_LAYERS:
        raise WeightsError(f"`{path}` records {layers[:20]} layers, more than {MAX_LAYERS}, "
                           "the most unfoldc builds")
    return int(layers)


def _check_spec(model: nn.Module, metadata: dict[str, str], path: Path) -> None:
    theirs = metadata.get("spec_sha256")
    if theirs is None:
        raise WeightsError(f"`{path}` records no spec sha256: it was not written by unfoldc")
    if theirs != model.SPEC_SHA256:
        raise WeightsError(
            f"`{path}` holds weights for spec `{metadata.get('spec_name', '?')}` "
            f"(sha256 {theirs[:12]}...), but this network is compiled from spec "
            f"`{model.SPEC_NAME}` (sha256 {model.SPEC_SHA256[:12]}...); weights only load into "
            f"a network compiled from the exact spec they were trained with"
        )
    layers = weights_layers(metadata, path)
    if layers is not None and layers != model.num_layers:
        raise WeightsError(f"`{path}` holds {layers} layers but this network has "
                           f"{model.num_layers}; build it with num_layers={layers}")


def _check_shapes(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise WeightsError(f"`{path}` does not match the network: missing {missing or 'none'}, "
                           f"unexpected {extra or 'none'}")
    for name, value in own.items():
        if tuple(tensors[name].shape) != tuple(value.shape):
            raise WeightsError(
                f"shape mismatch for `{name}`: `{path}` has {tuple(tensors[name].shape)}, the "
                f"network has {tuple(value.shape)}; were the givens built with other sizes?"
            )


_CHECKPOINT_FIELDS = ("fingerprint", "model", "optimizer", "generator", "rng", "loop")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write the resumable training state (see `loop.py` for its fields)."""
    _atomic(Path(path), lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, fingerprint: dict) -> dict:
    """Read a training checkpoint, refusing one written by a differently configured run.

    Options in `config.ADJUSTABLE` (the learning rate) may differ: the resumed run uses its own.
    """
    state = _read_checkpoint(path)
    theirs = state["fingerprint"]
    changed = sorted(k for k in set(fingerprint) | set(theirs)
                     if k not in ADJUSTABLE and theirs.get(k) != fingerprint.get(k))
    if changed:
        raise ConfigError(f"cannot resume from `{path}`: it was written with different "
                          f"settings ({', '.join(changed)}); use another --out or drop --resume")
    return state


def checkpoint_lr(path: str | Path) -> float | dict | None:
    """The learning rate(s) a checkpoint was written with (None: it records the defaults)."""
    lr = _read_checkpoint(path)["fingerprint"].get("lr")
    return lr if isinstance(lr, float | dict) else None


def _read_checkpoint(path: str | Path) -> dict:
    state = read_torch(path, "checkpoint", ConfigError)
    missing = [k for k in _CHECKPOINT_FIELDS if not isinstance(state, dict) or k not in state]
    if missing or not isinstance(state["fingerprint"], dict):
        raise ConfigError(f"`{path}` is not an unfoldc training checkpoint (it lacks "
                          f"{', '.join(missing) or 'a fingerprint'}); use another --out or drop "
                          f"--resume")
    return state
