"""Definitions from unfoldc/runtime/classical.py that a generated module carries verbatim.

The file is read as text, never imported (`unfoldc compile` does not import torch), and each
top-level function or class is copied with its docstring and comments.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path


def runtime_definition(name: str) -> str:
    """The source of the top-level definition `name` of unfoldc/runtime/classical.py."""
    return _definitions()[name]


@functools.lru_cache(maxsize=1)
def _definitions() -> dict[str, str]:
    origin = importlib.util.find_spec("unfoldc.runtime.classical").origin
    source = Path(origin).read_text(encoding="utf-8")
    return {node.name: ast.get_source_segment(source, node)
            for node in ast.parse(source).body
            if isinstance(node, ast.FunctionDef | ast.ClassDef)}
