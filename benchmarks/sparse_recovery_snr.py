"""Issue 13, rows 1 and 2: ALISTA, LAMP, TISTA and LAMP-bg on the published 250 x 500 problem,
noiseless and at SNR 40 dB, per layer, beside ISTA, AMP and the support-oracle least squares.

    python benchmarks/sparse_recovery_snr.py                    # both SNRs, all three networks
    python benchmarks/sparse_recovery_snr.py --snr 40 --rows alista

Each network is trained by the command the README gives for it (run in this process, so the
figures are that command's), with `--snr` added; TISTA at a finite SNR also gets
`--param sigma2=S`, its estimator's noise variance per measurement, set to the expected one of the
task: the noise is drawn per sample at the SNR of that sample's `A x`, so its variance is
`E ||A x||^2 / m / 10^(SNR/10) = p ||A||_F^2 / m / 10^(SNR/10)`.

The baselines are untrained: ISTA (examples/ista.unf, its declared step and threshold) and AMP
(examples/lamp.unf untrained, which is AMP with its declared threshold rule), each run for 16
layers. The support-oracle least squares knows each test signal's support `S` and solves
`min ||A_S z - y||` (float64): the floor of any estimator that must find the support first. NMSE
is a ratio of sums over the 1000 published test signals (the same noisy test set for every row:
the task's, seed 0). Writes `results.json` and `nmse_per_layer.png` to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import unfoldc  # noqa: E402
from unfoldc.cli import main as cli_main  # noqa: E402
from unfoldc.train.binding import bind  # noqa: E402
from unfoldc.train.metrics import evaluate, to_db  # noqa: E402
from unfoldc.train.operands import build  # noqa: E402
from unfoldc.train.tasks import published_sparse_recovery  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "alista" / "sparse_recovery_250x500.npz"
P = 0.1
# The README's command for each row (README "Numbers"): spec, depth, steps per generation.
ROWS = {
    "alista": ("examples/alista.unf", 16, 120),
    "lamp": ("examples/lamp.unf", 10, 100),
    "tista": ("examples/tista.unf", 12, 100),
    "lamp_bg": ("examples/lamp_bg.unf", 16, 100),
}
BASELINES = {"ISTA": "examples/ista.unf", "AMP": "examples/lamp.unf"}
DEPTH = 16


def noise_variance(A: torch.Tensor, snr_db: float) -> float:
    """The expected noise variance per measurement of the task at `snr_db` (see the docstring)."""
    m = A.shape[0]
    return 0.0 if math.isinf(snr_db) else P * float(A.double().square().sum()) / m / 10 ** (
        snr_db / 10)


def oracle_nmse_db(A: torch.Tensor, test: dict[str, torch.Tensor]) -> float:
    """Least squares on each signal's true support, NMSE over the set (float64)."""
    A = A.double()
    x, y = test["x"].double(), test["y"].double()
    err = total = 0.0
    for xi, yi in zip(x, y, strict=True):
        support = torch.nonzero(xi).flatten()
        estimate = torch.zeros_like(xi)
        if support.numel():
            estimate[support] = torch.linalg.lstsq(A[:, support], yi[:, None]).solution[:, 0]
        err += float((estimate - xi).square().sum())
        total += float(xi.square().sum())
    return to_db(err / total)


def untrained_db(spec: str, task, depth: int) -> list[float]:
    """NMSE per layer of a spec's untrained network (the classical algorithm) on the test set."""
    cls = unfoldc.load(ROOT / spec)
    binding = bind(cls, task)
    givens = {k: v.to(torch.get_default_dtype()) for k, v in binding.model_givens(task).items()}
    model = build(cls, givens, depth)
    return evaluate(model, task.test, binding)["nmse_db"]


def train(row: str, snr_db: float, sigma2: float, out: Path) -> dict:
    """Run the row's command with `--snr`; its NMSE per layer and times."""
    spec, _, steps = ROWS[row]
    run = out / f"{row}-snr{'inf' if math.isinf(snr_db) else f'{snr_db:g}'}"
    argv = ["train", str(ROOT / spec), "--data", str(DATA), "--snr", f"{snr_db:g}",
            "--scheme", "incremental", "--steps", str(steps), "--lr-schedule", "cosine",
            "--classical-layers", "0", "--no-progress", "--no-plots", "--overwrite",
            "--out", str(run)]
    if row == "tista" and sigma2:
        argv[argv.index("--scheme"):argv.index("--scheme")] = ["--param", f"sigma2={sigma2:.6g}"]
    shown = (a.replace(str(ROOT) + "/", "").replace(str(ROOT.parent) + "/", "../") for a in argv)
    print("unfoldc " + " ".join(shown), flush=True)
    wall, cpu = time.perf_counter(), time.process_time()
    code = cli_main(argv)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if code != 0:
        raise SystemExit(f"{row} at SNR {snr_db:g}: unfoldc train exited {code}")
    metrics = json.loads((run / "metrics.json").read_text())
    return {"command": argv, "nmse_db": metrics["nmse_db"],
            "untrained_nmse_db": metrics["classical_nmse_db"],
            "training_wall_s": metrics["wall_s"], "wall_s": wall, "cpu_s": cpu}


def _cell(values: list[float] | None, k: int) -> str:
    return f"{values[k]:8.2f}" if values is not None and k < len(values) else f"{'-':>8}"


def table(snr_db: float, result: dict) -> None:
    """Print NMSE per layer, one column per network."""
    columns = {**result["baselines"], **{r: v["nmse_db"] for r, v in result["trained"].items()}}
    print(f"\nSNR {snr_db:g} dB: NMSE (dB) per layer on the 1000 published test signals; "
          f"support-oracle least squares {result['oracle_db']:.2f} dB")
    print("layer " + "".join(f"{name:>8}" for name in columns))
    for k in range(DEPTH):
        print(f"{k + 1:5d} " + "".join(_cell(v, k) for v in columns.values()))
    for row, v in result["trained"].items():
        # Noiseless, the oracle is exact up to rounding: a gap to it says nothing.
        gap = (f", {v['nmse_db'][-1] - result['oracle_db']:+.2f} dB from the oracle"
               if math.isfinite(snr_db) else "")
        print(f"{row}: {v['nmse_db'][-1]:.2f} dB at layer {len(v['nmse_db'])}{gap}; "
              f"{v['cpu_s']:.0f} s CPU, {v['wall_s']:.0f} s wall "
              f"({v['training_wall_s']:.0f} s of training)")


def plot(results: dict, path: Path) -> None:
    """NMSE per layer, one panel per SNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, (snr, result) in zip(axes[0], results.items(), strict=True):
        curves = {**result["baselines"],
                  **{r: v["nmse_db"] for r, v in result["trained"].items()}}
        for name, values in curves.items():
            ax.plot(range(1, len(values) + 1), values, marker="o", ms=3, label=name)
        noiseless = math.isinf(float(snr))
        if not noiseless:  # noiseless, the oracle is exact (rounding level): off the scale
            ax.axhline(result["oracle_db"], color="k", ls="--", lw=1, label="support oracle")
        ax.set(title="noiseless" if noiseless else f"SNR {snr} dB", xlabel="layer",
               ylabel="NMSE (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snr", default="inf,40", help="comma-separated SNRs in dB")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"of {', '.join(ROWS)}")
    parser.add_argument("--out", type=Path, default=Path("runs/sparse-recovery-snr"))
    parser.add_argument("--replot", action="store_true",
                        help="print the tables and redraw the plot from --out's results.json")
    args = parser.parse_args()
    if args.replot:
        results = json.loads((args.out / "results.json").read_text())
        for text, result in results.items():
            table(float(text), result)
        plot(results, args.out / "nmse_per_layer.png")
        return
    torch.set_num_threads(1)  # as in the README's figures: one thread per run
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for text in args.snr.split(","):
        snr = float(text)
        task = published_sparse_recovery(DATA, P, snr, seed=0)
        sigma2 = noise_variance(task.givens["A"], snr)
        result = {"oracle_db": oracle_nmse_db(task.givens["A"], task.test), "sigma2": sigma2,
                  "baselines": {name: untrained_db(spec, task, DEPTH)
                                for name, spec in BASELINES.items()},
                  "trained": {}}
        for row in args.rows.split(","):
            result["trained"][row] = train(row, snr, sigma2, args.out)
        results[text] = result
        table(snr, result)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, args.out / "nmse_per_layer.png")
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'nmse_per_layer.png'}")


if __name__ == "__main__":
    main()
