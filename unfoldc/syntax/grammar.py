"""The language definition: grammar/unf.lark, the LALR parser built from it, and the keywords read
off it (so that no other module keeps its own list of the language's words)."""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

from lark import Lark


def grammar_text() -> str:
    """The grammar: shipped as unfoldc/grammar/unf.lark in the wheel, grammar/ in a checkout."""
    try:
        return resources.files("unfoldc.grammar").joinpath("unf.lark").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).parents[2] / "grammar" / "unf.lark").read_text("utf-8")


@functools.lru_cache(maxsize=1)
def lark_parser() -> Lark:
    """The LALR parser of the grammar (built once; positions propagated to the tree)."""
    return Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


@functools.lru_cache(maxsize=1)
def keywords() -> frozenset[str]:
    """Every word the grammar spells literally (`given`, `shared`, `in`, ...): never a name."""
    return frozenset(t.pattern.value for t in lark_parser().terminals
                     if t.pattern.type == "str" and re.fullmatch(r"[a-z_]+", t.pattern.value))


@functools.lru_cache(maxsize=1)
def declaration_keywords() -> frozenset[str]:
    """The words that begin a declaration or the layer block: the rules named after the keyword
    they start with (`given: "given" NAME ...`, `layers: "layers" INT ...`)."""
    spelled = {t.name: t.pattern.value for t in lark_parser().terminals
               if t.pattern.type == "str"}
    return frozenset(str(r.origin.name) for r in lark_parser().rules
                     if r.expansion and spelled.get(r.expansion[0].name) == r.origin.name)
