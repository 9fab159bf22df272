"""Curated diagnostics for common malformed snippets the parser rejects.

Lark reports *where* parsing stopped and which terminals it expected; this module looks at the
offending token and the text to its left and recognises mistakes people actually make (`x ** 2`,
`A.T()`, `layers:`, `train mu scalar`, `matrix[m n]`, ...), so that the message says what was
meant and how to write it. Each rule is a small function returning a Diagnostic or None; the
first rule that matches wins, so put specific rules before general ones.

This plays the role of lark's `UnexpectedInput.match_examples`, but keys on the token and its
left context instead of on the parser state, so the hints survive changes to the grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lark import Token

from unfoldc.diagnostics import Diagnostic
from unfoldc.source import Span
from unfoldc.syntax.grammar import declaration_keywords

_TYPES = ("SCALAR", "VECTOR", "MATRIX")
_UPDATE = "`<-`"


@dataclass(frozen=True)
class Context:
    """The failing token, what the parser expected instead, and the source text before it."""

    token: Token
    expected: frozenset[str]  # terminal names
    before: str  # source text before the token, comments blanked out
    arrow: str  # the terminal name lark gave `<-`

    @property
    def span(self) -> Span:
        t = self.token
        return Span(t.line, t.column, t.end_line, t.end_column)

    @property
    def left(self) -> str:
        """The text before the token without trailing whitespace."""
        return self.before.rstrip()

    def previous_word(self) -> str:
        """The identifier or keyword just before the token ('' when something else is)."""
        m = re.search(r"([A-Za-z_]\w*)$", self.left)
        return m.group(1) if m else ""

    def previous_word_span(self) -> Span:
        """The span of `previous_word()` (the before-text runs from the start of the file)."""
        word = self.previous_word()
        start = len(self.left) - len(word)
        line = self.before.count("\n", 0, start) + 1
        col = start - (self.before.rfind("\n", 0, start) + 1) + 1
        return Span(line, col, line, col + len(word))

    def last_line(self) -> str:
        """The text of the current line up to the token, stripped."""
        return self.before.rsplit("\n", 1)[-1].strip()


def _error(code: str, message: str, span: Span, label: str, help: str) -> Diagnostic:
    return Diagnostic(code, message, span, label=label, help=help)


# ---- the rules ----------------------------------------------------------------------------------
def python_power(c: Context) -> Diagnostic | None:
    """`x ** 2`: Python's power operator."""
    if c.token.value != "*" or not c.left.endswith("*"):
        return None
    adjacent = c.before.endswith("*")  # `**` rather than `* *`: underline both stars
    span = Span(c.span.line, c.span.col - 1, c.span.end_line, c.span.end_col) if adjacent \
        else c.span
    return _error("E0102", "`**` is not an operator in a spec", span, "Python's power",
                  "powers are written with `^`, e.g. `x ^ 2`")


def transpose_call(c: Context) -> Diagnostic | None:
    """`A.T()` or `A.transpose()`: transpose written as a method call."""
    if c.token.value == "(" and re.search(r"\.\s*T$", c.left):
        return _error("E0102", "`.T` is not a method: it takes no parentheses", c.span,
                      "remove `()`", "write the transpose as `A.T`")
    if c.left.endswith(".") and "T" in c.expected and c.token.value != "T":
        return _error("E0102", f"unknown attribute `.{c.token.value}`", c.span,
                      "expected `T`", "the only attribute is the transpose `A.T`; "
                      "functions are called as `f(x)`")
    return None


def missing_layer_count(c: Context) -> Diagnostic | None:
    """`layers:` without the number of layers, or `layers 16` without the colon."""
    if "INT" in c.expected and c.previous_word() == "layers":
        return _error("E0102", "the layer count is missing", c.span, "expected an integer",
                      "write the number of layers (the default depth), e.g. `layers 16:`")
    m = re.search(r"\blayers\s+(\d+)$", c.left)
    if m and "COLON" in c.expected:
        return _error("E0102", "missing `:` after the layer count", c.span, "expected `:`",
                      f"write `layers {m.group(1)}:` and then the statements of one layer")
    return None


def missing_type_colon(c: Context) -> Diagnostic | None:
    """`train mu scalar`: the colon between a declared name and its type is missing."""
    if "COLON" not in c.expected or c.token.type not in _TYPES:
        return None
    return _error("E0102", "missing `:` between the name and its type", c.span, "expected `:`",
                  f"write `{c.last_line()} : {c.token.value} ...`")


def missing_dim_comma(c: Context) -> Diagnostic | None:
    """`matrix[m n]`: the dimensions of a matrix type are separated by a comma."""
    m = re.search(r"\bmatrix\s*\[\s*(\w+)$", c.left)
    if m and "COMMA" in c.expected and c.token.type in ("NAME", "INT"):
        return _error("E0102", "missing `,` between the dimensions", c.span, "expected `,`",
                      f"write `matrix[{m.group(1)}, {c.token.value}]`")
    return None


def round_brackets_in_type(c: Context) -> Diagnostic | None:
    """`vector(n)`: sizes of a type go in square brackets."""
    # (after an expression `[` is expected too: `steps[layer]`)
    if c.token.value == "(" and "LSQB" in c.expected and c.previous_word() in ("vector",
                                                                              "matrix"):
        kind = c.previous_word()
        return _error("E0102", "sizes of a type go in square brackets", c.span, "expected `[`",
                      f"write `{kind}[n]`" if kind == "vector" else f"write `{kind}[m, n]`")
    return None


def missing_sharing(c: Context) -> Diagnostic | None:
    """`train mu : scalar = 1`: trainables say whether layers share them."""
    if c.expected and c.expected <= {"SHARED", "PER_LAYER", "PERIODIC"}:
        return _error("E0102", "a trainable must say how layers share it", c.span,
                      "expected `shared`, `per_layer` or `periodic T`",
                      "write `shared` (one value for all layers), `per_layer` (one per layer) "
                      "or `periodic T` (T values, layer k uses value k mod T) after the type")
    return None


def arrow_in_declaration(c: Context) -> Diagnostic | None:
    """`let L <- ...`: declarations give values with `=`."""
    if (c.token.type == c.arrow or c.token.value == "<") and "EQUAL" in c.expected:
        span = c.span if c.token.type == c.arrow else \
            Span(c.span.line, c.span.col, c.span.line, c.span.col + 2)  # lexed as `<` `-`
        return _error("E0102", f"unexpected {_UPDATE} in a declaration", span, "expected `=`",
                      "declarations use `=`; `<-` updates a state inside the layer body")
    return None


def missing_value(c: Context) -> Diagnostic | None:
    """`state s : vector[n]` with nothing after the type."""
    if c.expected != {"EQUAL"}:
        return None
    return _error("E0102", "this declaration needs a value", c.span, "expected `=`",
                  "`state`, `param` and `train` declarations end with `= VALUE`, e.g. `= 0`")


def keyword_as_name(c: Context) -> Diagnostic | None:
    """`output = ...` in the body: a keyword where a name was meant."""
    word = c.previous_word()
    if word not in declaration_keywords() or c.token.type not in ("EQUAL", c.arrow, "COLON"):
        return None
    if "NAME" not in c.expected:
        return None
    return _error("E0206", f"`{word}` is a keyword of the language and cannot name a symbol",
                  c.previous_word_span(), "reserved", f"choose another name, e.g. `{word}_`")


def empty_body(c: Context) -> Diagnostic | None:
    """`layers 4:` directly followed by a declaration (or the end of the file)."""
    body_start = re.search(r"\blayers\s+\d+\s*:\s*(\w*)$", c.left)
    if body_start and (body_start.group(1) in declaration_keywords() or c.token.type == "$END"):
        return _error("E0403", "the layer body is empty", c.span, "expected a statement",
                      "write at least one statement after `layers K:`, e.g. `s <- s - mu * g`")
    return None


def statement_outside_body(c: Context) -> Diagnostic | None:
    """`s <- ...` before any `layers K:` line, or a spec without a layer block."""
    if "LAYERS" not in c.expected:
        return None
    if c.token.type == "$END":
        return _error("E0403", "the spec has no layer body", c.span, "expected `layers K:`",
                      "add the iteration as `layers K:` followed by its statements")
    if c.token.type in (c.arrow, "EQUAL") or (c.token.type == "NAME" and c.token.value not in
                                               declaration_keywords()):
        return _error("E0102", f"unexpected `{c.token.value}` outside the layer body", c.span,
                      "expected a declaration or `layers`",
                      "statements go inside a `layers K:` block; declarations start with "
                      "`given`, `input`, `state`, `let`, `param`, `train` or `output`")
    return None


def missing_header(c: Context) -> Diagnostic | None:
    """A spec must open with `algorithm NAME`."""
    if c.expected == {"ALGORITHM"}:
        return _error("E0102", "a spec starts with `algorithm NAME`", c.span,
                      "expected `algorithm`", "add a first line such as `algorithm ISTA`")
    return None


def trailing_comma(c: Context) -> Diagnostic | None:
    """`f(a, )`: an argument list ending in a comma."""
    if c.token.value == ")" and c.left.endswith(","):
        return _error("E0102", "unexpected `)` after `,`", c.span, "expected an argument",
                      "remove the trailing comma")
    return None


def indexing(c: Context) -> Diagnostic | None:
    """`x[0]`: indexing is not part of the language."""
    if c.token.value == "[" and "LSQB" not in c.expected and re.search(r"[\w)]$", c.left):
        return _error("E0102", "indexing is not supported", c.span, "unexpected `[`",
                      "specs work on whole vectors and matrices; use operators such as "
                      "`dot`, `sum` or `@`")
    return None


def juxtaposition(c: Context) -> Diagnostic | None:
    """`2 mu` or `mu x`: a product written without `*`."""
    if c.token.type in ("NAME", "NUMBER", "LPAR") and "STAR" in c.expected and \
            re.search(r"[\w)]$", c.left) and c.previous_word() not in declaration_keywords():
        return _error("E0102", f"unexpected `{c.token.value}` after an expression", c.span,
                      "expected an operator", "write products explicitly, e.g. `mu * x`; "
                      "separate arguments with `,`; start each statement on a name")
    return None


def missing_operator(c: Context) -> Diagnostic | None:
    """`s <- s - 0.1 H.T @ r`: a name after an expression was taken as a new statement."""
    if not c.expected or not c.expected <= {"EQUAL", c.arrow} or c.token.type in c.expected:
        return None
    word, span = c.previous_word(), c.previous_word_span()
    line_start = c.before.rfind("\n", 0, len(c.left) - len(word)) + 1
    head = c.before[line_start:len(c.left) - len(word)]
    if not re.search(r"(<-|=).*[\w)]\s*$", head):
        return None
    return _error("E0102", f"missing operator before `{word}`", span, "a new statement?",
                  "write products explicitly, e.g. `0.1 * x`; each statement starts with "
                  "`NAME <-` or `NAME =`")


def chained_comparison(c: Context) -> Diagnostic | None:
    """`0 < s < 1`: comparisons do not chain (each is a 0/1 mask)."""
    if c.token.type != "COMPARE":
        return None
    line = c.last_line().replace("<-", "")
    m = re.search(r"([^<>=]*?)\s*(<=|>=|<|>|==)\s*([^<>=]*)$", line)
    if m is None or not m.group(3).strip():
        return None
    first = (m.group(1).rsplit("(", 1)[-1].split() or ["a"])[-1]
    middle = m.group(3).strip().rsplit("(", 1)[-1].strip() or "b"
    keyword = line.split()[0] if line.split()[0] in ("require", "assume") else ""
    if keyword:
        return _error("E0102", "comparisons do not chain", c.span, "a second comparison",
                      f"state each on its own line: `{keyword} {first} {m.group(2)} {middle}` "
                      f"and `{keyword} {middle} {c.token.value} ...`")
    return _error("E0102", "comparisons do not chain", c.span, "a second comparison",
                  f"a comparison is a 0/1 mask: multiply two of them, e.g. "
                  f"`({first} {m.group(2)} {middle}) * ({middle} {c.token.value} ...)`")


RULES = (
    missing_header, python_power, transpose_call, chained_comparison, missing_layer_count,
    missing_type_colon, missing_dim_comma, round_brackets_in_type, missing_sharing,
    arrow_in_declaration, keyword_as_name, empty_body, statement_outside_body, trailing_comma,
    indexing, missing_value, missing_operator, juxtaposition,
)


def curated(context: Context) -> Diagnostic | None:
    """The first curated diagnostic that recognises this mistake, if any."""
    for rule in RULES:
        diag = rule(context)
        if diag is not None:
            return diag
    return None


# ---- unexpected characters ----------------------------------------------------------------------
_CHAR_HINTS = {
    "'": "strings use double quotes: `\"...\"`",
    "%": "there is no `%` operator",
    "!": "comparisons are `<`, `<=`, `>`, `>=` (and `==` in `require`/`assume`); for a mask "
         "of `a != b` write `abs(a - b) > 0`",
    "&": "there are no logical operators; multiply masks: `(a > 0) * (b > 0)`",
    "|": "there are no logical operators; write norms as `norm(x)`",
    "{": "only `(` and `)` group expressions; types use `[` and `]`",
    "}": "only `(` and `)` group expressions; types use `[` and `]`",
    ";": "statements need no separator: start each on a new line",
    "\\": "long expressions may simply continue on the next line",
}


def character_help(char: str) -> str:
    """Help for a character that is not part of the language."""
    if char in _CHAR_HINTS:
        return _CHAR_HINTS[char]
    if not char.isascii():
        return "names use ASCII letters, digits and `_`; write `lambda_`, not `λ`, and `^ 2`, " \
            "not `²`"
    return "names use letters, digits and `_`; comments start with `#`"
