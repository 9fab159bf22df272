"""Shared test fixtures: paths, the `--update-goldens` flag, and golden-file comparison."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # reference_loops and helpers

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `-n auto` every core already runs a worker; torch's own threads on top of that
    # oversubscribe the cores (measured: the quick loop took 142 s that way on 2 idle cores).
    # One thread per worker, for the tests and for the commands they start.
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true",
                     help="rewrite golden files from the current output (review the diff!)")


@pytest.fixture
def golden(request):
    """Compare text with tests/golden/NAME, or rewrite it under --update-goldens."""
    update = request.config.getoption("--update-goldens")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update or not path.exists():
            if not update:
                pytest.fail(f"missing golden {path}; run pytest --update-goldens and review")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        expected = path.read_text(encoding="utf-8")
        assert text == expected, f"{name} differs from its golden; if intended, --update-goldens"

    return check


@pytest.fixture
def one_thread():
    """Small problems run faster on one thread than on many on a shared machine.

    Use it per module with `pytestmark = pytest.mark.usefixtures("one_thread")`.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
