"""User data from `.npz` / `.pt` files whose arrays are named after the spec's operands.

A file holds one array per input and per output of the spec (the training set, leading batch
dimension), optionally the givens (no batch dimension), and optionally fixed splits named
`val_<name>` and `test_<name>`. Without them the last `val_fraction` of the rows is held out for
validation and also used as the test set. Every problem is reported as a `DataError`.
"""

from __future__ import annotations

from pathlib import Path

from unfoldc.train.errors import DataError
from unfoldc.train.files import load_arrays
from unfoldc.train.operands import python_name
from unfoldc.train.tasks import Arrays, Task
from unfoldc.train.validate import check_shapes

SPLITS = ("val_", "test_")


def user_task(path: str | Path, model_cls, val_fraction: float = 0.1) -> Task:
    """Build a task from a user file, named with the network's own operand names.

    Args:
        path: the `.npz` or `.pt` file.
        model_cls: the compiled network class (its INPUTS, OUTPUTS and GIVENS name the arrays).
        val_fraction: share of rows held out when the file has no `val_*` arrays.

    Returns:
        A task with a fixed training set; its names equal the network's, so binding is direct.
    """
    # the file names arrays as the spec does; the network's attributes may be renamed (B -> B_)
    arrays = {python_name(model_cls, k): v for k, v in load_arrays(path).items()}
    inputs, outputs = tuple(model_cls.INPUTS), tuple(model_cls.OUTPUTS)
    _require(path, arrays, inputs, "input")
    targets = tuple(name for name in outputs if name in arrays)
    givens = {name: arrays[name] for name in model_cls.GIVENS if name in arrays}
    train = {name: arrays[name] for name in inputs + targets}
    check_shapes(model_cls, {**givens, **train}, set(train), f"`{path}`")
    _check_rows(path, train)
    train, val, test = _splits(path, arrays, train, val_fraction)
    description = {"task": "user-data", "path": str(path), "val_fraction": val_fraction}
    return Task("user-data", givens, inputs, targets, val, test, None, train, description)


def _require(path, arrays: Arrays, names: tuple[str, ...], role: str) -> None:
    missing = [name for name in names if name not in arrays]
    if missing:
        held = ", ".join(f"`{n}`" for n in arrays) or "no arrays"
        raise DataError(
            f"`{path}` lacks the {role} array(s) {', '.join(f'`{n}`' for n in missing)} "
            f"(it holds {held}); name the arrays after the spec's {role}s"
        )


def _check_rows(path, split: Arrays, prefix: str = "") -> None:
    rows = {name: value.shape[0] if value.dim() else 0 for name, value in split.items()}
    if len(set(rows.values())) > 1 or 0 in rows.values():
        listing = ", ".join(f"`{prefix}{n}` has {r}" for n, r in rows.items())
        raise DataError(f"arrays in `{path}` must share a leading batch dimension: {listing}")


def _splits(path, arrays: Arrays, train: Arrays, val_fraction: float):
    fixed = {}
    for prefix in SPLITS:
        split = {name: arrays[prefix + name] for name in train if prefix + name in arrays}
        if split and split.keys() != train.keys():
            _require(path, arrays, tuple(prefix + name for name in train), "split")
        if split:
            _check_rows(path, split, prefix)
            fixed[prefix] = split
    if "val_" not in fixed:
        train, fixed["val_"] = _hold_out(path, train, val_fraction)
    return train, fixed["val_"], fixed.get("test_", fixed["val_"])


def _hold_out(path, train: Arrays, fraction: float) -> tuple[Arrays, Arrays]:
    rows = next(iter(train.values())).shape[0]
    held = max(1, round(rows * fraction))
    if held >= rows:
        raise DataError(f"`{path}` has {rows} sample(s): too few to hold out a validation set")
    keep = rows - held
    return ({n: v[:keep] for n, v in train.items()}, {n: v[keep:] for n, v in train.items()})
