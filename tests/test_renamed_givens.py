"""A spec symbol whose name the generated code must rename (`B` is a name of the generated
forward: it becomes `B_`) is still named as the spec names it on the command line and in data
files: `unfoldc check --given B=...` crashed with an internal error."""

from __future__ import annotations

import numpy as np
import torch

import unfoldc
from unfoldc.cli import main
from unfoldc.train import operands

SPEC = """algorithm GB
given  B : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
let    L = opnorm(B)^2
layers 4:
    s <- s - (1 / L) * B.T @ (B @ s - x)
output s
"""


def test_check_takes_the_spec_name_of_a_renamed_given(tmp_path, capsys):
    spec, given = tmp_path / "b.unf", tmp_path / "B.npy"
    spec.write_text(SPEC)
    np.save(given, np.random.default_rng(0).standard_normal((5, 8)))
    assert main(["check", str(spec), "--given", f"B={given}"]) in (0, 4)
    out = capsys.readouterr()
    assert "internal error" not in out.err and "convergence report" in out.out


def test_the_generated_class_maps_its_names_to_the_spec_names():
    cls = unfoldc.load_source(SPEC, "b.unf")
    assert cls.GIVENS == ("B_",) and cls.SPEC_NAMES == {"B_": "B"}
    assert operands.python_name(cls, "B") == "B_" and operands.spec_name(cls, "B_") == "B"
    model = operands.build(cls, {"B": torch.randn(5, 8, dtype=torch.float64)})
    assert model.B_.shape == (5, 8)
    assert not hasattr(unfoldc.load("examples/ista.unf"), "SPEC_NAMES")  # nothing renamed
