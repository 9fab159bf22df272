"""User text as data in generated code: the only way spec text and file names enter it.

Generated modules quote three kinds of user text: origin comments (`# spec.unf:14: s <- ...`),
docstrings (the algorithm's description, the spec's file name) and string literals (file names in
error messages and tables). Each has one function here, and each is safe by construction:

- `comment`: no character survives that Python's tokenizer (or `str.splitlines`, which linecache
  and tracebacks use) treats as a line end, and no NUL; every non-printable character is written as
  its backslash escape. A comment therefore always ends at the generated line's own newline.
- `docstring`: backslashes and double quotes are escaped, so the text can neither form `\"\"\"`
  nor start an escape such as `\\x`, `\\u` or `\\N{...}`; non-printable characters become escapes,
  which the string evaluates back to the original characters. Newlines are kept only by
  `docstring_lines`, which returns one escaped line per source line.
- `literal`: `repr()`, which is a valid Python string literal for every `str` (double-quoted when
  the text holds no quote, to match the rest of the generated file).

tests/test_injection.py proves these with payloads in every place user text reaches.
"""

from __future__ import annotations


def printable(text: str) -> str:
    """Every character that `str.isprintable` rejects, as its backslash escape (`\\r`, `\\x00`).

    Non-printable covers every line-break character (`\\n`, `\\r`, `\\v`, `\\f`, `\\x1c`-`\\x1e`,
    `\\x85`, `\\u2028`, `\\u2029`), NUL and the other controls, format characters and lone
    surrogates (from undecodable file names).
    """
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if char in "\t\n\r":
        return {"\t": "\\t", "\n": "\\n", "\r": "\\r"}[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def comment(text: str) -> str:
    """`text` made safe for the rest of a `#` comment line (printed escapes, one line)."""
    return printable(text)


def docstring(text: str) -> str:
    """`text` as the body of one line of a `\"\"\"` docstring, meaning exactly `text`."""
    return printable(text.replace("\\", "\\\\").replace('"', '\\"'))


def docstring_lines(text: str) -> list[str]:
    """`text` as docstring lines: split at newlines only, each line escaped by `docstring`."""
    return [docstring(line) for line in text.split("\n")]


def literal(text: str) -> str:
    """A Python string literal whose value is `text`."""
    quoted = repr(text)
    if quoted.startswith("'") and '"' not in text and "'" not in text:
        return '"' + quoted[1:-1] + '"'  # no quote inside: either delimiter means the same
    return quoted
