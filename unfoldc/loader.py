"""Turn generated source into a live class, registered with linecache for tracebacks.

The code executed here is the compiler's own output: spec identifiers are sanitized and spec
text only ever appears in comments and string literals, so nothing a user writes runs as Python.
"""

from __future__ import annotations

import linecache
import sys
import types
from pathlib import Path

from unfoldc.codegen.text import printable
from unfoldc.pipeline import Artifacts, Options, compile_file, compile_source
from unfoldc.source import Source


def class_from(art: Artifacts) -> type:
    """The generated network class of compiled artifacts, executed as a fresh module."""
    filename = f"<unfoldc:{printable(art.source.name)}:{art.optimized.source_sha256[:12]}>"
    lines = art.code.splitlines(keepends=True)
    # linecache entries with mtime None are never invalidated by checkcache().
    linecache.cache[filename] = (len(art.code), None, lines, filename)
    module = types.ModuleType(f"unfoldc_generated_{art.optimized.source_sha256[:12]}")
    module.__file__ = filename
    # NamedTuple outputs need their module importable by name for pickling.
    sys.modules.setdefault(module.__name__, module)
    exec(compile(art.code, filename, "exec"), module.__dict__)  # noqa: S102 - our own output
    # The network class is the one class carrying the spec's hash (its per-layer class, report
    # classes and Output tuple do not), whatever the spec named it: `algorithm NetLayer` too.
    (cls,) = [v for v in module.__dict__.values()
              if isinstance(v, type) and getattr(v, "SPEC_SHA256", None) and v.__module__ ==
              module.__name__]
    cls.artifacts = art
    return cls


def load(path: str | Path, options: Options | None = None) -> type:
    """Compile the spec at `path` in memory and return its generated `nn.Module` class.

    Raises:
        UserError: the spec has mistakes (each with file:line:col in its diagnostics).
    """
    return class_from(compile_file(path, options or Options()))


def load_source(text: str, name: str = "<spec>", options: Options | None = None) -> type:
    """Like `load`, for spec text held in memory."""
    return class_from(compile_source(Source(name, text), options or Options()))
