"""Map a task's array names onto a network's spec names.

A task says `A`, `y`, `x`; a spec may say `H`, `x`, `s`. Per role (givens, inputs, targets) the
names are matched by name when every spec name exists in the task, otherwise by position, unless
the user passes an explicit `{spec_name: task_name}` mapping. Targets bind to the spec's outputs
in order; outputs without a target are simply not supervised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unfoldc.train.errors import DataError
from unfoldc.train.tasks import Arrays, Task


@dataclass(frozen=True)
class Binding:
    """Spec name -> task name, per role."""

    givens: dict[str, str]
    inputs: dict[str, str]
    targets: dict[str, str]

    @property
    def primary(self) -> str | None:
        """The spec output scored by NMSE (the first supervised one)."""
        return next(iter(self.targets), None)

    def model_inputs(self, arrays: Arrays) -> Arrays:
        """The per-sample inputs of `arrays`, keyed by spec name."""
        return {spec: arrays[task] for spec, task in self.inputs.items()}

    def model_targets(self, arrays: Arrays) -> Arrays:
        """The ground truths of `arrays`, keyed by the spec output they supervise."""
        return {spec: arrays[task] for spec, task in self.targets.items()}

    def model_givens(self, task: Task) -> dict[str, torch.Tensor]:
        """The task's givens, keyed by spec name (to construct the network)."""
        return {spec: task.givens[name] for spec, name in self.givens.items()}


def bind(model_cls, task: Task, mapping: dict[str, str] | None = None) -> Binding:
    """Match a network class's operands to a task's arrays.

    Args:
        model_cls: a compiled network class or instance (GIVENS, INPUTS, OUTPUTS).
        task: the training problem.
        mapping: explicit `{spec_name: task_name}` pairs that override the matching.

    Returns:
        The binding.

    Raises:
        DataError: a spec input cannot be matched, or a mapping names an unknown array.
    """
    mapping = dict(mapping or {})
    givens = _match(tuple(model_cls.GIVENS), tuple(task.givens), mapping, "given", strict=False)
    inputs = _match(tuple(model_cls.INPUTS), task.input_names, mapping, "input", strict=True)
    targets = _match(tuple(model_cls.OUTPUTS), task.target_names, mapping, "output",
                     strict=False)
    return Binding(givens, inputs, targets)


def _match(spec: tuple[str, ...], offered: tuple[str, ...], mapping: dict[str, str],
           role: str, strict: bool) -> dict[str, str]:
    for name in spec:
        if name in mapping and mapping[name] not in offered:
            raise DataError(f"mapping sends {role} `{name}` to `{mapping[name]}`, "
                            f"which the task does not provide ({_names(offered)})")
    if all(name in offered or name in mapping for name in spec):
        return {name: mapping.get(name, name) for name in spec}
    if strict and len(spec) != len(offered):
        raise DataError(f"the network's {role}s are {_names(spec)} but the task provides "
                        f"{_names(offered)}; pass a mapping such as "
                        f"{{'{spec[0]}': '{offered[0] if offered else '...'}'}}")
    return {name: mapping.get(name, task_name)
            for name, task_name in zip(spec, offered, strict=False)}


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(f"`{n}`" for n in names) or "nothing"
