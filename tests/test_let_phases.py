"""A `let` that reads a per-call `let` is per call too (it once went to setup and broke the IR)."""

from __future__ import annotations

import pytest
import torch

import unfoldc
from unfoldc.source import Source

CHAIN = """algorithm chain
given H: matrix[m, n]
input y: vector[m]
state x: vector[n] = 0
let c = 0.5 * H.T @ y
let d = 2 * c
layers 3:
    x <- x - d
output x
"""


def test_a_let_of_a_per_call_let_is_computed_per_call():
    model = unfoldc.load_source(CHAIN, name="chain.unf")(H=torch.eye(3, dtype=torch.float64))
    y = torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(model(y), -3 * y)  # three layers of x <- x - y


def test_layer_cannot_index_a_let_of_a_per_call_let():
    text = CHAIN.replace("x <- x - d", "x <- x - d[layer] * x")
    with pytest.raises(unfoldc.UserError) as info:
        unfoldc.compile_source(Source("chain.unf", text))
    codes = [(d.code, d.span.line) for d in info.value.diagnostics if d.is_error]
    assert codes == [("E0207", 8)]


def test_a_chain_of_lets_each_reading_two_earlier_ones_compiles_in_linear_time():
    """Lets c_k = c_{k-1} + c_{k-2}: their inlined tree grows like Fibonacci. Deciding each
    let's phase by re-deciding the lets it reads, and expanding them without sharing before the
    analysis's size guard, both took exponential time (22 lets: 6 s; 40 would take hours). Each
    let is now decided and expanded once, and the analysis refuses the tree by its size."""
    lines = ["algorithm chain", "given H: matrix[m, n]", "input y: vector[m]",
             "state x: vector[n] = 0", "let c0 = H.T @ y", "let c1 = 2 * c0"]
    lines += [f"let c{k} = c{k - 1} + c{k - 2}" for k in range(2, 60)]
    lines += ["layers 3:", "    x <- x - c59", "output x", ""]
    artifacts = unfoldc.compile_source(Source("chain.unf", "\n".join(lines)))
    assert {f"c{k}" for k in range(60)} <= {a.target for a in artifacts.program.prologue}
    assert "convergence analysis skipped: line 66: the inlined update has" in artifacts.code
