"""Every operator of the table applied to every kind of operand (issue 12).

The grid is generated from `ops.OPS`: each operator, at each of its argument positions, gets
each kind of operand a spec can write (a dimension, a literal, a param, a let, a given, an
input, a state, a per-layer trainable, the layer index), in each type that kind can have, with
the other arguments filled so that the operator's shape rule (and the checker's own rule for
`v[layer]`) accepts the call when some filling does.
Accepted applications are compiled together (one spec per operator: in the layer body, and in a
`let` when every operand is known at construction), built, run and reported on; no combination
may raise. Refused applications must each be a located diagnostic on their own line.
(tests/test_dims_in_calls.py covers the scalar operands of elementwise calls in more contexts.)
"""

from __future__ import annotations

import itertools

import pytest
import torch

import unfoldc
from unfoldc import ops
from unfoldc.ir.expr import Const, Sym
from unfoldc.ir.types import SCALAR, DimSum, DimTable, Type, matrix, vector

pytestmark = pytest.mark.usefixtures("one_thread")

V, M = vector("n"), matrix("n", "n")
P = matrix(DimSum("n", 0, 2), "n")  # what grad2d returns and div2d takes
# kind -> [(spelling, type, role)]; roles known at construction can also feed a `let`.
OPERANDS = {
    "dimension": [("n", SCALAR, "dim")],
    "literal": [("2", SCALAR, "const")],
    "param": [("c", SCALAR, "param"), ("pv", V, "param")],
    "let": [("q", SCALAR, "let"), ("lv", V, "let"), ("lm", M, "let"), ("lp", P, "let")],
    "given": [("g", V, "given"), ("G", M, "given")],
    "input": [("x", V, "input")],
    "state": [("t", SCALAR, "state"), ("s", V, "state"), ("S", M, "state")],
    "per-layer trainable": [("w", SCALAR, "train"), ("wv", V, "train")],
    "layer index": [("layer", SCALAR, "layer")],
}
STATIC = {"dim", "const", "param", "let", "given"}
FILLERS = [("0.5", SCALAR, "const"), ("g", V, "given"), ("G", M, "given"), ("n", SCALAR, "dim"),
           ("2", SCALAR, "const")]
HEADER = """algorithm Grid
given  G : matrix[n, n]
given  g : vector[n]
input  x : vector[n]
param  c : scalar = 2
param  pv : vector[n] = 0.5
let    q = 1 + n
let    lv = G @ g
let    lm = G.T @ G + eye(n)
let    lp = grad2d(G)
state  t : scalar = 0.5
state  s : vector[n] = 0.5
state  S : matrix[n, n] = G
train  w : scalar per_layer = 0.5
train  wv : vector[n] per_layer = 0.5
"""
SPELLING = {name: sym for sym, name in ops.BINARY.items()}


def _stand_in(text: str, t: Type, role: str):
    if role == "const":
        return Const(float(text))
    return Sym(text, t, role)


# Rules the checker applies beyond the shape rule: `v[layer]` indexes a vector known at
# construction by the layer index only.
CHECKER_RULES = {"index": lambda args: args[1][0] == "layer" and args[0][2] in STATIC}


def _accepts(op: str, args) -> bool:
    if op in CHECKER_RULES and not CHECKER_RULES[op](args):
        return False
    try:
        ops.OPS[op].shape(DimTable(), [_stand_in(*a) for a in args])
    except ops.ShapeError:
        return False
    return True


def _text(op: str, args) -> str:
    a = [x[0] for x in args]
    if op in SPELLING:
        return f"({a[0]}) {SPELLING[op]} ({a[1]})"
    if op == "neg":
        return f"-({a[0]})"
    if op == "transpose":
        return f"({a[0]}).T"
    if op == "index":
        return f"({a[0]})[{a[1]}]"
    return f"{ops.OPS[op].spelling}({', '.join(a)})"


def _first_accepted(op: str, pos: int, operand, pool, count: int):
    for rest in itertools.product(pool, repeat=count - 1):
        args = [*rest[:pos], operand, *rest[pos:]]
        if _accepts(op, args):
            return args
    return None


def applications(op: str):
    """(expression text, accepted, static) for every operand at every position of `op`: the
    first filling the shape rule accepts from the operand's own kind, from the fillers and
    from the fillers in reverse (so that numbers meet tensors and scalars meet vectors)."""
    lo, hi = ops.OPS[op].arity
    for count in range(max(lo, 1), hi + 1):
        for pos in range(count):
            for operand in (o for kind in OPERANDS.values() for o in kind):
                found = [_first_accepted(op, pos, operand, pool, count)
                         for pool in ([operand, *FILLERS], FILLERS, FILLERS[::-1])]
                found = [args for args in found if args is not None]
                if not found:
                    same = [operand] * count
                    yield _text(op, same), False, False
                for args in found:
                    yield _text(op, args), True, all(a[2] in STATIC for a in args)


NAMES = sorted(n for n, d in ops.OPS.items() if not d.internal)


def _balanced_sum(terms: list[str]) -> str:
    """`(a + b) + (c + d)`: a chain a + b + c + ... nests as deep as it is long, which makes
    every pass that hashes subtrees quadratic in the number of terms."""
    if len(terms) == 1:
        return terms[0]
    half = len(terms) // 2
    return f"({_balanced_sum(terms[:half])} + {_balanced_sum(terms[half:])})"


def _spec(lines: list[str], update: str) -> str:
    body = "".join(f"    {line}\n" for line in lines)
    return (HEADER + "layers 1:\n" + body + f"    s <- s - 0.001 * ({update})\n"
            "    t <- t + 0.001\n    S <- S + 0.001 * G\noutput s, t, S\n")


def _run(cls) -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    model = cls(G=a @ a.T + 3 * torch.eye(3, dtype=torch.float64),
                g=torch.rand(3, generator=g, dtype=torch.float64) + 0.5)
    s, t, S = model(torch.rand(2, 3, generator=g, dtype=torch.float64) + 0.5)
    assert s.shape == (2, 3) and S.shape[-2:] == (3, 3)
    model.convergence_report()


@pytest.mark.parametrize("op", NAMES)
def test_every_accepted_operand_compiles_and_runs(op):
    accepted = [(e, static) for e, ok, static in applications(op) if ok]
    assert accepted, f"`{op}` accepts no operand of the grid"
    lines, terms, lets = [], [], []
    for i, (e, static) in enumerate(dict.fromkeys(accepted)):
        lines.append(f"e{i} = {e}")
        terms.append(f"sum(e{i})")
        if static:
            lets.append(f"let    k{i} = {e}\n")
            terms.append(f"sum(k{i})")
    spec = _spec(lines, _balanced_sum(terms))
    spec = spec.replace("layers 1:", "".join(lets) + "layers 1:")
    cls = unfoldc.load_source(spec, name="grid.unf")  # raises on any diagnostic
    assert "convergence analysis failed" not in cls.__doc__
    _run(cls)


@pytest.mark.parametrize("op", NAMES)
def test_every_refused_operand_is_a_located_diagnostic(op):
    refused = list(dict.fromkeys(e for e, ok, _ in applications(op) if not ok))
    if not refused:
        return
    lines = [f"e{i} = {e}" for i, e in enumerate(refused)]
    spec = _spec(lines, "s")
    with pytest.raises(unfoldc.UserError) as err:
        unfoldc.load_source(spec, name="grid.unf")
    first = HEADER.count("\n") + 2  # the line of e0
    lines_with_errors = {d.span.line for d in err.value.diagnostics if d.is_error}
    assert lines_with_errors == set(range(first, first + len(refused))), refused
