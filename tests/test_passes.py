"""Each pass: its `changed` flag, a structural property, the lint invariant, and equal numerics
with and without it. Includes the Gauss-Seidel regression test for cse."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import EXAMPLES

import unfoldc
from unfoldc.convergence.enforce import enforce_pass
from unfoldc.ir.expr import Op, Sym, symbols, walk
from unfoldc.ir.interpreter import run as interpret
from unfoldc.ir.lint import LintError, lint
from unfoldc.passes.canonicalize import canonicalize
from unfoldc.passes.cse import cse
from unfoldc.passes.dce import dce
from unfoldc.passes.gram import expand_gram
from unfoldc.passes.hoist import hoist
from unfoldc.pipeline import PASSES as PIPELINE_PASSES
from unfoldc.source import Source

F64 = torch.float64
PASSES = ("canonicalize", "gram", "hoist", "cse", "dce")
NAMES = ("ista", "lista", "lista_cp", "fista", "admm_lasso", "rpca")

# (pass, changed) as the pipeline logs it, one row per example.
CHANGED = {
    "ista":       (True, True, True, False, False),
    "lista":      (False, False, False, False, False),
    "lista_cp":   (False, False, False, False, False),
    "fista":      (True, True, True, False, False),
    "admm_lasso": (False, False, True, False, False),
    "rpca":       (False, False, False, True, False),
}


def compile_text(text: str, **options):
    return unfoldc.compile_source(Source("spec.unf", text), unfoldc.Options(**options))


def reads(assigns) -> set[str]:
    return {s.name for a in assigns for s in symbols(a.value)}


@pytest.mark.parametrize("name", NAMES)
def test_changed_flags(name):
    art = unfoldc.compile(EXAMPLES / f"{name}.unf")
    assert art.passes == list(zip(PASSES, CHANGED[name]))


def test_every_pass_is_listed_with_its_switch():
    switches = {f.name for f in dataclasses.fields(unfoldc.Options)}
    assert [name for name, _ in PIPELINE_PASSES] == ["enforce_convergence", *PASSES]
    assert switches == {name for name, _ in PIPELINE_PASSES}


def test_enforcement_is_a_pass_that_changes_only_when_asked():
    on = unfoldc.compile(EXAMPLES / "ista.unf", unfoldc.Options(enforce_convergence=True))
    off = unfoldc.compile(EXAMPLES / "ista.unf")
    assert on.passes[0] == ("enforce_convergence", True)
    assert [name for name, _ in off.passes] == list(PASSES)  # off: not run, not logged
    assert on.program == off.program  # `program` is as checked; enforcement is in `optimized`
    assert on.optimized != off.optimized


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pass_", [enforce_pass, canonicalize, expand_gram, hoist, cse, dce])
def test_each_pass_alone_keeps_lint_and_reports_change_honestly(name, pass_):
    program = unfoldc.compile(EXAMPLES / f"{name}.unf").program
    result = pass_(program)
    lint(result.program, after=pass_.__name__)
    assert result.changed == (result.program != program)
    again = pass_(result.program)  # idempotent on its own output
    assert again.program == result.program and not again.changed


def test_lint_catches_a_broken_program():
    program = unfoldc.compile(EXAMPLES / "ista.unf").optimized
    broken = program.with_(prologue=())  # HtH and the state init are gone
    with pytest.raises(LintError, match="before it is defined"):
        lint(broken, after="test")
    a = program.body[0]
    wrong = dataclasses.replace(a, value=Op("add", a.value.args[:1] * 2,
                                            dataclasses.replace(a.value.type, dims=("m",))))
    with pytest.raises(LintError, match="its rule gives"):
        lint(program.with_(body=(wrong,)), after="test")


def test_ista_hoist_moves_gram_products_to_the_prologue():
    art = unfoldc.compile(EXAMPLES / "ista.unf")
    hoisted = {a.target: a for a in art.optimized.prologue if a.kind == "hoisted"}
    assert set(hoisted) == {"HtH", "Htx"}
    assert hoisted["HtH"].line == 17
    body = art.optimized.body
    assert reads(body) >= {"HtH", "Htx"}
    assert "H" not in reads(body) and "x" not in reads(body)
    assert not any(isinstance(n, Op) and n.op == "opnorm" for a in body for n in walk(a.value))


def test_ista_without_gram_hoists_nothing_per_sample():
    art = unfoldc.compile(EXAMPLES / "ista.unf", unfoldc.Options(gram=False))
    assert "gram" not in dict(art.passes) and dict(art.passes)["hoist"] is False
    assert "H" in reads(art.optimized.body)


def test_hoist_never_moves_per_layer_or_state_work():
    for name in NAMES:
        prologue = unfoldc.compile(EXAMPLES / f"{name}.unf").optimized.prologue
        for a in prologue:
            for s in symbols(a.value):
                assert s.role not in ("state", "temp") and not s.per_layer, (name, a)


def test_rpca_cse_makes_one_temp_for_mu_times_R():
    art = unfoldc.compile(EXAMPLES / "rpca.unf")
    temps = [a for a in art.optimized.body if a.kind == "temp" and a.target != "R"]
    assert len(temps) == 1
    value = temps[0].value
    assert value.op == "mul" and {s.name for s in value.args} == {"mu", "R"}
    assert [a.target for a in art.optimized.body] == ["R", temps[0].target, "L", "S"]


GAUSS_SEIDEL = """algorithm GS
given H : matrix[m, n]
input x : vector[m]
state s : vector[n] = 1
state q : vector[n] = 0
state p : vector[n] = 0
train mu : scalar per_layer = 0.5
layers 3:
    p <- q + soft(mu * s, 0.1)
    s <- s - 0.5 * soft(mu * s, 0.1) + 0.01 * H.T @ x
    q <- q + soft(mu * s, 0.1)
output p, q
"""


def test_cse_respects_gauss_seidel_order():
    """`soft(mu * s, 0.1)` before and after `s <-` are different values: only the first two
    uses may share a temporary; the third reads the new `s`."""
    art = compile_text(GAUSS_SEIDEL)
    body = art.optimized.body
    assert [a.kind for a in body].count("temp") == 1
    temp = next(a for a in body if a.kind == "temp")
    q = next(a for a in body if a.target == "q")
    assert temp.target not in reads([q])
    assert any(isinstance(n, Op) and n.op == "soft" for n in walk(q.value))
    H = torch.randn(4, 3, dtype=F64)
    x = torch.randn(2, 4, dtype=F64)
    got = unfoldc.load_source(GAUSS_SEIDEL, "gs.unf")(H=H)(x)
    want = interpret(art.program, {"H": H}, {"x": x})
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_cse_does_not_merge_across_an_update_of_a_read_temp_chain():
    src = GAUSS_SEIDEL.replace("p <- q + soft(mu * s, 0.1)",
                               "r = mu * s\n    p <- q + soft(r, 0.1) + mu * s")
    art = compile_text(src)
    H, x = torch.randn(4, 3, dtype=F64), torch.randn(3, 4, dtype=F64)
    got = unfoldc.load_source(src, "gs2.unf")(H=H)(x)
    want = interpret(art.program, {"H": H}, {"x": x})
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


DEAD = """algorithm D
given H : matrix[m, n]
input x : vector[m]
state s : vector[n] = 0
state junk : vector[n] = 0
layers 2:
    d = s * 2
    s <- soft(s - 0.1 * H.T @ (H @ s - x), 0.01)
    junk <- junk + s
output s
"""


def test_dce_removes_a_dead_temp_and_a_dead_state():
    art = compile_text(DEAD)
    assert dict(art.passes)["dce"] is True
    targets = [a.target for a in art.optimized.body + art.optimized.prologue]
    assert "d" not in targets and "junk" not in targets
    assert "junk" not in art.code.split("def forward")[1]
    result = dce(art.program)
    assert result.changed and [a.target for a in result.program.body] == ["s"]


def test_dce_keeps_states_that_feed_outputs_through_the_carry():
    src = DEAD.replace("junk <- junk + s", "junk <- junk + s\n    s <- s + 0 * junk")
    body = [a.target for a in compile_text(src).optimized.body]
    assert "junk" in body and "d" not in body


# ---- equal numerics with and without each pass -------------------------------------------------
def _run(name, options, K=3):
    cls = unfoldc.load(EXAMPLES / f"{name}.unf", options)
    g = torch.Generator().manual_seed(11)
    if name == "rpca":
        return cls(num_layers=K)(torch.randn(2, 4, 3, generator=g, dtype=F64))
    H = torch.randn(6, 4, generator=g, dtype=F64)
    return cls(H=H, num_layers=K)(torch.randn(2, 6, generator=g, dtype=F64))


@pytest.mark.parametrize("name", NAMES)
def test_numerics_equal_with_and_without_each_pass(name):
    want = _run(name, unfoldc.Options(**{p: False for p in PASSES}))
    for p in PASSES:
        got = _run(name, unfoldc.Options(**{p: False}))
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11, msg=f"without {p}")
    torch.testing.assert_close(_run(name, unfoldc.Options()), want, rtol=1e-9, atol=1e-11)


def test_each_pass_only_alone_equals_none():
    for name in ("ista", "fista", "admm_lasso", "rpca"):
        want = _run(name, unfoldc.Options(**{p: False for p in PASSES}))
        for p in PASSES:
            only = unfoldc.Options(**{q: q == p for q in PASSES})
            torch.testing.assert_close(_run(name, only), want, rtol=1e-9, atol=1e-11)


def test_symbols_in_optimized_programs_are_defined():
    for name in NAMES:
        prog = unfoldc.compile(EXAMPLES / f"{name}.unf").optimized
        temps = {a.target for a in prog.body if a.kind == "temp"}
        for a in prog.body:
            for s in symbols(a.value):
                assert isinstance(s, Sym)
                assert s.role != "temp" or s.name in temps


@pytest.mark.parametrize("term", ["0", "0.5", "mu"])
def test_gram_does_not_distribute_over_a_broadcast_scalar(term):
    """`H.T @ (H @ s - 0)` crashed the gram pass (a fuzz mutant, IndexError): `H.T @ 0` is not
    `H.T @ (0 broadcast)`. The product stays whole and equals the interpreter's value."""
    src = (EXAMPLES / "ista.unf").read_text("utf-8").replace("(H @ s - x), mu",
                                                                  f"(H @ s - {term}), mu")
    art = compile_text(src)
    assert [a for a in art.optimized.body if any(
        isinstance(n, Op) and n.op == "matmul" and n.args[1].type.kind == "scalar"
        for n in walk(a.value))] == []
    H, x = torch.randn(4, 6, dtype=F64), torch.randn(2, 4, dtype=F64)
    got = unfoldc.load_source(src, "b.unf")(H=H)(x)
    torch.testing.assert_close(got, interpret(art.program, {"H": H}, {"x": x}))
