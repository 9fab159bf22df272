"""unfoldc: compile .unf specs of iterative solvers into unrolled, trainable PyTorch networks.

    import unfoldc
    ISTA = unfoldc.load("examples/ista.unf")          # the generated nn.Module class
    art = unfoldc.compile("examples/ista.unf")         # every artifact: ast, IR, graph, code

Importing unfoldc does not import torch; only `load` (which runs generated code) does.
"""

from __future__ import annotations

from unfoldc.diagnostics import Diagnostic, UserError  # noqa: E402
from unfoldc.loader import load, load_source  # noqa: E402
from unfoldc.pipeline import Artifacts, Options, compile_file, compile_source  # noqa: E402
from unfoldc.version import __version__  # noqa: E402

compile = compile_file  # noqa: A001 - the natural name of the public entry point


def info(path, dims: dict | None = None, num_layers: int | None = None):
    """The paradigm report of the spec at `path` (see unfoldc/paradigms.py); `print()` it."""
    from unfoldc.paradigms import report

    return report(compile_file(path).program, dims, num_layers)

__all__ = [
    "Artifacts", "Diagnostic", "Options", "UserError", "compile", "compile_file",
    "compile_source", "info", "load", "load_source", "__version__",
]
