"""Checks of user arrays before any network sees them: type, finiteness, shapes, targets.

Each failure is a `DataError` naming the array, where it came from and, for non-finite values,
the first bad row (counted from 0), so that a NaN in the data is never blamed on the learning
rate and a wrong width never surfaces as a shape error deep inside a forward pass.
"""

from __future__ import annotations

import numpy as np
import torch

from unfoldc.ir.types import DimSum, is_fresh
from unfoldc.train.errors import DataError


def as_tensor(where: str, name: str, value) -> torch.Tensor:
    """A real, finite, non-empty float64 tensor from an array read out of `where`."""
    if isinstance(value, np.ndarray):
        if value.dtype == np.bool_ or not np.issubdtype(value.dtype, np.number):
            raise DataError(f"array `{name}` in {where} is not numeric (dtype {value.dtype})")
        if np.iscomplexobj(value):
            raise DataError(f"array `{name}` in {where} must be real, not {value.dtype}")
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise DataError(f"entry `{name}` in {where} is a {type(value).__name__}, not an array")
    if value.is_complex() or value.dtype == torch.bool:
        raise DataError(f"array `{name}` in {where} must be real, not {value.dtype}")
    if value.numel() == 0:
        raise DataError(f"array `{name}` in {where} is empty (shape {tuple(value.shape)})")
    value = value.to(torch.float64)
    check_finite(where, name, value)
    return value


def check_finite(where: str, name: str, value: torch.Tensor) -> None:
    """Refuse NaN or infinite entries, naming the first bad row."""
    bad = ~torch.isfinite(value)
    if not bool(bad.any()):
        return
    if value.dim() == 0:
        raise DataError(f"array `{name}` in {where} is {value.item()}; it must be finite")
    row = int(bad.reshape(value.shape[0], -1).any(dim=1).nonzero()[0])
    entry = value.reshape(value.shape[0], -1)[row][bad.reshape(value.shape[0], -1)[row]][0]
    raise DataError(f"array `{name}` in {where} holds {entry.item()} in row {row} (counted from "
                    f"0); remove or repair the non-finite values")


def spec_types(model_cls) -> dict:
    """{name: declared type} of a compiled network; empty for hand-written networks."""
    artifacts = getattr(model_cls, "artifacts", None)
    if artifacts is None:
        return {}
    return {symbol.name: symbol.type for symbol in artifacts.program.symbols}


def check_shapes(model_cls, arrays: dict[str, torch.Tensor], batched: set[str],
                 where: str | dict[str, str]) -> None:
    """Check arrays, keyed by spec name, against the declared types and each other's sizes.

    Args:
        model_cls: the compiled network class (or an instance).
        arrays: givens and per-sample arrays by spec name.
        batched: the names whose first dimension is the batch.
        where: the data's origin, for messages (e.g. "`data.npz`"), or one per array name.

    Raises:
        DataError: wrong number of dimensions, a fixed size that differs, or one dimension
            name given two sizes by two arrays.
    """
    types = spec_types(model_cls)
    sizes: dict[str, tuple[int, str]] = {}
    for name, value in arrays.items():
        declared = types.get(name)
        if declared is None:
            continue
        origin = where if isinstance(where, str) else where.get(name, "the givens")
        lead = int(name in batched)
        layout = ["batch"] * lead + [str(d) for d in declared.dims]
        if value.dim() != len(layout):
            raise DataError(f"array `{name}` in {origin} must have {len(layout)} dimension(s) "
                            f"({', '.join(layout) or 'a single number'}), got shape "
                            f"{tuple(value.shape)}")
        for dim, size in zip(declared.dims, value.shape[lead:], strict=True):
            _unify(dim, size, name, sizes, origin)


def _unify(dim, size: int, name: str, sizes: dict[str, tuple[int, str]], where: str) -> None:
    if isinstance(dim, int):
        if size != dim:
            raise DataError(f"array `{name}` in {where} has size {size} where the spec "
                            f"declares {dim}")
        return
    if is_fresh(dim):
        return
    if isinstance(dim, DimSum):  # `n - 1` of size 5: n = 6
        base, rest = divmod(size - dim.offset, dim.scale)
        if rest or base <= 0:
            raise DataError(f"array `{name}` in {where} has size {size} where the spec declares "
                            f"{dim}: no size of `{dim.name}` gives it")
        dim, size = dim.name, base
    known, holder = sizes.setdefault(dim, (size, name))
    if known != size:
        raise DataError(f"array `{name}` in {where} has {dim} = {size}, but `{holder}` has "
                        f"{dim} = {known}; the arrays must agree on `{dim}`")


def check_targets(task, binding) -> None:
    """Refuse all-zero targets, whose NMSE (error relative to their energy) is undefined."""
    for name, value in binding.model_targets(_split(task)).items():
        if not bool(value.any()):
            raise DataError(f"target `{name}` in {origin(task)} is zero everywhere: its NMSE "
                            f"is undefined; use --loss mse (loss=\"mse\") or other targets")


def check_task(model_cls, task, binding) -> None:
    """Check a task's givens and per-sample arrays against the network's declared types."""
    split = _split(task)
    batched = {**binding.model_inputs(split), **binding.model_targets(split)}
    check_shapes(model_cls, {**binding.model_givens(task), **batched}, set(batched),
                 origin(task))


def origin(task) -> str:
    """Where a task's arrays come from, for messages: its file, or its name."""
    path = task.description.get("path") or task.description.get("source")
    return f"`{path}`" if path else f"the task `{task.name}`"


def _split(task):
    return task.train if task.train is not None else task.val
