"""Peak memory of one training step (forward + backward) at 64 layers, with and without per-layer
gradient checkpointing (`forward(..., checkpoint=True)`).

    python benchmarks/train_memory.py                  # 64 layers, batch 512, 250x500
    python benchmarks/train_memory.py --layers 128 --batch 256

Each mode runs in a fresh process; on CPU the figure is the growth of the peak resident set
(ru_maxrss) over the step, with glibc returning freed blocks at once; on CUDA it is
`torch.cuda.max_memory_allocated`. The compiled ISTA is used when its forward accepts
`checkpoint=`; until codegen emits it, the hand-written stand-in with the same update
(tests/train_standin.py) is measured instead, and the script says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def network_class():
    """The compiled ISTA if it supports checkpointing, else the stand-in (and which one)."""
    import unfoldc

    cls = unfoldc.load(str(ROOT / "examples" / "ista.unf"))
    if "checkpoint" in inspect.signature(cls.forward).parameters:
        return cls, "compiled examples/ista.unf"
    spec = importlib.util.spec_from_file_location("train_standin",
                                                  ROOT / "tests" / "train_standin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LearnedISTA, "stand-in tests/train_standin.py (same update as ista.unf)"


def child(mode: str, layers: int, batch: int, m: int, n: int) -> dict:
    """One training step in this process; returns the peak growth in MiB."""
    from unfoldc.train.criterion import run_network

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator().manual_seed(0)
    H = torch.randn(m, n, generator=gen) / m**0.5
    x = torch.randn(batch, m, generator=gen)
    target = torch.randn(batch, n, generator=gen)
    cls, which = network_class()
    model = cls(num_layers=layers, H=(H / H.norm(dim=0)).to(device))
    x, target = x.to(device), target.to(device)
    with torch.no_grad():  # warm up allocator and thread pools outside the measurement
        run_network(model, {"x": x}, layers, False)
    before = _peak(device)
    start = time.perf_counter()
    out = run_network(model, {"x": x}, layers, False, checkpoint=(mode == "checkpoint"))
    (out[0]["s"] - target).pow(2).sum().backward()
    wall = time.perf_counter() - start
    return {"mode": mode, "peak_mib": (_peak(device) - before) / 2**20, "wall_s": wall,
            "network": which, "device": str(device)}


def _peak(device: torch.device) -> float:
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=64)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--m", type=int, default=250)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--child", choices=("full", "checkpoint"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = (args.layers, args.batch, args.m, args.n)
    if args.child:
        print(json.dumps(child(args.child, *sizes)))
        return
    rows = [_run_child(mode, args) for mode in ("full", "checkpoint")]
    print(f"{rows[0]['network']} on {rows[0]['device']}: {args.layers} layers, batch "
          f"{args.batch}, H {args.m}x{args.n}, float32")
    print(f"{'mode':<12}{'peak growth (MiB)':>19}{'step wall (s)':>15}")
    for row in rows:
        print(f"{row['mode']:<12}{row['peak_mib']:>19.1f}{row['wall_s']:>15.2f}")
    ratio = rows[0]["peak_mib"] / max(rows[1]["peak_mib"], 1e-9)
    print(f"reduction: {ratio:.1f}x less peak memory with per-layer checkpointing")


def _run_child(mode: str, args) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--layers", str(args.layers),
               "--batch", str(args.batch), "--m", str(args.m), "--n", str(args.n)]
    # A fixed mmap threshold makes glibc give every freed tensor back to the OS at once, so the
    # resident set follows live memory (its default adaptive threshold keeps freed blocks).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
