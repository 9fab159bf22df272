"""The `fixed_point(...)` declaration: parsed into Program.fixed_point, wrong options are E0311."""

import pytest

import unfoldc
from unfoldc.ir.program import FixedPointMode
from unfoldc.source import Source

SPEC = """algorithm ISTA
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
train  mu : scalar shared = 0.1   positive
{line}
layers 4:
    s <- soft(s - mu * H.T @ (H @ s - x), 0.1 * mu)
output s
"""


def _compile(line):
    return unfoldc.compile_source(Source("t.unf", SPEC.format(line=line))).program


def _errors(line):
    with pytest.raises(unfoldc.UserError) as err:
        _compile(line)
    return [(d.code, d.message) for d in err.value.diagnostics]


def test_declaration_sets_the_mode_and_omitted_options_take_defaults():
    assert _compile("").fixed_point is None
    assert _compile("fixed_point()").fixed_point == FixedPointMode()
    mode = _compile("fixed_point(backward = jfb, max_iter = 1e3, tol = 1e-7)").fixed_point
    assert mode == FixedPointMode(tol=1e-7, max_iter=1000, backward="jfb")


def test_declaration_after_the_layers_block():
    text = SPEC.format(line="") + "fixed_point(backward = unroll)\n"
    program = unfoldc.compile_source(Source("t.unf", text)).program
    assert program.fixed_point.backward == "unroll"


@pytest.mark.parametrize("line, message", [
    ("fixed_point(tol = 0)", "`tol = 0` is not valid"),
    ("fixed_point(tol = fast)", "`tol = fast` is not valid"),
    ("fixed_point(max_iter = 2.5)", "`max_iter = 2.5` is not valid"),
    ("fixed_point(max_iter = 0)", "`max_iter = 0` is not valid"),
    ("fixed_point(max_iter = 1e400)", "`max_iter = 1e400` is not valid"),
    ("fixed_point(backward = adjoint)", "`backward = adjoint` is not valid"),
    ("fixed_point(backward = 1)", "`backward = 1` is not valid"),
    ("fixed_point(iters = 3)", "`fixed_point` has no option `iters`"),
    ("fixed_point(tol = 1e-3, tol = 1e-4)", "option `tol` is given twice"),
    ("fixed_point()\nfixed_point()", "the spec declares `fixed_point` twice"),
])
def test_bad_declarations_are_e0311(line, message):
    assert _errors(line) == [("E0311", message)]


def test_fixed_point_is_a_reserved_name():
    assert [c for c, _ in _errors("let fixed_point = 1")] == ["E0206"]
