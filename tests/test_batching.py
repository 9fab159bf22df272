"""Which states carry a batch dimension (semantics/batching.py): decided once, by a propagation
over what each value reads, with the checker run once (issue 15, item 2; it used to re-run the
whole checker until the set of batched states stopped growing)."""

from __future__ import annotations

import pytest
from conftest import EXAMPLES

import unfoldc
from unfoldc.pipeline import read_source
from unfoldc.semantics import check as check_module
from unfoldc.semantics.batching import batched_states
from unfoldc.semantics.check import check
from unfoldc.semantics.lower import lower
from unfoldc.source import Source
from unfoldc.syntax.parser import parse

# a <- b <- (temp u) <- d <- (let y) <- input x: `a` is batched only through two other states,
# and its update comes first, so one pass in order would miss it. `e` reads the first value of
# the temporary `u` (unbatched), not the second; `g` is the gradient of a linear function, which
# no longer reads its (batched) argument; `k` is a counter.
CHAIN = """algorithm Chain "a chain of states"
given  H : matrix[m, n]
given  c : vector[n]
input  x : vector[m]
state  a : vector[n] = 0
state  b : vector[n] = 0
state  d : vector[n] = 0
state  e : vector[n] = 0
state  g : vector[n] = 0
state  k : scalar = 0
let    y = H.T @ x
func   f(v : vector[n]) = dot(c, v)
layers 3:
    a <- 0.5 * b
    u = k * c
    e <- e + u
    u = 2 * d
    b <- u
    d <- y
    g <- grad(f, a)
    k <- k + 1
output a, e, g
"""

# A state whose initial value reads an input is batched even if its updates alone are not.
FROM_INIT = """algorithm Init "batched by its initial value"
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = H.T @ x
state  r : scalar = 1
layers 2:
    s <- 0.5 * s
    r <- 0.5 * r
output s, r
"""

# Unbatched states of the examples: the rest read the input, directly or through other states.
UNBATCHED = {"fista": {"t"}, "alista": {"q"}, "lista_cpss": {"q"}}


def _checked(text: str, name: str = "t.unf"):
    source = Source(name, text)
    return check(parse(source), source)


def _batched(program) -> set[str]:
    return {s.name for s in program.symbols if s.role == "state" and s.type.batched}


@pytest.mark.parametrize(("text", "want"), [
    (CHAIN, {"a", "b", "d"}),
    (FROM_INIT, {"s"}),
])
def test_batched_states_of_small_specs(text, want):
    checked = _checked(text)
    assert batched_states(checked.symbols, checked.body) == want
    assert _batched(lower(checked)) == want


def test_a_temporary_assigned_twice_is_typed_per_assignment():
    program = lower(_checked(CHAIN))
    temps = [a.value.type.batched for a in program.body if a.target == "u"]
    assert temps == [False, True]


def test_fista_momentum_scalar_stays_unbatched():
    artifacts = unfoldc.pipeline.compile_file(EXAMPLES / "fista.unf")
    assert _batched(artifacts.program) == {"s", "z"}
    t = next(s for s in artifacts.program.symbols if s.name == "t")
    assert t.type.torch_rank == 0


def test_every_example_checks_once_and_batches_its_states(monkeypatch):
    runs = []
    real_run = check_module.Checker.run
    monkeypatch.setattr(check_module.Checker, "run", lambda self: runs.append(1) or real_run(self))
    for path in sorted(EXAMPLES.glob("*.unf")):
        runs.clear()
        source = read_source(path)
        program = lower(check(parse(source), source))
        assert len(runs) == 1, path.name
        states = {s.name for s in program.symbols if s.role == "state"}
        assert states - _batched(program) == UNBATCHED.get(path.stem, set()), path.name
