"""Two CPU processes (gloo, torchrun's environment variables) train like one process."""

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file
from train_standin import LearnedISTA

from unfoldc import train
from unfoldc.train import cli

ROOT = Path(__file__).resolve().parents[1]

OPTIONS = {"scheme": "layerwise", "steps": 3, "lr": 1e-2, "batch": 10, "eval_every": 2,
           "classical_layers": 0, "progress": False}


def _task():
    return train.sparse_recovery(m=10, n=20, p=0.2, seed=2, val_size=8, test_size=8)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    """What torchrun would start: the environment is the only difference."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    task = _task()
    model = LearnedISTA(num_layers=3, H=task.givens["A"])
    result = train.fit(model, task, out=out, **OPTIONS)
    if rank == 0:
        torch.save({"state": model.state_dict(), "nmse": result.metrics["nmse_db"]},
                   os.path.join(out, "rank0.pt"))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn_with_fresh_port(out: str, tries: int = 3) -> None:
    """Start the two workers; a rendezvous port can be taken between `_free_port` closing it
    and gloo binding it (seen once in ~20 full-suite runs), so such a start is retried."""
    for attempt in range(tries):
        try:
            mp.start_processes(_worker, args=(2, _free_port(), out), nprocs=2,
                               start_method="spawn")
            return
        except mp.ProcessRaisedException as err:
            if "address already in use" not in str(err).lower() or attempt == tries - 1:
                raise


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    out = str(tmp_path / "ddp")
    _spawn_with_fresh_port(out)
    ddp = torch.load(os.path.join(out, "rank0.pt"), weights_only=True)
    task = _task()
    single = LearnedISTA(num_layers=3, H=task.givens["A"])
    result = train.fit(single, task, **OPTIONS)
    for name, value in single.state_dict().items():
        assert torch.allclose(ddp["state"][name], value, rtol=1e-10, atol=1e-12), name
    assert ddp["nmse"] == pytest.approx(result.metrics["nmse_db"], rel=1e-9)
    assert (tmp_path / "ddp" / "weights.safetensors").is_file()


def test_shards_split_the_global_batch():
    batch = {"x": torch.arange(10.0)[:, None]}
    parts = [train.distributed.Ranks(r, 3).shard(batch)["x"] for r in range(3)]
    assert torch.equal(torch.cat(parts), batch["x"])


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings if s.startswith("--")]


def test_train_options_survive_torchrun_parsing():
    """torchrun's parser sees the script's arguments and takes unambiguous prefixes of its own
    options (and rejects ambiguous ones), so every `unfoldc train` option needs a spelling that
    is no prefix of a torchrun option; the one-letter sizes have long aliases for that."""
    from torch.distributed.run import get_args_parser

    ours = argparse.ArgumentParser(add_help=False)
    cli.add_arguments(ours)
    theirs = _long_options(get_args_parser())
    for action in (a for a in ours._actions if a.option_strings):
        safe = [o for o in action.option_strings
                if o.startswith("--") and not any(t.startswith(o) for t in theirs)]
        assert safe, f"{action.option_strings} all clash with torchrun options"


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    """The real launcher: `torchrun --standalone --nproc-per-node 2 -m unfoldc train ...`."""
    argv = ["train", str(ROOT / "examples" / "ista.unf"), "--measurements", "8",
            "--signal-length", "16", "--layers", "3", "--steps", "4", "--batch", "8",
            "--scheme", "layerwise", "--lr", "1e-2", "--classical-layers", "0",
            "--no-progress", "--no-plots"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              "--nproc-per-node", "2", "-m", "unfoldc"]
    done = subprocess.run([*launch, *argv, "--out", str(tmp_path / "ddp")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    single = subprocess.run([sys.executable, "-m", "unfoldc", *argv, "--out",
                             str(tmp_path / "one")], env=env, capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = load_file(str(tmp_path / "ddp" / "weights.safetensors"))
    one = load_file(str(tmp_path / "one" / "weights.safetensors"))
    assert ddp.keys() == one.keys()
    for name in one:
        assert torch.allclose(ddp[name], one[name], rtol=1e-5, atol=1e-7), name
