"""Export a built network as ONNX or as a `torch.export` archive (.pt2), batch size dynamic.

    model = unfoldc.load("examples/ista.unf")(H=H)
    notes = export_network(model, example_inputs(model), "onnx", "ista.onnx")

Both formats start from one `torch.export.export` of the network's forward with a dynamic
batch dimension on every input; `onnx` then converts that program with `torch.onnx.export(...,
dynamo=True)` (the optional extra `unfoldc[export]`), `pt2` saves it with `torch.export.save`.
A network that cannot be exported raises `ExportError`, located at the spec line whose code
failed when the failure can be traced back to it (see `locate.py`).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from unfoldc.export.locate import ExportError, locate

FORMATS = ("onnx", "pt2")
INSTALL = "pip install 'unfoldc[export]'"
# Batch size of the example inputs: torch.export specializes sizes 0 and 1, so 2 keeps it free.
EXAMPLE_BATCH = 2


def example_inputs(model, dims: dict[str, int] | None = None,
                   batch: int = EXAMPLE_BATCH) -> tuple[torch.Tensor, ...]:
    """Random inputs for tracing `model`, in `INPUTS` order, shaped by the spec's declarations.

    Args:
        model: a built network (its givens fix the sizes they declare).
        dims: sizes of the dimensions no given fixes, e.g. {"m": 64} (`--dims`).
        batch: the leading batch size.

    Raises:
        ExportError: an input has a dimension whose size neither a given nor `dims` sets.
    """
    types = {s.name: s.type for s in type(model).artifacts.program.symbols}
    sizes = dict(_given_sizes(model, types))
    _check_dims(dims or {}, sizes, types)
    sizes = {**(dims or {}), **sizes}
    like = next(iter(model.buffers()), torch.empty(()))
    generator = torch.Generator().manual_seed(0)
    inputs = []
    for name in type(model).INPUTS:
        shape = [_size(dim, sizes, name) for dim in types[name].dims]
        inputs.append(torch.randn(batch, *shape, generator=generator, dtype=torch.float64)
                      .to(like.dtype))
    return tuple(inputs)


def _given_sizes(model, types):
    for name in type(model).GIVENS:
        yield from zip(types[name].dims, getattr(model, name).shape)


def _check_dims(dims: dict[str, int], fixed: dict, types: dict) -> None:
    """`--dims` names dimensions of the spec, and agrees with the sizes the givens fix."""
    declared = {d for t in types.values() for d in t.dims if isinstance(d, str) and d[0] != "?"}
    for dim, size in dims.items():
        if dim not in declared:
            raise ExportError(f"--dims {dim}={size}: the spec has no dimension `{dim}` "
                              f"(it has {', '.join(f'`{d}`' for d in sorted(declared))})")
        if dim in fixed and fixed[dim] != size:
            raise ExportError(f"--dims {dim}={size}: the givens fix `{dim}` = {fixed[dim]}")


def _size(dim, sizes: dict, name: str) -> int:
    if isinstance(dim, int):
        return dim
    if dim not in sizes:
        raise ExportError(f"no given fixes the size `{dim}` of input `{name}`; give it with "
                          f"--dims {dim}=SIZE")
    return sizes[dim]


def export_network(model, inputs: tuple[torch.Tensor, ...], fmt: str,
                   path: str | Path) -> list[str]:
    """Write `model` (called on `inputs`, batch dimension dynamic) to `path` in format `fmt`.

    Returns:
        Notes for the user about the written file (e.g. operators that need onnxruntime).

    Raises:
        ExportError: the extra for `fmt` is not installed, or the network cannot be traced or
            converted (located at the failing spec line when known).
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    model = model.eval()
    if fmt == "onnx":
        return _to_onnx(model, inputs, Path(path))
    program = _trace(model, inputs)
    with _quiet():  # a warning meant for weights on several devices
        torch.export.save(program, Path(path))
    return []


def _trace(model, inputs):
    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} for _ in inputs)
    traced = model
    if len(type(model).OUTPUTS) > 1:
        traced, dynamic = _AsTuple(model), (dynamic,)  # forward(*inputs): one varargs entry
    try:
        with _quiet():
            return torch.export.export(traced, inputs, dynamic_shapes=dynamic)
    except Exception as exc:  # torch.export raises many types for code it cannot trace
        raise locate(exc, model, inputs, "torch.export") from None


def _to_onnx(model, inputs, path: Path) -> list[str]:
    try:
        from unfoldc.export.onnx_ops import CONTRIB_OPS, TRANSLATIONS
    except ImportError as exc:
        raise ExportError(f"--format onnx needs the optional packages onnx and onnxscript "
                          f"({exc.name} is missing); install them with: {INSTALL}") from None
    with _UncheckedLinalg():
        program = _trace(model, inputs)
    cls = type(model)
    try:
        with _quiet():
            onnx_program = torch.onnx.export(
                program, dynamo=True, verbose=False, custom_translation_table=TRANSLATIONS,
                input_names=list(cls.INPUTS), output_names=list(cls.OUTPUTS))
    except Exception as exc:  # a ConversionError wrapping what failed, for one fx node
        raise locate(exc, model, inputs, "torch.onnx") from None
    onnx_program.save(path, external_data=False)
    used = sorted({CONTRIB_OPS[n.target.__name__.split(".")[0]] for n in program.graph.nodes
                   if getattr(n.target, "__name__", "").split(".")[0] in CONTRIB_OPS})
    if not used:
        return []
    return [f"`{'`, `'.join(used)}` became the onnxruntime operator com.microsoft::Inverse: "
            "run the file with onnxruntime"]


class _AsTuple(nn.Module):
    """A network with several outputs, returning a plain tuple in `OUTPUTS` order.

    Its `Output` named tuple lives in a generated module that a `.pt2` archive cannot name, so
    `torch.export.save` refuses it, and a loader would need unfoldc to rebuild it. Parameters
    are then named `network.<name>` in the archive.
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, *inputs):
        return tuple(self.network(*inputs))


class _UncheckedLinalg(TorchFunctionMode):
    """`solve` and `inv` without their singularity check, which ONNX cannot express.

    `torch.linalg.solve(A, B)` is `solve_ex` followed by a check that raises on a singular A;
    the check is an effectful operator the ONNX exporter fails on. An ONNX graph cannot raise
    anyway, so the exported network returns what the solver returns (inf or nan).
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.linalg.solve:
            return torch.linalg.solve_ex(*args, **kwargs)[0]
        if func is torch.linalg.inv:
            return torch.linalg.inv_ex(*args, **kwargs)[0]
        return func(*args, **kwargs)


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' warnings about torch internals, which users cannot act on."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


__all__ = ["EXAMPLE_BATCH", "FORMATS", "ExportError", "example_inputs", "export_network"]
