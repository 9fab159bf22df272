"""The published-result rows (README "Numbers", docs/training.md "Reproductions") on small
instances: each row's example and command, run on a file shaped like the published one."""

from pathlib import Path

import numpy as np
import pytest
import torch
from reference_loops import alista

import unfoldc
from unfoldc.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
M, N = 12, 24


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A small stand-in for the published ALISTA file: `A`, an analytic-like `W` (the
    coherence-minimizing weight of the paper is close to `A` scaled so that w_i . a_i = 1), and
    `x_test`."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((M, N)) / np.sqrt(M)
    A /= np.linalg.norm(A, axis=0)
    W = A / np.sum(A * A, axis=0)
    x_test = rng.standard_normal((50, N)) * (rng.random((50, N)) < 0.1)
    path = tmp_path_factory.mktemp("data") / "published.npz"
    np.savez(path, A=A, W=W, x_test=x_test)
    return path, A, W


@pytest.mark.parametrize("reference_start", [False, True])
def test_alista_untrained_is_the_reference_network(published, reference_start):
    """Untrained: ALISTA with the example's geometric thresholds 0.5 * 0.78^k, or, with
    `theta0` and `decay` overridden, the reference code's network (one threshold for all)."""
    _, A, W = published
    A, W = torch.from_numpy(A), torch.from_numpy(W)
    y = torch.randn(3, M, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ALISTA = unfoldc.load(EXAMPLES / "alista.unf")
    if reference_start:
        theta0 = 0.4 / (1.001 * float(torch.linalg.matrix_norm(A, 2)) ** 2)
        model = ALISTA(A=A, W=W, theta0=theta0, decay=1.0, num_layers=5)
        want = alista(A, W, y, 5, all_layers=True)  # the reference code's start
    else:
        model = ALISTA(A=A, W=W, num_layers=5)
        want = alista(A, W, y, 5, theta=[0.5 * 0.78**k for k in range(5)], all_layers=True)
    for got, expected in zip(model(y, all_layers=True), want, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def _train(capsys, tmp_path, spec, data, *extra):
    out = tmp_path / spec
    rc = main(["train", str(EXAMPLES / f"{spec}.unf"), "--data", str(data), "--layers", "4",
               "--classical-layers", "0", "--no-plots", "--no-progress", "--out", str(out),
               *extra])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    rows = [row for row in map(str.split, captured.out.splitlines())
            if len(row) == 3 and row[0].isdigit()]  # layer, trained dB, classical dB
    return captured.err, float(rows[-1][1]), float(rows[-1][2])


def test_alista_row_binds_w_and_trains(published, tmp_path, capsys):
    """Row 1's command: incremental, cosine, the file's `A` and `W` bound by name."""
    err, trained, classical = _train(capsys, tmp_path, "alista", published[0], "--scheme",
                                     "incremental", "--steps", "20", "--lr-schedule", "cosine")
    assert "`A`, `W`" in err
    assert trained < classical - 1


def test_learned_ista_row_trains(published, tmp_path, capsys):
    """Row 5's command: examples/ista.unf, incremental with a cosine rate, default rates."""
    _, trained, classical = _train(capsys, tmp_path, "ista", published[0], "--scheme",
                                   "incremental", "--steps", "20", "--lr-schedule", "cosine")
    assert trained < classical - 0.5  # 0.9 dB measured at this size and budget


def test_readme_figures_reads_the_quick_start_command():
    """benchmarks/readme_figures.py times the README's own command, which `train` accepts."""
    import argparse

    from benchmarks.readme_figures import _with_out, quick_start_command
    from unfoldc.train import cli

    command = quick_start_command()
    assert command[0] == "examples/ista.unf" and "--out" in command
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(_with_out(command, Path("elsewhere")))
    assert args.out == "elsewhere" and args.scheme == "incremental"
