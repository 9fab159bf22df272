"""Data-parallel training under `torchrun`, with no change to the training code.

Every rank draws the same global batch from the same seeded generator and keeps its contiguous
shard; losses are normalised by global-batch sums (losses.py), so summing the ranks' gradients
with one all-reduce gives exactly the single-process gradient. This is what DDP's bucketed
all-reduce does, done explicitly because layer-wise stages leave most parameters frozen (DDP
would need `find_unused_parameters` and a rebuilt wrapper per stage). Validation runs on every
rank on identical parameters, so early-stopping decisions agree without communication.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from unfoldc.train.tasks import Arrays


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main rank writes files and progress."""
        return self.rank == 0

    def shard(self, arrays: Arrays) -> Arrays:
        """This rank's contiguous share of a global batch."""
        if self.world == 1:
            return arrays
        return {k: v.tensor_split(self.world)[self.rank] for k, v in arrays.items()}

    def sum_grads(self, params: list[torch.nn.Parameter]) -> None:
        """Sum gradients over the ranks in place."""
        if self.world == 1:
            return
        for p in params:
            if p.grad is None:
                # A parameter unused on this shard still takes part in the collective.
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """Sum a scalar over the ranks (the global loss)."""
        if self.world == 1:
            return value
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def barrier(self) -> None:
        """Wait for every rank (e.g. before reading files rank 0 wrote)."""
        if self.world > 1:
            dist.barrier()


def setup(device: torch.device | None = None) -> Ranks:
    """Join the process group `torchrun` describes in the environment, if any.

    Uses nccl for CUDA networks and gloo otherwise; a group that is already initialised (by the
    user or a test) is reused.
    """
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 or not dist.is_available():
        return Ranks()
    backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    return Ranks(dist.get_rank(), dist.get_world_size())


def local_device() -> torch.device:
    """The device for this rank: its GPU under torchrun when there is one, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")
