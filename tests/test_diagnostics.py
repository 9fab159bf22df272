"""User-facing diagnostics: one golden per error code, the multi-error case, carets, hints.

Each tests/golden/errors/CODE.unf is a small spec with exactly that mistake; CODE.txt holds what
`unfoldc compile` prints for it (stderr), byte for byte. `pytest --update-goldens` rewrites them.
"""

from __future__ import annotations

import re

import pytest
import torch
from conftest import GOLDEN, ROOT

import unfoldc
from unfoldc import cli
from unfoldc.diagnostics import CODES, Diagnostic, render
from unfoldc.source import Source, Span

ERRORS = GOLDEN / "errors"
SPECS = sorted(p.stem for p in ERRORS.glob("*.unf"))
DOCS = ROOT / "docs" / "errors.md"


def run_cli(argv, monkeypatch, capsys) -> tuple[int, str]:
    """Run the CLI from the repository root (so paths in messages are relative and stable)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NO_COLOR", "1")
    code = cli.main(argv)
    return code, capsys.readouterr().err


def compile_errors(text: str) -> list[Diagnostic]:
    """The diagnostics of compiling `text` ([] when it compiles)."""
    try:
        unfoldc.compile_source(Source("t.unf", text))
    except unfoldc.UserError as err:
        return err.diagnostics
    return []


@pytest.mark.parametrize("name", SPECS)
def test_error_golden(name, golden, monkeypatch, capsys):
    spec = f"tests/golden/errors/{name}.unf"
    code, err = run_cli(["compile", spec, "-o", "-"], monkeypatch, capsys)
    assert code == (0 if name.startswith("W") else 1)
    assert "Traceback" not in err
    golden(f"errors/{name}.txt", err)


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_has_a_golden_that_shows_it(code):
    assert (ERRORS / f"{code}.unf").exists(), f"write tests/golden/errors/{code}.unf"
    text = (ERRORS / f"{code}.txt").read_text("utf-8")
    kind = "warning" if code.startswith("W") else "error"
    assert f"{kind}[{code}]" in text.splitlines()[0] or f"{kind}[{code}]" in text


def test_goldens_name_only_known_codes():
    for name in SPECS:
        text = (ERRORS / f"{name}.txt").read_text("utf-8")
        for code in re.findall(r"^(?:error|warning)\[(\w+)\]", text, re.M):
            assert code in CODES, f"{name}.txt shows {code}, missing from CODES"


def test_docs_have_one_section_per_code():
    sections = re.findall(r"^## (\w\d{4})\b", DOCS.read_text("utf-8"), re.M)
    assert sorted(sections) == sorted(CODES), "docs/errors.md and diagnostics.CODES differ"


def test_multiple_errors_are_all_reported_in_source_order():
    diags = compile_errors((ERRORS / "multi.unf").read_text("utf-8"))
    errors = [d for d in diags if d.is_error]
    assert [d.code for d in errors] == ["E0202", "E0201", "E0301", "E0203", "E0204", "E0201"]
    positions = [(d.span.line, d.span.col) for d in diags]
    assert positions == sorted(positions)


# ---- carets ------------------------------------------------------------------------------------
def _caret_checks(text: str):
    """(source line, caret line, col) for every excerpt in rendered output."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\s*--> .*:(\d+):(\d+)$", line)
        if m:
            yield lines[i + 2], lines[i + 3], int(m.group(2))


@pytest.mark.parametrize("name", SPECS)
def test_caret_sits_under_the_reported_column(name):
    text = (ERRORS / f"{name}.txt").read_text("utf-8")
    for src, carets, col in _caret_checks(text):
        gutter = src.index("| ") + 2
        assert carets.index("^") == gutter + col - 1, (src, carets)


def test_caret_with_tabs_and_a_two_digit_line():
    text = "\n" * 9 + "algorithm A\n\tgiven H : matrix[m, n]\n"
    src = Source("t.unf", text)
    d = Diagnostic("E0201", "unknown identifier `H`", Span(11, 8, 11, 9), "here")
    out = render(d, src)
    assert "  --> t.unf:11:8" in out
    assert "11 |  given H : matrix[m, n]" in out
    assert "   |        ^ here" in out


def test_color_only_when_asked():
    d = Diagnostic("E0201", "unknown identifier `x`", Span(1, 1, 1, 2))
    src = Source("t.unf", "x\n")
    assert "\x1b[" not in render(d, src, color=False)
    assert "\x1b[1;31m" in render(d, src, color=True)


def test_use_color_respects_no_color(monkeypatch):
    from unfoldc.diagnostics import use_color

    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())


# ---- curated parser hints ----------------------------------------------------------------------
HEAD = "algorithm A\ngiven H : matrix[m, n]\ninput x : vector[m]\nstate s : vector[n] = 0\n"
BODY = "layers 4:\n    s <- s - 0.1 * H.T @ (H @ s - x)\noutput s\n"


@pytest.mark.parametrize("text, code, message, help", [
    (HEAD + BODY.replace("(H @ s - x)", "(H @ s - x) ** 2"), "E0102", "`**`", "`^`"),
    (HEAD + BODY.replace("H.T @", "H.T() @"), "E0102", "`.T` is not a method", "`A.T`"),
    (HEAD + BODY.replace("H.T @", "H.t @"), "E0102", "unknown attribute `.t`", "`A.T`"),
    (HEAD + BODY.replace("layers 4:", "layers:"), "E0102", "layer count", "`layers 16:`"),
    (HEAD + BODY.replace("layers 4:", "layers 4"), "E0102", "missing `:`", "`layers 4:`"),
    (HEAD.replace("given H :", "given H"), "E0102", "missing `:`", "`given H : matrix"),
    (HEAD.replace("matrix[m, n]", "matrix[m n]") + BODY, "E0102", "missing `,`",
     "`matrix[m, n]`"),
    (HEAD.replace("vector[m]", "vector(m)") + BODY, "E0102", "square brackets", "`vector[n]`"),
    (HEAD + "train mu : scalar = 1\n" + BODY, "E0102", "how layers share", "`per_layer`"),
    (HEAD + "let L <- 1\n" + BODY, "E0102", "`<-` in a declaration", "use `=`"),
    (HEAD + "state z : vector[n]\n" + BODY, "E0102", "needs a value", "`= VALUE`"),
    (HEAD + BODY.replace("output s", "output = s"), "E0206", "`output` is a keyword",
     "`output_`"),
    (HEAD + "layers 4:\noutput s\n", "E0403", "layer body is empty", "statement"),
    (HEAD, "E0403", "no layer body", "`layers K:`"),
    (HEAD + "s <- s\n" + BODY, "E0102", "outside the layer body", "`layers K:`"),
    ("given H : matrix[m, n]\n" + BODY, "E0102", "starts with `algorithm", "algorithm"),
    (HEAD + BODY.replace("0.1 *", "max(0.1, ) *"), "E0102", "after `,`", "trailing comma"),
    (HEAD + BODY.replace("H @ s", "H[0] @ s"), "E0306", "indexed by the layer index", "`dot`"),
    (HEAD + BODY.replace("0.1 *", "0.1"), "E0102", "missing operator before `H`", "`0.1 * x`"),
    (HEAD + BODY.replace("0.1 *", "0.1 (2)"), "E0102", "after an expression", "`mu * x`"),
    (HEAD + BODY.replace("(H @ s - x)", "(H @ s - x]"), "E0104", "does not close", "`)`"),
    (HEAD + BODY.replace("0.1", "0.1 'a'"), "E0105", "`'`", "double quotes"),
    (HEAD + BODY.replace("0.1", "λ"), "E0105", "`λ`", "ASCII"),
    ("# only a comment\n", "E0101", "empty", "algorithm"),
    (HEAD + "layers 1:\n    s <- " + "(" * 300 + "s" + ")" * 300 + "\noutput s\n", "E0102",
     "nested too deeply", "`let`"),
])
def test_curated_hints(text, code, message, help):
    (d,) = compile_errors(text)
    assert d.code == code, render(d, Source("t.unf", text))
    assert message in d.message and help in d.help, render(d, Source("t.unf", text))


def test_assigning_with_equals_to_a_state_suggests_the_arrow():
    diags = compile_errors(HEAD + BODY.replace("s <-", "s ="))
    assert [d.code for d in diags] == ["E0203"]  # and no cascading W0001 for `s`
    assert "`s <- ...`" in diags[0].help


def test_equals_makes_a_temporary_not_an_error():
    assert compile_errors(HEAD + BODY.replace("s <- s", "g = H.T @ (H @ s - x)\n    s <- s")) \
        == []


# ---- semantic regressions ----------------------------------------------------------------------
def test_self_reference_is_reported_not_compiled():
    (d,) = compile_errors(HEAD + "let L = opnorm(H) + L\n" + BODY)
    assert d.code == "E0205" and "its own definition" in d.message


def test_failed_net_declaration_does_not_crash_its_uses():
    text = HEAD + "net D : transformer[n -> n] shared\n" + BODY.replace("s <- s", "s <- D(s)")
    assert [d.code for d in compile_errors(text)] == ["E0309"]


def test_temporary_named_like_a_dimension():
    diags = compile_errors(HEAD + BODY.replace("s <- s", "n = 2\n    s <- s"))
    assert [d.code for d in diags] == ["E0202"]


def test_calling_a_symbol_explains_products():
    (d,) = compile_errors(HEAD + BODY.replace("H.T @ (H @ s - x)", "H.T @ H(s)"))
    assert d.code == "E0304" and "`H` is a given, not a function" in d.help


def test_unknown_identifier_suggests_a_close_name():
    (d,) = compile_errors(HEAD + BODY.replace("(H @ s", "(HH @ s"))
    assert d.code == "E0201" and d.help == "did you mean `H`?"


def test_examples_compile_without_warnings():
    for spec in sorted((ROOT / "examples").glob("*.unf")):
        assert unfoldc.compile(spec).warnings == [], spec.name


# ---- names that clash with Python or with generated code ---------------------------------------
WEIRD = """algorithm class "names that Python or the generated code already use"
given  self : matrix[m, n]
input  torch : vector[m]
state  lambda : vector[n] = 0
state  training : vector[n] = 0
train  sum_ : scalar per_layer = 0.5 positive
train  lambda_ : scalar shared = 0.01 nonneg
param  nn : scalar = 1
let    forward = opnorm(self)^2
layers 3:
    like = self @ lambda - torch
    B = self.T @ like
    lambda <- soft(lambda - sum_ * B / forward, lambda_ * nn)
    training <- training + lambda
output lambda, training
"""
PLAIN = """algorithm Plain
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
state  t : vector[n] = 0
train  mu : scalar per_layer = 0.5 positive
train  rho : scalar shared = 0.01 nonneg
param  c : scalar = 1
let    L = opnorm(H)^2
layers 3:
    r = H @ s - x
    g = H.T @ r
    s <- soft(s - mu * g / L, rho * c)
    t <- t + s
output s, t
"""


def test_clashing_names_are_renamed_and_run_like_plain_ones():
    weird = unfoldc.load_source(WEIRD, "weird.unf")
    plain = unfoldc.load_source(PLAIN, "plain.unf")
    assert weird.GIVENS == ("self_",) and weird.INPUTS == ("torch_",)
    torch.manual_seed(0)
    h, x = torch.randn(5, 4, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    out_w = weird(self_=h)(x)
    out_p = plain(H=h)(x)
    torch.testing.assert_close(out_w[0], out_p[0])
    torch.testing.assert_close(out_w[1], out_p[1])


def test_helper_function_names_are_not_shadowed():
    text = ("algorithm fill\ngiven interval : matrix[m, n]\ninput x : vector[m]\n"
            "state s : vector[n] = 0\ntrain t0 : scalar shared = 0.1 in [0, 1]\n"
            "layers 2:\n    s <- soft(s - t0 * interval.T @ (interval @ s - x), t0)\noutput s\n")
    model = unfoldc.load_source(text, "fill.unf")(interval_=torch.randn(5, 4))
    assert model(torch.randn(3, 5)).shape == (3, 4)


@pytest.mark.parametrize("call, label", [("soft_ss(s, 0.1, s)", "selected fraction"),
                                         ("soft_ss(H, 0.1, 0.2)", "`soft_ss`")])
def test_support_selection_shape_errors(call, label):
    (d,) = compile_errors(HEAD + BODY.replace("s - 0.1 * H.T @ (H @ s - x)", call))
    assert d.code == "E0306" and label in d.message, render(d, Source("t.unf", HEAD))
