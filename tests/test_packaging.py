"""The wheel ships every package and the grammar (a fast check; .ci/run also builds the wheel).

pyproject.toml lists the packages explicitly (the grammar lives outside the package tree), so a
new subpackage that is not added there works in a checkout but is missing from `pip install .`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; CI runs 3.11

ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(_setuptools()["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "unfoldc").rglob("__init__.py")}
    missing = sorted(found - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"


def test_grammar_ships_as_package_data():
    conf = _setuptools()
    assert "unfoldc.grammar" in conf["packages"]
    assert conf["package-dir"]["unfoldc.grammar"] == "grammar"
    assert "*.lark" in conf["package-data"]["unfoldc.grammar"]
    assert (ROOT / "grammar" / "unf.lark").is_file()
