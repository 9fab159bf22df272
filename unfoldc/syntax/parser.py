"""Parse .unf text with Lark (LALR, positions kept) and turn every failure into a Diagnostic."""

from __future__ import annotations

import re
import sys

from lark import (
    Token,
    Tree,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)
from lark.exceptions import VisitError
from lark.lexer import PatternStr

from unfoldc.diagnostics import Diagnostic, UserError
from unfoldc.source import Source, Span
from unfoldc.syntax import hints, nodes
from unfoldc.syntax.grammar import grammar_text, lark_parser
from unfoldc.syntax.to_ast import ToAst

# How expected terminals are named in messages; keywords and punctuation print as themselves.
_PRETTY = {
    "NAME": "a name", "NUMBER": "a number", "INT": "an integer", "STRING": "a string",
    "COMPARE": "a comparison", "$END": "end of file",
}
_MAX_DEPTH = 200  # deeper nesting is reported, not crashed on (the AST builder recurses)
# The deepest expression tree every later stage (AST builder, checks, IR passes, sympy, printer)
# handles within Python's default recursion limit: `s + s + ... + s` with 200 terms compiles.
_MAX_TREE_DEPTH = 200


def parse(source: Source) -> nodes.Spec:
    """Parse `source` into an AST, or raise UserError with a located diagnostic."""
    if not re.sub(r"#[^\n]*", "", source.text).strip():  # nothing but blanks and comments
        raise UserError([Diagnostic("E0101", "the spec is empty", help=_EMPTY_HELP)], source)
    try:
        tree = lark_parser().parse(source.text)
    except UnexpectedInput as exc:
        raise UserError([_syntax_diagnostic(exc, source)], source) from None
    _check_depth(source)
    _check_tree_depth(tree, source)
    try:
        return ToAst(source).transform(tree)
    except RecursionError:  # not expected after the checks above; still never a traceback
        raise _too_deep(source.end_position(), "", source) from None
    except VisitError as exc:  # a callback raised: unwrap it, users never see lark internals
        if isinstance(exc.orig_exc, UserError):
            raise exc.orig_exc from None
        if isinstance(exc.orig_exc, RecursionError):
            raise _too_deep(source.end_position(), "", source) from None
        raise


_EMPTY_HELP = "a spec starts with `algorithm NAME`; see examples/ista.unf"


def _too_deep(span: Span, label: str, source: Source) -> UserError:
    return UserError([Diagnostic(
        "E0102", "this expression is nested too deeply to compile", span, label,
        help="split long expressions with `let` or temporaries")], source)


def _check_tree_depth(tree: Tree, source: Source) -> None:
    """Reject parse trees deeper than _MAX_TREE_DEPTH (long chains of `+` or `^` have no
    bracket to count), at the declaration or statement that holds the deepest part."""
    stack: list[tuple[Tree, int, Tree | None]] = [(tree, 0, None)]
    while stack:  # iterative: the tree may be deeper than the recursion limit
        node, depth, top = stack.pop()
        if depth > _MAX_TREE_DEPTH:
            raise _too_deep(*_where(top, source), source)
        for child in node.children:
            if isinstance(child, Tree):
                if node.data in ("start", "layers"):  # depth counts from the statement
                    stack.append((child, 0, child))
                else:
                    stack.append((child, depth + 1, top))


def _where(top: Tree | None, source: Source) -> tuple[Span, str]:
    """The span and caret label for a too-deep declaration or layer-body statement."""
    if top is None or top.meta.empty:
        return source.end_position(), ""
    m = top.meta
    kind = "statement" if top.data in ("update", "assign") else "declaration"
    return (Span(m.line, m.column, m.end_line, m.end_column),
            f"more than {_MAX_TREE_DEPTH} levels in this {kind}")


def _check_depth(source: Source) -> None:
    """Reject absurdly nested brackets before the (recursive) AST builder meets them."""
    depth = 0
    # Strings first (a docstring may hold brackets, and span lines), then comments, brackets.
    pattern = r'"""(?:.|\n)*?"""|"[^"\n]*"|#[^\n]*|[()\[\]]'
    for m in re.finditer(pattern, source.text):
        ch = m.group()
        depth += 1 if ch in "([" else -1 if ch in ")]" else 0
        if depth > min(_MAX_DEPTH, sys.getrecursionlimit() // 8):
            line = source.text.count("\n", 0, m.start()) + 1
            col = m.start() - (source.text.rfind("\n", 0, m.start()) + 1) + 1
            raise UserError([Diagnostic(
                "E0102", "brackets are nested too deeply", Span.point(line, col),
                f"more than {_MAX_DEPTH} levels", help="split the expression with `let` or "
                "temporaries")], source)


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    return f"`{token.value}`"


def _pretty(name: str) -> str:
    if name in _PRETTY:
        return _PRETTY[name]
    try:
        pattern = lark_parser().get_terminal(name).pattern
    except KeyError:
        return f"`{name.lower()}`"
    return f"`{pattern.value}`" if isinstance(pattern, PatternStr) else f"`{name.lower()}`"


def _expected(names) -> str:
    shown = sorted({_pretty(n) for n in names if not n.startswith("_") or
                    n.startswith("__ANON")})
    if len(shown) > 8:
        shown = shown[:8] + ["..."]
    return ", ".join(shown)


def _arrow_terminal() -> str:
    """The name lark gave the anonymous `<-` terminal (it depends on the grammar's order)."""
    return next((t.name for t in lark_parser().terminals
                 if isinstance(t.pattern, PatternStr) and t.pattern.value == "<-"), "")


def _context(exc: UnexpectedInput, token: Token, source: Source) -> hints.Context:
    start = len(source.text) if token.type == "$END" else token.start_pos
    before = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), source.text[:start])
    expected = frozenset(getattr(exc, "expected", None) or ())
    return hints.Context(token, expected, before, _arrow_terminal())


def _syntax_diagnostic(exc: UnexpectedInput, source: Source) -> Diagnostic:
    if isinstance(exc, UnexpectedCharacters):
        char = source.text[exc.pos_in_stream]
        return Diagnostic(
            "E0105", f"unexpected character `{char}`", Span.point(exc.line, exc.column),
            label="not part of the language", help=hints.character_help(char),
        )
    if isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        return _eof_diagnostic(exc, source)
    token = exc.token
    span = Span(token.line, token.column, token.end_line, token.end_column)
    unclosed = _unclosed_bracket(source, token.start_pos)
    if unclosed is not None and token.type not in ("RPAR", "RSQB") and (
            token.line > unclosed[1] or token.type in ("EQUAL", _arrow_terminal())):
        return _unclosed_diagnostic(unclosed, span, token)
    if unclosed is not None and token.type in ("RPAR", "RSQB") and \
            _closer(unclosed[0]) != token.value:
        return _mismatched_diagnostic(unclosed, span, token)
    curated = hints.curated(_context(exc, token, source))
    if curated is not None:
        return curated
    return Diagnostic(
        "E0102", f"unexpected {_describe(token)}", span,
        label=f"expected {_expected(exc.expected)}",
        help=_hint_for(token, exc.expected),
    )


def _eof_diagnostic(exc: UnexpectedInput, source: Source) -> Diagnostic:
    unclosed = _unclosed_bracket(source, len(source.text))
    end = source.end_position()
    if unclosed is not None:
        return _unclosed_diagnostic(unclosed, end, None)
    eof = Token("$END", "", len(source.text), end.line, end.col, end.line, end.col)
    curated = hints.curated(_context(exc, eof, source))
    if curated is not None:
        return curated
    expected = getattr(exc, "expected", None) or []
    return Diagnostic(
        "E0103", "unexpected end of file", end,
        label=f"expected {_expected(expected)}" if expected else "",
        help="the last declaration or statement is incomplete",
    )


def _closer(opener: str) -> str:
    return ")" if opener == "(" else "]"


def _unclosed_diagnostic(opening: tuple[str, int, int], span: Span, token) -> Diagnostic:
    char, line, col = opening
    closer = _closer(char)
    found = f"found {_describe(token)}" if token is not None else "reached end of file"
    return Diagnostic(
        "E0104", f"unclosed `{char}`", Span.point(line, col),
        label=f"this `{char}` is never closed",
        notes=(f"{found} at {span.line}:{span.col} before the matching `{closer}`",),
        help=f"add `{closer}` where the bracketed expression ends",
    )


def _mismatched_diagnostic(opening: tuple[str, int, int], span: Span, token) -> Diagnostic:
    char, line, col = opening
    return Diagnostic(
        "E0104", f"`{token.value}` does not close the `{char}` at {line}:{col}", span,
        label=f"expected `{_closer(char)}`",
        help=f"close `{char}` with `{_closer(char)}`; brackets pair up innermost first",
    )


def _unclosed_bracket(source: Source, upto: int) -> tuple[str, int, int] | None:
    """The innermost bracket opened before offset `upto` and not closed.

    Comments and string literals are skipped (a docstring may well contain a bracket).
    """
    stack: list[tuple[str, int, int]] = []
    line, col, in_comment, in_string = 1, 1, False, False
    for ch in source.text[:upto]:
        if ch == "\n":
            line, col, in_comment = line + 1, 1, False
            continue
        if ch == "#" and not in_string:
            in_comment = True
        elif ch == '"' and not in_comment:
            in_string = not in_string
        elif not (in_comment or in_string) and ch in "([":
            stack.append((ch, line, col))
        elif not (in_comment or in_string) and ch in ")]" and stack:
            stack.pop()
        col += 1
    return stack[-1] if stack else None


def _hint_for(token: Token, expected) -> str:
    expected = set(expected)
    if token.value == "=" and _arrow_terminal() in expected:
        return "states are updated with `<-`; `=` defines a temporary"
    if token.type == "NUMBER" and "INT" in expected:
        return "the number of layers and dimensions are whole numbers"
    return ""


__all__ = ["parse", "grammar_text"]
