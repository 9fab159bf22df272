"""The files a user names: inputs that must be readable, and the output directory of a run.

Every problem is reported as a one-line `TrainError` naming the path: a directory where a file
is expected says so (not "does not exist"), library messages are cut to their first line and
stripped of terminal escapes, and pickled objects are refused without torch's advice on how to
load them anyway.
"""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import numpy as np

from unfoldc.train.errors import ConfigError, DataError, TrainError
from unfoldc.train.logs import LOGS
from unfoldc.train.validate import as_tensor

WEIGHTS = "weights.safetensors"
CHECKPOINT = "checkpoint.pt"
CONFIG, METRICS = "config.json", "metrics.json"
PLOTS = ("nmse_per_layer.png", "training_curve.png", "parameters.png")
# The results of a run, which a new run refuses to replace; its logs (steps.csv, ...) alone do
# not block one (a run that diverged before its first checkpoint leaves only logs) and are
# rewritten by it, but `overwrite` removes them with the rest.
RESULTS = (WEIGHTS, CHECKPOINT, CONFIG, METRICS, *PLOTS)
OUTPUTS = (*RESULTS, *LOGS)

_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, without terminal escapes."""
    text = _ESCAPE.sub("", str(exc)).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def require_file(path: str | Path, what: str, error: type[TrainError] = DataError) -> Path:
    """`path` when it names a file; otherwise `error`, saying what is there instead."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} `{path}` is a directory, not a file")
    if not path.is_file():
        raise error(f"{what} `{path}` does not exist")
    return path


def read_npy(path: str | Path, what: str) -> np.ndarray:
    """One array from a `.npy` file (pickled objects refused)."""
    path = require_file(path, what)
    try:
        value = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a corrupt header raises tokenize, syntax errors...
        raise DataError(f"cannot read {what} `{path}` as a .npy file: {one_line(exc)}") from None
    if isinstance(value, np.lib.npyio.NpzFile):
        value.close()
        raise DataError(f"{what} `{path}` is a .npz archive; give one array as a .npy file")
    return value


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a `.npz` file (pickled objects refused)."""
    path = require_file(path, "data file")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not a .npz archive of named arrays")
        with data:
            return {name: data[name] for name in data.files}
    except Exception as exc:  # noqa: BLE001 - a corrupt archive raises zlib, zip, tokenize errors...
        raise DataError(f"cannot read `{path}` as a .npz file: {one_line(exc)}") from None


def load_arrays(path: str | Path) -> dict:
    """Read every array of a `.npz` file or a `.pt` file holding a dict of tensors/arrays.

    Raises:
        DataError: unreadable file, or an array that is not real, is empty or is not finite.
    """
    path = require_file(path, "data file")
    if path.suffix == ".npz":
        raw = read_npz(path)
    elif path.suffix == ".pt":
        raw = read_torch(path, "data file")
        if not isinstance(raw, dict):
            raise DataError(f"`{path}` must hold a dict of named arrays, not "
                            f"{type(raw).__name__}")
    else:
        raise DataError(f"data file `{path}` must end in .npz or .pt")
    return {name: as_tensor(f"`{path}`", name, value) for name, value in raw.items()}


def read_torch(path: str | Path, what: str, error: type[TrainError] = DataError):
    """A `torch.save` file holding tensors and plain containers only (no code runs)."""
    import torch

    path = require_file(path, what, error)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise error(f"{what} `{path}` holds Python objects other than tensors, numbers and "
                    f"containers; refused, since loading them could run code") from None
    except Exception as exc:  # torch.load raises many types for a corrupt file
        raise error(f"cannot read {what} `{path}`: {one_line(exc)}") from None


def check_out_dir(out: str | Path, resume: bool = False, overwrite: bool = False) -> Path:
    """The output directory of a run, refusing one whose results would be lost.

    Args:
        out: the directory (created later, when training starts).
        resume: continue the run whose checkpoint the directory holds.
        overwrite: replace the outputs of an earlier run.

    Returns:
        `out` as a path.

    Raises:
        ConfigError: `out` is empty, is (or lies below) a file, or holds outputs of a run and
            neither `resume` (with a checkpoint) nor `overwrite` is set.
    """
    if not str(out).strip():
        raise ConfigError("the output directory is empty; name one, e.g. --out runs/ista")
    if resume and overwrite:
        raise ConfigError("--resume continues a run and --overwrite replaces it; pass only one")
    path = Path(out)
    blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        where = "is" if blocking == path else f"lies below `{blocking}`, which is"
        raise ConfigError(f"output directory `{out}` {where} a file; choose a directory")
    held = [name for name in RESULTS if (path / name).exists()]
    if not held or overwrite or (resume and CHECKPOINT in held):
        return path
    listing = ", ".join(held)
    if resume:
        raise ConfigError(f"`{out}` holds {listing} but no {CHECKPOINT} to resume from; pass "
                          f"--overwrite (overwrite=True) to replace them, or another --out")
    raise ConfigError(f"`{out}` already holds the outputs of a run ({listing}); pass --resume "
                      f"(resume=True) to continue it, --overwrite (overwrite=True) to replace "
                      f"them, or choose another --out")


def clear_outputs(out: Path) -> None:
    """Remove an earlier run's outputs (for `overwrite`), so that none outlives the new run."""
    for name in OUTPUTS:
        if (out / name).is_dir():  # the TensorBoard folder
            shutil.rmtree(out / name)
        else:
            (out / name).unlink(missing_ok=True)
