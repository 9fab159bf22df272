"""User text is data: payloads in every place spec text or a file name reaches generated code.

Each payload tries to run `open(CANARY, "w")` when the generated module is compiled, loaded,
constructed, run forward or asked for its convergence report. A payload may make the spec a
user error (a located diagnostic); it must never become code. Regression tests for issue 14
("code injection through a carriage return" and "through the file name").
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import warnings

import pytest
import torch

import unfoldc
from unfoldc import cli
from unfoldc.codegen.text import comment, docstring, docstring_lines, literal
from unfoldc.source import Source

# The body of a small spec with convergence conditions (so the report code is generated too), a
# constrained trainable (its check raises an error message naming the file) and an objective.
BODY = """\
input  x : vector[m]
state  s : vector[n] = 0   # COMMENT
train  mu : scalar per_layer = 1 / L   positive
minimize 0.5 * sqnorm(H @ s - x)
layers 3:
    s <- soft(s - mu * H.T @ (H @ s - x), mu * 0.1)   # COMMENT
output s
"""


def _code(canary) -> str:
    return f"open({str(canary)!r}, 'w').write('pwned')"


def payloads(canary) -> dict[str, str]:
    """Text that would run `code` if pasted raw into a comment, docstring or string literal."""
    code = _code(canary)
    return {
        "cr": f"\r        {code}  #",
        "crlf": f"\r\n{code}  #",
        "lf": f"\n{code}  #",
        "triple_quote": f'"""and {code} or"""',
        "triple_single": f"'''and {code} or'''",
        "quote": f'" and {code} or "',
        "single_quote": f"' and {code} or '",
        "backslash_quote": f'\\"""and {code} or"""\\',
        "escapes": "\\x22\\x22\\x22 \\u0022 \\N{QUOTATION MARK} \\",
        "nul": f"\x00{code}",
        "separators": f"\x0b\x0c\x1c\x85\u2028\u2029{code}",
        "tab_vt": f"\t\x0b{code}",
    }


def _exercise(cls) -> None:
    """Construct, run forward, evaluate the convergence report: every way code runs."""
    torch.manual_seed(0)
    model = cls(H=torch.randn(4, 6, dtype=torch.float64))
    out = model(torch.randn(2, 4, dtype=torch.float64))
    assert out.shape == (2, 6)
    model.convergence_report()
    model.objective(s=out, x=torch.randn(2, 4, dtype=torch.float64))


def _compile_and_run(text: str, name: str, tmp_path, on_disk: bool) -> bool:
    """Compile `text` under `name` and run everything; False when the spec is a user error.

    Warnings are errors: an invalid escape sequence means the text changed meaning.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", SyntaxWarning)
        warnings.simplefilter("error", DeprecationWarning)
        return _compile_and_run_strict(text, name, tmp_path, on_disk)


def _compile_and_run_strict(text: str, name: str, tmp_path, on_disk: bool) -> bool:
    try:
        if on_disk:
            path = tmp_path / name
            path.write_text(text, encoding="utf-8", newline="")
            art = unfoldc.compile(path)
            cls = unfoldc.load(path)
        else:
            art = unfoldc.compile_source(Source(name, text))
            cls = unfoldc.load_source(text, name)
    except unfoldc.UserError:
        return False
    _assert_clean(art.code)
    _exercise(cls)
    if on_disk:
        _exercise(_imported(path, tmp_path))
    return True


def _imported(spec_path, tmp_path) -> type:
    """`unfoldc compile SPEC -o FILE`, then FILE imported as Python imports any module (from
    bytes, with its encoding declaration rules): the network class it defines."""
    out = tmp_path / "generated_module.py"
    assert cli.main(["compile", str(spec_path), "-o", str(out)]) == 0
    spec = importlib.util.spec_from_file_location(f"generated_{abs(hash(str(spec_path)))}", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (cls,) = [v for v in vars(module).values() if getattr(v, "SPEC_SHA256", None)]
    return cls


def _assert_clean(code: str) -> None:
    """One line per `\\n`, whatever splits lines (tokenizer, linecache, splitlines)."""
    assert "\x00" not in code
    assert code.splitlines() == code.split("\n")[:-1]
    ast.parse(code)


def _doc_spec(doc: str) -> str:
    # Declarations on the docstring's line: origin comments copy that line.
    return f"algorithm X {doc} given H : matrix[m, n] let L = opnorm(H)^2\n" + BODY


def _places(payload: str) -> dict[str, str]:
    """Specs holding `payload` in a docstring, a comment, or both kinds of docstring."""
    specs = {"comment": _doc_spec("").replace("COMMENT", payload)}
    if '"' not in payload and "\n" not in payload and "\r" not in payload:
        specs["string"] = _doc_spec(f'"{payload}"')
    if '"""' not in payload:
        specs["docstring"] = _doc_spec(f'"""{payload}"""')
    return specs


PAYLOAD_NAMES = sorted(payloads("c"))


@pytest.mark.parametrize("kind", PAYLOAD_NAMES)
def test_spec_text_payloads_never_run(kind, tmp_path):
    canary = tmp_path / "canary.txt"
    payload = payloads(canary)[kind]
    for place, text in _places(payload).items():
        _compile_and_run(text, "spec.unf", tmp_path, on_disk=False)
        assert not canary.exists(), f"the payload in the {place} ran"


# convergence/emit.py (owned elsewhere) still pastes the file name raw into the class docstring
# (`ConvergenceEmitter.doc`); these cases pass once it quotes it with codegen.text.docstring.
FILE_NAME_CASES = PAYLOAD_NAMES


@pytest.mark.parametrize("kind", FILE_NAME_CASES)
def test_file_name_payloads_never_run(kind, tmp_path):
    canary = tmp_path / "canary.txt"
    payload = payloads(canary)[kind]
    name = payload + ".unf"
    text = _doc_spec("").replace("COMMENT", "")
    # NUL and `/` cannot be in a file name on disk; any name can be given to load_source.
    on_disk = "\x00" not in name and "/" not in name
    assert _compile_and_run(text, name.replace("/", "_") if on_disk else name, tmp_path,
                            on_disk=on_disk)
    assert not canary.exists()
    assert _compile_and_run(text, name, tmp_path, on_disk=False)
    assert not canary.exists()


def test_file_name_reaches_the_docstrings_unchanged():
    name = 'x"""and \\x00 \\N{DASH}\r\n".unf'
    text = _doc_spec("").replace("COMMENT", "")
    module_doc = ast.get_docstring(ast.parse(unfoldc.compile_source(Source(name, text)).code))
    assert f"from {name}." in module_doc
    assert f"from {name}. Build with" in unfoldc.load_source(text, name).__doc__


def test_docstring_means_exactly_the_spec_text():
    doc = 'a "quoted" \\x41 \\N{DASH} \\ tab\there\nsecond line "" end'
    cls = unfoldc.load_source(_doc_spec(f'"""{doc}"""').replace("COMMENT", ""), "t.unf")
    assert inspect.cleandoc(cls.__doc__).startswith(doc.expandtabs() + "\n")


def test_names_that_are_python_builtins_stay_data():
    text = """algorithm exec "open" given H : matrix[m, n] let L = opnorm(H)^2
input  x : vector[m]
state  open : vector[n] = 0
train  eval : scalar per_layer = 1 / L   positive
layers 3:
    open <- soft(open - eval * H.T @ (H @ open - x), eval * 0.1)
output open
"""
    cls = unfoldc.load_source(text, "t.unf")
    model = cls(H=torch.randn(4, 6, dtype=torch.float64))
    assert model(torch.randn(2, 4, dtype=torch.float64)).shape == (2, 6)
    model.convergence_report()


# ---- line ends ---------------------------------------------------------------------------------
@pytest.mark.parametrize("newline", ["\r\n", "\r", "mixed"])
def test_crlf_and_cr_only_files_compile_like_lf_files(newline, tmp_path):
    lf = _doc_spec('"doc"').replace("COMMENT", "a comment")
    lines = lf.split("\n")
    if newline == "mixed":
        ends = ["\r\n", "\r", "\n"]
        text = "".join(line + ends[i % 3] for i, line in enumerate(lines[:-1])) + lines[-1]
    else:
        text = newline.join(lines)
    for folder, content in (("lf", lf), ("other", text)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "spec.unf").write_text(content, encoding="utf-8", newline="")
    want = unfoldc.compile(tmp_path / "lf" / "spec.unf").code
    assert unfoldc.compile(tmp_path / "other" / "spec.unf").code == want


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_errors_in_crlf_and_cr_only_files_have_lf_positions(newline):
    lf = _doc_spec("").replace("COMMENT", "").replace("mu * 0.1", "nu * 0.1")
    text = lf.replace("\n", newline)

    def positions(t):
        with pytest.raises(unfoldc.UserError) as err:
            unfoldc.compile_source(Source("t.unf", t))
        return [(d.code, d.span.line, d.span.col) for d in err.value.diagnostics]

    assert positions(text) == positions(lf) == [("E0201", 7, 43)]


def test_a_carriage_return_inside_a_statement_is_a_line_break():
    text = _doc_spec("").replace("COMMENT", "").replace("s - mu *", "s - mu\r *")
    cls = unfoldc.load_source(text, "t.unf")
    _exercise(cls)


def test_non_utf8_position_counts_cr_only_lines(tmp_path):
    path = tmp_path / "bad.unf"
    path.write_bytes(b"algorithm X\rgiven H : matrix[m, n]\r# \xff\r")
    with pytest.raises(unfoldc.UserError) as err:
        unfoldc.compile(path)
    (diag,) = err.value.diagnostics
    assert (diag.code, diag.span.line, diag.span.col) == ("E0100", 3, 3)


# ---- the escaping functions themselves -----------------------------------------------------------
ALL_CHARS = "".join(map(chr, range(0x3000))) + "\U0001f600\udc80"


def test_comment_escapes_every_line_break_and_nul():
    text = comment(ALL_CHARS)
    assert text.isprintable()
    assert len(text.splitlines()) == 1


@pytest.mark.parametrize("text", [ALL_CHARS, '"""', '\\"""', '"', "\\", 'a"', "\\N{DASH}"])
def test_docstring_and_literal_evaluate_to_the_text(text):
    assert ast.literal_eval('"""' + docstring(text) + '"""') == text
    assert ast.literal_eval(literal(text)) == text
    assert docstring(text).isprintable() and literal(text).isprintable()


def test_docstring_lines_keep_only_newlines():
    lines = docstring_lines("one\ntwo\r\x85three")
    assert lines == ["one", "two\\r\\x85three"]
