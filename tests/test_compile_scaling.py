"""benchmarks/compile_scaling.py: its generated specs compile with the statements they claim,
and the budget stops a compile that runs too long (issue 14, compile-time scaling)."""

from __future__ import annotations

import importlib.util
import time

import pytest
from conftest import ROOT

import unfoldc
from unfoldc.source import Source

_spec = importlib.util.spec_from_file_location("compile_scaling",
                                               ROOT / "benchmarks" / "compile_scaling.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize(("family", "statements"), [
    ("independent updates", 7), ("independent temporaries", 2 * 7 - 1 + 1),
    ("chained temporaries", 7 + 1), ("consecutive updates", 7),
])
def test_every_family_compiles_with_its_statements(family, statements):
    art = unfoldc.compile_source(Source("scale.unf", bench.FAMILIES[family](7)))
    assert len(art.program.body) == statements
    assert not art.warnings  # every temporary is read: nothing is dead


def test_nested_funcs_inline_one_call_per_level():
    art = unfoldc.compile_source(Source("scale.unf", bench.nested_funcs(30)))
    assert len(art.program.body) == 1 and not art.warnings


def test_a_compile_past_the_budget_is_over_budget_even_if_the_alarm_is_caught(monkeypatch):
    def swallowing(path):  # the convergence analysis catches what it cannot afford
        try:
            time.sleep(5)
        except bench.OverBudget:
            time.sleep(0.1)

    monkeypatch.setattr(bench.unfoldc, "compile", swallowing)
    with pytest.raises(bench.OverBudget):
        bench.compile_time("algorithm X", runs=3, budget=0.2)


def test_the_budget_stops_a_long_compile(monkeypatch):
    monkeypatch.setattr(bench.unfoldc, "compile", lambda path: time.sleep(5))
    start = time.perf_counter()
    with pytest.raises(bench.OverBudget):
        bench.compile_time("algorithm X", runs=3, budget=0.2)
    assert time.perf_counter() - start < 2


def test_the_table_shows_ratios_and_skipped_sizes():
    row = bench._row("x", [10, 100, 1000], [0.1, 1.0, None], 120)
    assert "N=1000 >   120 s" in row and row.endswith("ratios  10.0      -")
