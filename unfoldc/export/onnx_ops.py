"""ONNX translations for the torch operators that torch.onnx has none for, but unfoldc emits.

`solve` and `inv` lower to `aten._linalg_solve_ex` and `aten.linalg_inv_ex`, which the ONNX
standard cannot express (it has no matrix inverse or linear solver). onnxruntime has one as a
contrib operator, `com.microsoft::Inverse` (batched, float16/32/64), so a spec that solves a
system exports as an inverse followed by a product. That is numerically weaker than an LU solve
for ill-conditioned systems, and the file then needs onnxruntime (or another runtime with the
`com.microsoft` domain): `CONTRIB_OPS` names what the exporter tells the user about.
"""

from __future__ import annotations

import torch
from onnx.defs import OpSchema
from onnxscript import opset18 as op
from onnxscript.values import Op, Opset

# onnx ships no schemas for onnxruntime's contrib operators: this is Inverse's, as onnxruntime
# documents it (docs/ContribOperators.md, com.microsoft.Inverse, version 1).
_INVERSE_SCHEMA = OpSchema(
    "Inverse", "com.microsoft", 1, doc="the inverse of every matrix of a batch",
    inputs=[OpSchema.FormalParameter("X", "T")], outputs=[OpSchema.FormalParameter("Y", "T")],
    type_constraints=[("T", ["tensor(float16)", "tensor(float)", "tensor(double)"], "")],
)
INVERSE = Op(Opset("com.microsoft", 1), "Inverse", _INVERSE_SCHEMA)

# The torch operators translated here, by the spec operator that emits them.
CONTRIB_OPS = {"linalg_solve_ex": "solve", "linalg_inv_ex": "inv"}


def _is_vector_rhs(A, B) -> bool:
    """torch.linalg.solve's rule: B is a (batch of) vector(s) when it has one dimension less."""
    return len(B.shape) == 1 or len(B.shape) == len(A.shape) - 1


def linalg_solve_ex(A, B, left: bool = True, check_errors: bool = False):
    """X with A X = B (or X A = B when not `left`), and placeholders for LU, pivots and info.

    The placeholders are never read: `torch.linalg.solve` keeps only X.
    """
    inverse = INVERSE(A)
    if _is_vector_rhs(A, B):
        X = op.Squeeze(op.MatMul(inverse, op.Unsqueeze(B, [-1])), [-1])
    else:
        X = op.MatMul(inverse, B) if left else op.MatMul(B, inverse)
    info = op.Constant(value_int=0)
    return X, A, info, info


def linalg_inv_ex(A, check_errors: bool = False):
    """The inverse of A (batched), and a placeholder for torch's `info` output."""
    return INVERSE(A), op.Constant(value_int=0)


TRANSLATIONS = {
    torch.ops.aten._linalg_solve_ex.default: linalg_solve_ex,
    torch.ops.aten.linalg_inv_ex.default: linalg_inv_ex,
}
