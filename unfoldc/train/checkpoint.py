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

from unfoldc.train.errors import ConfigError, WeightsError

WEIGHTS = "weights.safetensors"
CHECKPOINT = "checkpoint.pt"


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


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a weights file into a compiled network, after checking that it fits.

    Args:
        model: the network (compiled from the same spec, with the same sizes).
        path: a file written by `save_weights`.

    Returns:
        The same network, with the weights loaded.

    Raises:
        WeightsError: unreadable file, another spec (sha256), other layer count or shapes.
    """
    path = Path(path)
    metadata, tensors = _read(path)
    _check_spec(model, metadata, path)
    _check_shapes(model, tensors, path)
    model.load_state_dict(tensors)
    return model


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise WeightsError(f"weights file `{path}` does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {}), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"cannot read `{path}` as a safetensors file: {exc}") from None


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
    layers = metadata.get("num_layers")
    if layers is not None and int(layers) != model.num_layers:
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


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write the resumable training state (see `loop.py` for its fields)."""
    _atomic(Path(path), lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, fingerprint: dict) -> dict:
    """Read a training checkpoint, refusing one written by a differently configured run."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a corrupt file
        raise ConfigError(f"cannot read checkpoint `{path}`: {exc}") from None
    if state.get("fingerprint") != fingerprint:
        changed = sorted(k for k in set(fingerprint) | set(state.get("fingerprint", {}))
                         if state.get("fingerprint", {}).get(k) != fingerprint.get(k))
        raise ConfigError(f"cannot resume from `{path}`: it was written with different "
                          f"settings ({', '.join(changed)}); use another --out or drop --resume")
    return state
