"""Peak memory and time of one training step against the iteration count: unrolled backprop,
per-layer checkpointing, implicit differentiation and Jacobian-free backprop (JFB).

    python benchmarks/fixed_point_memory.py                      # 16 64 256 1024, batch 64
    python benchmarks/fixed_point_memory.py --iterations 16 64 --batch 32

The network is examples/ista_fixed_point.unf (ISTA, shared step and threshold) on the published
250 x 500 problem (alista/sparse_recovery_250x500.npz: its matrix A and test signals, observed
as x = A s), float32. A step is a forward pass of N iterations and the backward pass of the
squared error to the true signals:
- unrolled:   model(x, num_layers=N), backprop through every layer;
- checkpoint: the same with checkpoint=True (each layer recomputed in the backward pass);
- implicit:   model.fixed_point(x, max_iter=N, backward="implicit"), with a tolerance no
              iteration reaches, so both the forward and the adjoint solve run N iterations;
- jfb:        model.fixed_point(x, max_iter=N, backward="jfb").
Each (mode, N) runs in a fresh process; the figure is the growth of the peak resident set
(ru_maxrss) over the step, with glibc returning every freed block at once (a fixed mmap
threshold, as in train_memory.py): tracemalloc does not see torch's CPU allocations. On CUDA
it is `torch.cuda.max_memory_allocated`. Time is the median of `--repeat` steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data/alista/sparse_recovery_250x500.npz")
MODES = ("unrolled", "checkpoint", "implicit", "jfb")
NEVER = 1e-30  # a relative change no float32 iteration reaches: exactly N iterations run


def child(mode: str, iterations: int, batch: int, repeat: int, data: Path) -> dict:
    """One training step in this process: peak growth (MiB) and median wall time."""
    sys.path.insert(0, str(ROOT))
    import unfoldc
    from benchmarks.train_memory import _peak

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    arrays = np.load(data)
    A = torch.as_tensor(arrays["A"], dtype=torch.float32, device=device)
    target = torch.as_tensor(arrays["x_test"][:batch], dtype=torch.float32, device=device)
    x = target @ A.T
    cls = unfoldc.load(str(ROOT / "examples" / "ista_fixed_point.unf"))
    model = cls(H=A, num_layers=1)

    def step(count):
        if mode in ("unrolled", "checkpoint"):
            out = model(x, num_layers=count, checkpoint=mode == "checkpoint")
        else:
            out = model.fixed_point(x, tol=NEVER, max_iter=count, backward=mode, warn=False)
        loss = (out - target).square().sum()
        model.zero_grad(set_to_none=True)
        loss.backward()

    step(2)  # warm up the allocator, thread pools and lazy imports outside the measurement
    before = _peak(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step(iterations)
        times.append(time.perf_counter() - start)
    used = iterations
    if mode in ("implicit", "jfb"):  # the solve's iterations (then one with the gradient)
        used = model.last_fixed_point.iterations - 1
    return {"mode": mode, "iterations": iterations, "ran": used,
            "peak_mib": (_peak(device) - before) / 2**20, "step_s": statistics.median(times),
            "device": str(device)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[16, 64, 256, 1024])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        n = args.iterations[0]
        print(json.dumps(child(args.child, n, args.batch, args.repeat, args.data)))
        return
    rows = {(mode, n): _run_child(mode, n, args) for n in args.iterations for mode in MODES}
    first = next(iter(rows.values()))
    print(f"ISTA_FP (examples/ista_fixed_point.unf), 250x500, batch {args.batch}, float32, "
          f"{first['device']}: peak memory growth of one training step (MiB) / step time (s)")
    print(f"{'iterations':>10}" + "".join(f"{m:>22}" for m in MODES))
    for n in args.iterations:
        cells = [f"{rows[m, n]['peak_mib']:>10.1f} MiB {rows[m, n]['step_s']:>7.3f} s"
                 for m in MODES]
        print(f"{n:>10}" + "".join(f"{c:>22}" for c in cells))
    low, high = args.iterations[0], args.iterations[-1]
    for m in MODES:
        a, b = rows[m, low]["peak_mib"], rows[m, high]["peak_mib"]
        print(f"{m}: memory x{b / max(a, 1e-9):.1f} from {low} to {high} iterations")
    short = [r for r in rows.values() if r["ran"] != r["iterations"]]
    for r in short:  # a solve that reached an exact fixed point early
        print(f"note: {r['mode']} at {r['iterations']} iterations stopped after {r['ran']}")


def _run_child(mode: str, iterations: int, args) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--iterations", str(iterations),
               "--batch", str(args.batch), "--repeat", str(args.repeat), "--data",
               str(args.data)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
