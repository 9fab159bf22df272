"""Parse .unf text with Lark (LALR, positions kept) and turn every failure into a Diagnostic."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from lark import Lark, Token, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.exceptions import VisitError

from unfoldc.diagnostics import Diagnostic, UserError
from unfoldc.source import Source, Span
from unfoldc.syntax import nodes
from unfoldc.syntax.to_ast import ToAst

_CLOSERS = {"LPAR": "RPAR", "LSQB": "RSQB"}
_PRETTY = {
    "NAME": "a name", "NUMBER": "a number", "INT": "an integer", "STRING": "a string",
    "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`", "COMMA": "`,`",
    "COLON": "`:`", "EQUAL": "`=`", "PLUS": "`+`", "MINUS": "`-`", "STAR": "`*`",
    "SLASH": "`/`", "CIRCUMFLEX": "`^`", "DOT": "`.`", "__ANON_0": "`<-`", "$END": "end of file",
}


def grammar_text() -> str:
    """The grammar: shipped as unfoldc/grammar/unf.lark in the wheel, grammar/ in a checkout."""
    try:
        return resources.files("unfoldc.grammar").joinpath("unf.lark").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).parents[2] / "grammar" / "unf.lark").read_text("utf-8")


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


def parse(source: Source) -> nodes.Spec:
    """Parse `source` into an AST, or raise UserError with a located diagnostic."""
    if not source.text.strip():
        raise UserError([Diagnostic("E0101", "the spec is empty", help=_EMPTY_HELP)], source)
    try:
        tree = _parser().parse(source.text)
    except UnexpectedInput as exc:
        raise UserError([_syntax_diagnostic(exc, source)], source) from None
    try:
        return ToAst(source).transform(tree)
    except VisitError as exc:  # a callback raised: unwrap it, users never see lark internals
        if isinstance(exc.orig_exc, UserError):
            raise exc.orig_exc from None
        raise


_EMPTY_HELP = "a spec starts with `algorithm NAME`; see examples/ista.unf"


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    return f"`{token.value}`"


def _expected(names) -> str:
    shown = sorted({_PRETTY.get(n, f"`{n.lower()}`") for n in names if not n.startswith("_")})
    if len(shown) > 8:
        shown = shown[:8] + ["..."]
    return ", ".join(shown)


def _syntax_diagnostic(exc: UnexpectedInput, source: Source) -> Diagnostic:
    if isinstance(exc, UnexpectedCharacters):
        char = source.text[exc.pos_in_stream]
        return Diagnostic(
            "E0105", f"unexpected character `{char}`", Span.point(exc.line, exc.column),
            label="not part of the language",
            help="names use letters, digits and `_`; comments start with `#`",
        )
    if isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        return _eof_diagnostic(exc, source)
    token = exc.token
    span = Span(token.line, token.column, token.end_line, token.end_column)
    unclosed = _unclosed_bracket(source, token.start_pos)
    if unclosed is not None and token.type not in ("RPAR", "RSQB"):
        return _unclosed_diagnostic(unclosed, span, token)
    return Diagnostic(
        "E0102", f"unexpected {_describe(token)}", span,
        label=f"expected {_expected(exc.expected)}", help=_hint_for(token, exc.expected),
    )


def _eof_diagnostic(exc: UnexpectedInput, source: Source) -> Diagnostic:
    unclosed = _unclosed_bracket(source, len(source.text))
    end = source.end_position()
    if unclosed is not None:
        return _unclosed_diagnostic(unclosed, end, None)
    expected = getattr(exc, "expected", None) or []
    missing_body = "LAYERS" in expected or "layers" in {e.lower() for e in expected}
    return Diagnostic(
        "E0103", "unexpected end of file", end,
        label=f"expected {_expected(expected)}" if expected else "",
        help="every spec needs a `layers K:` block with at least one statement"
        if missing_body else "the last declaration or statement is incomplete",
    )


def _unclosed_diagnostic(opening: tuple[str, int, int], span: Span, token) -> Diagnostic:
    char, line, col = opening
    closer = ")" if char == "(" else "]"
    found = f"found {_describe(token)}" if token is not None else "reached end of file"
    return Diagnostic(
        "E0104", f"unclosed `{char}`", Span.point(line, col),
        label=f"this `{char}` is never closed",
        notes=(f"{found} at {span.line}:{span.col} before the matching `{closer}`",),
        help=f"add `{closer}` where the bracketed expression ends",
    )


def _unclosed_bracket(source: Source, upto: int) -> tuple[str, int, int] | None:
    """The innermost bracket opened before offset `upto` and not closed (comments skipped)."""
    stack: list[tuple[str, int, int]] = []
    line, col, in_comment = 1, 1, False
    for ch in source.text[:upto]:
        if ch == "\n":
            line, col, in_comment = line + 1, 1, False
            continue
        if ch == "#":
            in_comment = True
        if not in_comment and ch in "([":
            stack.append((ch, line, col))
        elif not in_comment and ch in ")]" and stack:
            stack.pop()
        col += 1
    return stack[-1] if stack else None


def _hint_for(token: Token, expected) -> str:
    expected = set(expected)
    if token.value == "=" and "__ANON_0" in expected:
        return "states are updated with `<-`; `=` defines a temporary"
    if token.type == "NAME" and "STAR" in expected:
        return "write products explicitly, e.g. `mu * x` (juxtaposition is not multiplication)"
    if token.type == "NUMBER" and "INT" in expected:
        return "the number of layers and dimensions are whole numbers"
    return ""


__all__ = ["parse", "grammar_text"]
