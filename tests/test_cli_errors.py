"""The CLI's error paths: exit codes 0/1/2/3, unreadable files, and no traceback on any input.

The robustness test mutates the example specs at random (characters and tokens deleted,
inserted, replaced) and requires `unfoldc.cli.main` to answer every mutant with exit 0 or 1:
never an internal error (3), never a traceback.
"""

from __future__ import annotations

import re

import pytest
from conftest import EXAMPLES, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unfoldc import cli

SPECS = {p.name: p.read_text("utf-8") for p in sorted(EXAMPLES.glob("*.unf"))}


def run(argv, capsys) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


def test_missing_file(capsys):
    code, err = run(["compile", "no/such/spec.unf"], capsys)
    assert code == 1
    assert "error: no such file or directory: `no/such/spec.unf`" in err


def test_directory(tmp_path, capsys):
    code, err = run(["compile", str(tmp_path)], capsys)
    assert code == 1 and "is a directory" in err


def test_non_utf8_file_points_at_the_byte(tmp_path, capsys):
    spec = tmp_path / "latin1.unf"
    spec.write_bytes(b"algorithm A\ngiven H : matrix[m, n] # \xe9\n")
    code, err = run(["compile", str(spec)], capsys)
    assert code == 1
    assert "error[E0100]" in err and f"{spec}:2:26" in err


@pytest.mark.parametrize("text", ["", "\n\n   \n", "# just a comment\n"])
def test_empty_file(tmp_path, capsys, text):
    spec = tmp_path / "empty.unf"
    spec.write_text(text)
    code, err = run(["compile", str(spec)], capsys)
    assert code == 1 and "error[E0101]" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["compile"])
    assert exc.value.code == 2
    code, err = run(["graph", str(EXAMPLES / "ista.unf"), "--format", "nope"], capsys)
    assert code == 2 and "unknown format" in err


def test_warning_exits_0(capsys):
    code, err = run(["compile", str(ROOT / "tests/golden/errors/W0002.unf")], capsys)
    assert code == 0 and "warning[W0002]" in err


def test_internal_error_exits_3_without_traceback(monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise RuntimeError("simulated compiler bug")

    monkeypatch.setattr("unfoldc.pipeline.compile_file", boom)
    monkeypatch.delenv("UNFOLDC_DEBUG", raising=False)
    code, err = run(["compile", str(EXAMPLES / "ista.unf")], capsys)
    assert code == 3
    assert "internal error" in err and "Traceback" not in err


def test_user_errors_never_print_a_traceback(capsys):
    code, err = run(["compile", str(ROOT / "tests/golden/errors/multi.unf")], capsys)
    assert code == 1 and "Traceback" not in err
    assert re.search(r"could not compile `.*multi.unf`: 6 errors", err)


# ---- robustness: random mutations of the examples ---------------------------------------------
TOKENS = ["(", ")", "[", "]", ",", ":", "=", "<-", "@", "*", "^", ".T", "-", "+", "/", "0",
          "1.5", "layers", "output", "state", "train", "given", "let", "x", "H", "s", "soft",
          "I", "eye(n)", "shared", "per_layer", "\n", " ", "#", '"', "**", "in", "?", "\t"]


@st.composite
def mutants(draw):
    name = draw(st.sampled_from(sorted(SPECS)))
    text = SPECS[name]
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(text)))
        end = min(len(text), pos + draw(st.integers(0, 12)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "token"]))
        if kind == "delete":
            text = text[:pos] + text[end:]
        elif kind == "insert":
            text = text[:pos] + draw(st.text(min_size=1, max_size=3)) + text[pos:]
        elif kind == "replace":
            text = text[:pos] + draw(st.sampled_from(TOKENS)) + text[end:]
        else:  # swap a whole word for another token
            words = list(re.finditer(r"\w+|\S", text))
            w = words[draw(st.integers(0, len(words) - 1))]
            text = text[:w.start()] + draw(st.sampled_from(TOKENS)) + text[w.end():]
    return name, text


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@pytest.mark.slow
@given(mutants())
def test_mutated_examples_exit_0_or_1(tmp_path, capsys, mutant):
    name, text = mutant
    spec = tmp_path / name
    spec.write_text(text, encoding="utf-8")
    code = cli.main(["compile", str(spec), "-o", str(tmp_path / "out.py")])
    err = capsys.readouterr().err
    assert code in (0, 1), f"exit {code} for mutant:\n{text}\n{err}"
    assert "Traceback" not in err
    if code == 1:
        assert re.search(r"^error(\[E\d{4}\])?: ", err, re.M), err


@pytest.mark.parametrize(("algorithm", "emitted"), [
    ("class", "class_"), ("step", "step_"), ("Module", "Module"), ("ISTA", "ISTA")])
def test_compile_prints_the_class_name_it_emitted(algorithm, emitted, tmp_path, capsys):
    """`algorithm class` printed "(class class)" while the file defines `class_` (issue 14)."""
    import importlib.util

    spec, out = tmp_path / "s.unf", tmp_path / "s_mod.py"
    text = SPECS["ista.unf"].replace("algorithm ISTA", f"algorithm {algorithm}", 1)
    spec.write_text(text, "utf-8")
    code, err = run(["compile", str(spec), "-o", str(out)], capsys)
    assert code == 0 and f"wrote {out} (class {emitted})" in err
    loaded = importlib.util.spec_from_file_location("s_mod", out)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    assert algorithm == getattr(module, emitted).SPEC_NAME
