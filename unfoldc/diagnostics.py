"""Diagnostics: error codes, the `UserError` exception and rustc-style rendering.

Every mistake in a spec becomes a `Diagnostic` with a stable code (documented in
docs/errors.md), a span, a message (lowercase, identifiers in backticks), an optional label
under the caret, notes and a help line. Only the front end (parser and semantic checks) creates
them; failures later in the pipeline are internal errors.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from unfoldc.source import NO_SPAN, Source, Span

# Stable codes. E01xx: reading and syntax; E02xx: names and roles; E03xx: shapes and operators;
# E04xx: structure of the spec; W0xxx: warnings. docs/errors.md explains each one.
CODES = {
    "E0100": "the file cannot be read as UTF-8 text",
    "E0101": "the file is empty",
    "E0102": "unexpected token",
    "E0103": "unexpected end of file",
    "E0104": "unclosed bracket",
    "E0105": "unexpected character",
    "E0201": "unknown identifier",
    "E0202": "symbol declared twice",
    "E0203": "assignment to a symbol that is not a state or temporary",
    "E0204": "update of something that is not a declared state",
    "E0205": "use before definition",
    "E0206": "reserved word used as a name",
    "E0207": "value depends on something it may not depend on",
    "E0301": "shape mismatch in a matrix product",
    "E0302": "shape mismatch in an elementwise operation",
    "E0303": "wrong number of arguments",
    "E0304": "unknown operator",
    "E0305": "initial value has the wrong shape",
    "E0306": "argument of the wrong kind",
    "E0307": "size cannot be inferred",
    "E0308": "no closed-form proximal operator",
    "E0309": "bad learned-network declaration",
    "E0310": "a constant has no finite value",
    "E0401": "the layer count must be positive",
    "E0402": "the spec has no output",
    "E0403": "the spec has no layer body",
    "E0404": "a size or layer count is too large",
    "E0405": "an expression is too large once functions are inlined",
    "E0406": "a per-layer schedule does not cover the layers",
    "W0001": "state is never updated",
    "W0002": "value is never used",
}


@dataclass(frozen=True)
class Diagnostic:
    """One message about the user's spec."""

    code: str
    message: str
    span: Span = NO_SPAN
    label: str = ""
    notes: tuple[str, ...] = ()
    help: str = ""

    @property
    def is_error(self) -> bool:
        """Errors stop compilation; warnings (codes starting with W) do not.

        A diagnostic without a code is an error found after the front end, about a spec that
        compiles (`unfoldc export`: an operator the format cannot express).
        """
        return not self.code.startswith("W")


@dataclass
class UserError(Exception):
    """Raised by the front end with every error it found, sorted by position."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    source: Source | None = None

    def __str__(self) -> str:
        return "\n".join(render(d, self.source, color=False) for d in self.diagnostics)


def sort_diagnostics(diags: list[Diagnostic]) -> list[Diagnostic]:
    """Order by position, then code: the order users read them in."""
    return sorted(diags, key=lambda d: (d.span.line, d.span.col, d.code, d.message))


def use_color(stream=None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set."""
    stream = stream or sys.stderr
    return stream.isatty() and "NO_COLOR" not in os.environ


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def render(diag: Diagnostic, source: Source | None, color: bool = False) -> str:
    """Render `diag` the way rustc does: header, location, source line, caret, notes, help."""
    kind = "error" if diag.is_error else "warning"
    coded = f"{kind}[{diag.code}]" if diag.code else kind
    head = _paint(coded, "1;31" if diag.is_error else "1;33", color)
    lines = [f"{head}: {diag.message}"]
    pad = " " * len(str(max(diag.span.line, 1)))  # the gutter is as wide as the line number
    if source is not None and diag.span.line > 0:
        lines += _excerpt(diag, source, color)
    elif source is not None:
        lines.append(f"{pad}--> {source.name}")
    trailer = [f"{pad} = note: {note}" for note in diag.notes]
    if diag.help:
        trailer.append(f"{pad} = {_paint('help', '1', color)}: {diag.help}")
    if trailer and source is not None and diag.span.line > 0:
        lines.append(f"{pad} |")
    return "\n".join(lines + trailer)


def _excerpt(diag: Diagnostic, source: Source, color: bool) -> list[str]:
    span = diag.span
    text = source.line_text(span.line).expandtabs(1)
    width = len(str(span.line))
    pad = " " * width
    end_col = span.end_col if span.end_line == span.line else len(text) + 1
    carets = "^" * max(1, end_col - span.col)
    marker = _paint(carets + (f" {diag.label}" if diag.label else ""), "1;31", color)
    return [
        f"{pad}--> {source.name}:{span.line}:{span.col}",
        f"{pad} |",
        f"{span.line} | {text}",
        f"{pad} | {' ' * (span.col - 1)}{marker}",
    ]
