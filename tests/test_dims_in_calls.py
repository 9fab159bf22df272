"""A dimension name is a Python int in generated code: every elementwise operator of the table
must accept it (issue 12's first crash: `sqrt(m)` compiled and then raised TypeError)."""

from __future__ import annotations

import pytest
import torch

import unfoldc
from unfoldc import ops

# Elementwise calls (not infix operators) whose arguments are all scalars, by arity.
CALLS = sorted(name for name, d in ops.OPS.items()
               if d.elementwise and not d.infix and not d.internal and d.arity[0] <= 2)
OPERANDS = {"dim": "m", "ratio": "m / n", "literal": "2", "param": "c", "let": "q"}


def _call(name: str, operand: str) -> str:
    d = ops.OPS[name]
    args = [operand] * max(1, d.arity[0])
    if name in ("clamp", "proj_box"):
        args = [operand, "0", "3"]
    return f"{d.spelling}({', '.join(args)})"


@pytest.mark.parametrize("operand", sorted(OPERANDS))
@pytest.mark.parametrize("name", CALLS)
def test_every_elementwise_call_accepts_every_scalar_operand(name, operand):
    arg = OPERANDS[operand]
    call = _call(name, arg)
    spec = f"""
algorithm D "elementwise {name} of a {operand}"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
param  c : scalar = 2
let    q = 1 + m
let    k = {call}
func   f(v : vector[n]) = 0.5 * sqnorm(H @ v - x) * {call}
minimize f(s)
layers 2:
    t = {call}
    s <- s - 0.001 * (k + t) * H.T @ (H @ s - x)
output s
"""
    cls = unfoldc.load_source(spec, name="d.unf")
    model = cls(H=torch.randn(4, 6, dtype=torch.float64))
    x = torch.randn(3, 4, dtype=torch.float64)
    out = model(x)  # setup (let), forward (temporary), objective, report: no TypeError
    assert out.shape == (3, 6)
    assert model.objective(out, x).shape == (3,)
    model.convergence_report()
