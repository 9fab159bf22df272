"""The shape of the package: no import cycles (imports inside functions count: a cycle hidden in
a function is still a cycle) and no private name imported across packages."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

import unfoldc
from unfoldc.diagnostics import UserError
from unfoldc.source import Source
from unfoldc.syntax.grammar import declaration_keywords, keywords

PACKAGE = Path(__file__).resolve().parents[1] / "unfoldc"


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    mods = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]):
    """(imported module, imported names) for every import statement anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names = [a.name for a in node.names]
            subs = [n for n in names if f"{base}.{n}" in mods]  # `from pkg import module`
            yield from ((f"{base}.{n}", ()) for n in subs)
            rest = tuple(n for n in names if n not in subs)
            if rest:
                yield base, rest


def import_graph(package: Path = PACKAGE) -> nx.DiGraph:
    """unfoldc's modules and who imports whom (a package's own __init__ is implicit, not an
    edge: importing unfoldc.x always runs unfoldc/__init__.py)."""
    mods = _modules(package)
    graph = nx.DiGraph()
    graph.add_nodes_from(mods)
    for name, path in mods.items():
        for target, _ in _imports(name, path, mods):
            if target in mods and target != name:
                graph.add_edge(name, target)
    return graph


def test_no_import_cycles():
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert cycles == [], f"import cycles (function-local imports included): {cycles}"


def test_the_cycle_finder_sees_function_local_imports(tmp_path):
    # The check above must be able to fail: two modules that import each other in functions.
    package = tmp_path / "unfoldc"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from unfoldc.sub import b\n")
    (package / "sub" / "b.py").write_text("def g():\n    from .. import a\n")
    cycles = [c for c in nx.strongly_connected_components(import_graph(package)) if len(c) > 1]
    assert cycles == [{"unfoldc.a", "unfoldc.sub.b"}]


def test_no_private_names_across_packages():
    mods = _modules()
    crossings = []
    for name, path in mods.items():
        home = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for target, names in _imports(name, path, mods):
            there = target if mods.get(target, Path()).name == "__init__.py" else \
                target.rpartition(".")[0]
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target.startswith("unfoldc") and there != home:
                crossings.append(f"{name} imports {private} from {target}")
    assert crossings == []


SPEC = """algorithm A
given  H : matrix[m, n]
input  x : vector[m]
state  s : vector[n] = 0
let    WORD = 1
layers 2:
    s <- s - 0.1 * H.T @ (H @ s - x)
output s
"""


def test_keywords_are_read_off_the_grammar_and_none_can_name_a_symbol():
    words = keywords()
    assert {"given", "shared", "per_layer", "in", "zero_last"} <= words
    assert {"given", "layers", "minimize"} <= declaration_keywords() <= words
    assert "shared" not in declaration_keywords()  # a sharing mode, not a declaration
    for word in sorted(words):
        with pytest.raises(UserError) as err:
            unfoldc.compile_source(Source("k.unf", SPEC.replace("WORD", word)))
        assert err.value.diagnostics[0].span.line == 5, word  # located at the `let`
