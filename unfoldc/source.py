"""Source text and spans: where every user-facing position comes from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Span:
    """A region of a source file; lines and columns are 1-based, `end_col` exclusive."""

    line: int
    col: int
    end_line: int
    end_col: int

    @staticmethod
    def point(line: int, col: int) -> Span:
        """A one-character span at `line:col`."""
        return Span(line, col, line, col + 1)

    def join(self, other: Span) -> Span:
        """The smallest span covering both."""
        start = min((self.line, self.col), (other.line, other.col))
        end = max((self.end_line, self.end_col), (other.end_line, other.end_col))
        return Span(start[0], start[1], end[0], end[1])


NO_SPAN = Span(0, 0, 0, 0)


def normalize_newlines(text: str) -> str:
    """`text` with CRLF and lone CR line ends turned into LF, as Python's own reader does.

    Every later stage counts lines at LF only; a CR left in the text would be a line end to
    Python (in generated comments) but not to the lexer, the diagnostics or the origin comments.
    """
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class Source:
    """The text of one spec together with the name it is reported under.

    Line ends are normalized on construction (see `normalize_newlines`): a file saved with CRLF
    or CR-only line ends compiles exactly like the same file with LF ones.
    """

    name: str
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", normalize_newlines(self.text))

    @staticmethod
    def from_file(path: str | Path) -> Source:
        """Read `path` as UTF-8; decoding errors are reported by the caller (see load_source)."""
        raw = Path(path).read_bytes()
        return Source(str(path), raw.decode("utf-8"))

    @property
    def basename(self) -> str:
        """The file name without folders, used in origin comments of generated code."""
        return Path(self.name).name

    def line_text(self, line: int) -> str:
        """The text of 1-based `line`, without its newline ('' when out of range)."""
        # Split on "\n" only, as the lexer counts lines (splitlines also breaks at \f, \x1c...).
        lines = self.text.split("\n")
        return lines[line - 1] if 1 <= line <= len(lines) else ""

    def end_position(self) -> Span:
        """A point just past the last character: where 'unexpected end of file' is shown."""
        lines = self.text.rstrip().split("\n")  # just after the last visible character
        return Span.point(len(lines), len(lines[-1]) + 1)
