"""codegen/liveness.py: what generated code reads, decided from the IR before printing.

The oracle here is Python's own parser run on the printed code (tests only: the compiler never
re-parses what it emitted).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import unfoldc
from unfoldc.codegen.helpers import HELPERS, TAKES_LIKE
from unfoldc.codegen.liveness import FILL, SAME, ZEROS, expr_reads, fit, unpacked
from unfoldc.codegen.module import ModuleEmitter
from unfoldc.ir.expr import Const, Op, Sym
from unfoldc.ir.types import SCALAR, Type
from unfoldc.source import Source

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ALL_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.unf"))
VEC = Type("vector", ("n",), batched=True)


def _loaded(code: str) -> set[str]:
    """Every name `code` (one expression) loads, by Python's parser."""
    return {n.id for n in ast.walk(ast.parse(code, mode="eval")) if isinstance(n, ast.Name)}


def _method(code: str, name: str) -> str:
    """The source of method `name` of the network class in a generated module."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(code, node)
    raise AssertionError(f"no method {name}")


def test_a_symbol_reads_its_generated_name():
    x = Sym("x", VEC, "state")
    assert expr_reads(x, lambda s: s.name + "_") == {"x_"}


def test_a_number_in_a_call_reads_like_and_its_dimension():
    """`sqrt(n)` of a dimension prints `torch.sqrt(like.new_tensor(n))`."""
    n = Sym("n", SCALAR, "dim")
    e = Op("sqrt", (n,), SCALAR)
    assert expr_reads(e, lambda s: s.name) == {"like", "n"}
    assert expr_reads(Op("sqrt", (Sym("t", SCALAR, "state"),), SCALAR), lambda s: s.name) \
        == {"t"}


def test_a_sized_operator_reads_its_sizes_and_like():
    eye = Op("eye", (Const(3.0),), Type("matrix", ("n", "n")))
    assert expr_reads(eye, lambda s: "N" if s.name == "n" else s.name) >= {"N", "like"}


def test_takes_like_is_the_helpers_whose_last_parameter_is_like():
    def last_param(source):
        fn = ast.parse(source.strip()).body[0]
        return fn.args.args[-1].arg if isinstance(fn, ast.FunctionDef) and fn.args.args else ""
    assert {name for name, src in HELPERS.items() if last_param(src) == "like"} == TAKES_LIKE


def test_fit_forms():
    state = Sym("s", VEC, "state")
    assert fit(state, Const(0.0)) == ZEROS
    assert fit(state, Sym("y", VEC, "input")) == SAME
    assert fit(state, Sym("a", SCALAR, "let")) == FILL  # a scalar fills the batch and shape


def test_unpacked_marks_unread_values_and_skips_unread_tuples():
    assert unpacked(["a", "b"], {"b"}) == ["_", "b"]
    assert unpacked(["a", "b"], {"c"}) is None


# every top-level name the helpers define (one helper may define several: tsvd_left)
HELPER_NAMES = {node.name for src in HELPERS.values() for node in ast.parse(src.strip()).body
                if isinstance(node, ast.FunctionDef | ast.ClassDef)} | set(HELPERS)


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_expression_reads_equal_the_printed_codes_names(name):
    """For every expression an example prints in forward, the IR reads are exactly the names
    in the printed text (helpers and `torch` aside)."""
    art = unfoldc.compile(EXAMPLES / f"{name}.unf")
    em = ModuleEmitter(art.optimized, art.source)
    pr = em._printer("forward")
    for a in art.optimized.prologue + art.optimized.body:
        printed = _loaded(pr(a.value)) - HELPER_NAMES - {"torch"}
        reads = {r.split(".")[0] for r in expr_reads(a.value, pr.name_of)}
        assert reads == printed, (a.target, pr(a.value))


LIVE = """
algorithm live
given H: matrix[m, n]
input y: vector[m]
state x: vector[n] = 0
state z: vector[n] = 0
let c = 0.5 * H.T @ y
layers 3:
    z <- x
    x <- soft(x - c, 0.1)
output z
"""


def _compile(text: str):
    return unfoldc.compile_source(Source("live.unf", text))


SHARED_STATE = """
algorithm shared
given H: matrix[m, n]
input y: vector[m]
state t: scalar = 1
layers 3:
    t <- t * 0.5
output t
"""


def test_a_value_read_only_by_the_output_is_kept():
    """The batch size only `_output` reads (to expand a state shared by the batch) is assigned
    in `_start` and passed to `_output` alone; a state only the output reads is unpacked there."""
    code = _compile(SHARED_STATE).code
    assert "return (B,), (t,)" in _method(code, "_start")
    assert "(B,) = context" in _method(code, "_output")
    assert "context" not in _method(code, "_step").split('"""')[-1]
    assert "_, z = states" in _method(_compile(LIVE).code, "_output")


def test_an_unread_let_is_not_passed_on():
    """`c` is read by the layers, a let nothing reads is dropped (by dce) and never bound."""
    src = LIVE.replace("let c = 0.5 * H.T @ y", "let c = 0.5 * H.T @ y\nlet d = 2 * y")
    code = _compile(src).code
    assert "(c,) = context" in _method(code, "_step")
    assert not re.search(r"\bd\b", _method(code, "_start"))


def test_a_state_read_only_in_the_next_layer_is_unpacked():
    """`z <- x` reads x's value from the previous layer: `_step` unpacks both states."""
    step = _method(_compile(LIVE).code, "_step")
    assert "x, z = states" in step


def test_unread_batch_size_and_like_are_not_assigned():
    """No initial state needs the batch size or a new tensor: `_start` assigns neither."""
    src = LIVE.replace("= 0\nstate z: vector[n] = 0", "= H.T @ y\nstate z: vector[n] = H.T @ y")
    start = _method(_compile(src).code, "_start")
    assert not re.search(r"^\s*(B|like) = ", start, re.M)
    start = _method(_compile(LIVE).code, "_start")
    assert re.search(r"^\s*B = ", start, re.M) and re.search(r"^\s*like = ", start, re.M)

