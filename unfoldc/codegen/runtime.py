"""Definitions from unfoldc/runtime/classical.py and fixed_point.py that a generated module
carries verbatim.

The files are read as text, never imported (`unfoldc compile` does not import torch), and each
top-level function or class is copied with its docstring and comments.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path


def runtime_definition(name: str) -> str:
    """The source of the top-level definition `name` of one of the RUNTIME modules."""
    return _definitions()[name]


RUNTIME = ("unfoldc.runtime.classical", "unfoldc.runtime.fixed_point")


@functools.lru_cache(maxsize=1)
def _definitions() -> dict[str, str]:
    out = {}
    for module in RUNTIME:
        source = Path(importlib.util.find_spec(module).origin).read_text(encoding="utf-8")
        out.update({node.name: ast.get_source_segment(source, node)
                    for node in ast.parse(source).body
                    if isinstance(node, ast.FunctionDef | ast.ClassDef)})
    return out
