"""docs/language.md stays true: its operator table matches unfoldc/ops.py and its specs compile."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import unfoldc
from unfoldc.ops import FUNCTIONS
from unfoldc.source import Source

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "language.md"
BLOCKS = re.findall(r"^```unf\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)


def test_operator_table_is_up_to_date():
    generated = subprocess.run([sys.executable, str(ROOT / "docs" / "gen_ops_table.py")],
                               check=True, capture_output=True, text=True).stdout
    text = DOC.read_text(encoding="utf-8")
    current = text.split("<!-- ops-table:begin -->\n", 1)[1].split("<!-- ops-table:end -->")[0]
    assert current == generated, "run `python docs/gen_ops_table.py --write` and commit the doc"


def test_operator_table_lists_every_callable_operator():
    table = DOC.read_text(encoding="utf-8").split("<!-- ops-table:begin -->", 1)[1]
    missing = [name for name in FUNCTIONS if f"`{name}(" not in table and f"`{name}`" not in table]
    assert not missing, f"operators missing from the table: {missing}"


def test_doc_has_spec_blocks():
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("block", BLOCKS, ids=[
    (re.search(r"^algorithm (\w+)", b, re.M) or [None, f"block{i}"])[1]
    for i, b in enumerate(BLOCKS)])
def test_spec_block_compiles_without_warnings(block):
    assert re.search(r"^algorithm ", block, re.M), "```unf blocks must be complete specs"
    art = unfoldc.compile_source(Source("language.md", block))
    assert not art.warnings, [w.message for w in art.warnings]
    compile(art.code, "generated", "exec")


def test_readme_python_api_snippet_runs(capsys):
    """The README's Python API block is executed as written (from the repository root)."""
    import os

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("```python\nimport torch, unfoldc")
    code = readme[start + len("```python\n"):readme.index("```", start + 10)]
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - our own documentation
    finally:
        os.chdir(cwd)
    assert "learned operators" in capsys.readouterr().out
