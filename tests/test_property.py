"""Random small specs, compiled and run, against the IR interpreter on the unoptimized program.

A grammar of valid expressions over a matrix `A : matrix[m, n]`, an input vector `x`, an
optional per-sample scalar input `g`, one or two states, a fixed param and shared / per-layer
trainables generates whole specs (with temporaries and a shared subexpression, which exercises
cse under Gauss-Seidel order). Each spec is compiled with all passes and with none; both are
linted, run, and compared with `unfoldc.ir.interpreter` evaluated sample by sample on
`Artifacts.program`. This cross-checks parser + checker + passes + printer.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import unfoldc
from unfoldc.ir.interpreter import run as interpret
from unfoldc.ir.lint import lint
from unfoldc.source import Source

F64 = torch.float64
NUMBERS = ("0.5", "2", "0.1", "1.5")


class Grammar:
    """Draws typed expressions: kinds `n` (vector[n]), `m` (vector[m]) and `s` (scalar)."""

    def __init__(self, draw, leaves: dict[str, list[str]]):
        self.draw, self.leaves = draw, leaves

    def pick(self, options):
        return self.draw(st.sampled_from(options))

    def expr(self, kind: str, depth: int) -> str:
        if depth <= 0 or self.draw(st.integers(0, 3)) == 0:
            return self.leaf(kind)
        return getattr(self, f"_{kind}")(depth - 1)

    def leaf(self, kind: str) -> str:
        options = list(self.leaves[kind])
        if kind == "s":
            options += list(NUMBERS)
        return self.pick(options)

    def _n(self, d: int) -> str:
        e, s = self.expr, self.expr
        choice = self.draw(st.integers(0, 10))
        return [
            lambda: f"(A.T @ {e('m', d)})",
            lambda: f"((A.T @ A) @ {e('n', d)})",
            lambda: f"({e('n', d)} + {e('n', d)})",
            lambda: f"({e('n', d)} - {e('n', d)})",
            lambda: f"({s('s', d)} * {e('n', d)})",
            lambda: f"({e('n', d)} * {e('n', d)})",
            lambda: f"(-{e('n', d)})",
            lambda: f"soft({e('n', d)}, {s('s', d)})",
            lambda: f"clamp({e('n', d)}, -1, 1)",
            lambda: f"({e('n', d)} / (1 + {s('s', d)} ^ 2))",
            lambda: f"(({s('s', d)} * A).T @ {e('m', d)})",
        ][choice]()

    def _m(self, d: int) -> str:
        e = self.expr
        choice = self.draw(st.integers(0, 4))
        return [
            lambda: f"(A @ {e('n', d)})",
            lambda: f"({e('m', d)} + {e('m', d)})",
            lambda: f"({e('m', d)} - {e('m', d)})",
            lambda: f"({e('s', d)} * {e('m', d)})",
            lambda: f"relu({e('m', d)})",
        ][choice]()

    def _s(self, d: int) -> str:
        e = self.expr
        choice = self.draw(st.integers(0, 7))
        return [
            lambda: f"({e('s', d)} * {e('s', d)})",
            lambda: f"({e('s', d)} + {e('s', d)})",
            lambda: f"(0.1 * dot({e('n', d)}, {e('n', d)}))",
            lambda: f"norm2({e('m', d)})",
            lambda: f"sum({e('n', d)})",
            lambda: f"max({e('n', d)})",
            lambda: f"sqrt(1 + {e('s', d)} ^ 2)",
            lambda: f"norm1({e('s', d)})",
        ][choice]()


@st.composite
def specs(draw) -> tuple[str, bool]:
    """A random valid spec, and whether it has the scalar input `g`."""
    two_states = draw(st.booleans())
    scalar_input = draw(st.booleans())
    leaves = {"n": ["s"], "m": ["x"], "s": ["c", "w", "v"]}
    if two_states:
        leaves["m"].append("r")
    if scalar_input:
        leaves["s"].append("g")
    init = draw(st.sampled_from(["0", "A.T @ x", "0.5", "c * (A.T @ x)"]))
    lines = ["algorithm P", "given A : matrix[m, n]", "input x : vector[m]"]
    lines += ["input g : scalar"] if scalar_input else []
    lines += ["param c : scalar = 0.3", "train w : scalar per_layer = 0.5",
              "train v : scalar shared = 0.2"]
    lines += [f"state s : vector[n] = {init}"]
    lines += ["state r : vector[m] = x"] if two_states else []
    lines += [f"layers {draw(st.integers(1, 3))}:"]
    gram = Grammar(draw, leaves)
    common = gram.expr("n", 2)
    leaves["n"].append(common)  # a subexpression likely to appear more than once
    body = []
    if draw(st.booleans()):
        body.append(f"    u = {gram.expr('n', 2)}")
        leaves["n"].append("u")
    updates = [f"    s <- {gram.expr('n', 3)}"]
    if two_states:
        updates.append(f"    r <- {gram.expr('m', 2)}")
    body += draw(st.permutations(updates))
    if draw(st.booleans()):
        body.append(f"    s <- s + 0.1 * ({common})")  # reads `common` after its states changed
    lines += body
    lines.append("output s, r" if two_states else "output s")
    return "\n".join(lines) + "\n", scalar_input


def _build(text: str, options: unfoldc.Options):
    art = unfoldc.compile_source(Source("prop.unf", text), options)
    lint(art.optimized, after="test")
    return art, unfoldc.load_source(text, "prop.unf", options)


# No shrinking: it can take minutes on this grammar; the failing spec is printed whole.
@settings(max_examples=60, deadline=None, derandomize=True, report_multiple_bugs=False,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@pytest.mark.slow
@given(spec=specs(), batch=st.sampled_from([1, 3]))
def test_random_specs_match_the_interpreter(spec, batch):
    text, scalar_input = spec
    g = torch.Generator().manual_seed(len(text))
    A = torch.randn(4, 3, generator=g, dtype=F64) * 0.5
    inputs = {"x": torch.randn(batch, 4, generator=g, dtype=F64)}
    if scalar_input:
        inputs["g"] = torch.randn(batch, generator=g, dtype=F64)
    reference = None
    for options in (unfoldc.Options(), unfoldc.Options(False, False, False, False, False)):
        art, cls = _build(text, options)
        model = cls(A=A)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=F64))
        trained = {"w": [layer.w.detach() for layer in model.layers], "v": model.v.detach()}
        got = model(**inputs)
        if reference is None:
            reference = art.program
        want = interpret(reference, {"A": A}, inputs, trainables=trained)
        got = tuple(got) if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        for a, b in zip(got, want, strict=True):
            assert a.shape == b.shape, text
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8, equal_nan=True,
                                       msg=lambda m: f"{m}\n{text}")
