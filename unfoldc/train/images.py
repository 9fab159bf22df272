"""Synthetic, offline image tasks: inpainting for examples/inpaint2d.unf.

Images are smooth random fields: a few Gaussian blobs plus a few low-frequency cosines, scaled to
unit peak. A fixed random pixel mask `M` (1 = observed, a given fraction of the pixels) is the
given; the input is `Y = M * (X + noise)` and the target the clean image `X`. Everything is drawn
on the CPU in float64 from seeded `torch.Generator`s, like the tasks in tasks.py.
"""

from __future__ import annotations

import math

import torch

from unfoldc.train.tasks import Arrays, Task, _generator


def smooth_images(count: int, h: int, w: int, gen: torch.Generator, blobs: int = 4,
                  waves: int = 3) -> torch.Tensor:
    """`count` smooth h x w images: Gaussian blobs plus low-frequency cosines, max |X| = 1."""
    f64 = torch.float64
    yy = torch.linspace(0, 1, h, dtype=f64)[:, None]
    xx = torch.linspace(0, 1, w, dtype=f64)[None, :]
    out = torch.zeros(count, h, w, dtype=f64)
    centers = torch.rand(count, blobs, 2, generator=gen, dtype=f64)
    widths = 0.08 + 0.2 * torch.rand(count, blobs, generator=gen, dtype=f64)
    heights = torch.randn(count, blobs, generator=gen, dtype=f64)
    for b in range(blobs):
        cy = centers[:, b, 0, None, None]
        cx = centers[:, b, 1, None, None]
        s = widths[:, b, None, None]
        out += heights[:, b, None, None] * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2)
                                                     / (2 * s**2))
    freqs = torch.randint(0, 3, (count, waves, 2), generator=gen).to(f64)
    phases = 2 * math.pi * torch.rand(count, waves, generator=gen, dtype=f64)
    amps = 0.5 * torch.randn(count, waves, generator=gen, dtype=f64)
    for k in range(waves):
        fy = freqs[:, k, 0, None, None]
        fx = freqs[:, k, 1, None, None]
        out += amps[:, k, None, None] * torch.cos(math.pi * (fy * yy + fx * xx)
                                                  + phases[:, k, None, None])
    peak = out.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return out / peak


def random_mask(h: int, w: int, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """A 0/1 mask with exactly round(ratio * h * w) observed pixels, uniformly placed."""
    if not 0 < ratio <= 1:
        raise ValueError(f"the observation ratio must be in (0, 1], got {ratio}")
    keys = torch.rand(h * w, generator=gen, dtype=torch.float64)
    mask = torch.zeros(h * w, dtype=torch.float64)
    mask[keys.argsort()[: round(ratio * h * w)]] = 1.0
    return mask.view(h, w)


def inpainting_samples(count: int, mask: torch.Tensor, noise: float,
                       gen: torch.Generator) -> Arrays:
    """`count` samples: clean images `X` and observations `Y = M * (X + noise * N(0, 1))`."""
    h, w = mask.shape
    X = smooth_images(count, h, w, gen)
    Y = mask * (X + noise * torch.randn(count, h, w, generator=gen, dtype=torch.float64))
    return {"Y": Y, "X": X}


def inpainting_task(h: int = 16, w: int = 16, ratio: float = 0.5, noise: float = 0.01,
                    seed: int = 0, *, val_size: int = 64, test_size: int = 64) -> Task:
    """Image inpainting for examples/inpaint2d.unf: names match the spec.

    Args:
        h, w: image size.
        ratio: fraction of observed pixels.
        noise: standard deviation of the additive Gaussian noise on observed pixels.
        seed: fixes the mask and the validation and test sets.
        val_size, test_size: sizes of the fixed sets.

    Returns:
        A task with given `M` (the mask), input `Y` and target `X`; fresh training samples.
    """
    mask = random_mask(h, w, ratio, _generator(seed))

    def sample(count: int, gen: torch.Generator) -> Arrays:
        return inpainting_samples(count, mask, noise, gen)

    description = {"task": "inpainting", "h": h, "w": w, "ratio": ratio, "noise": noise,
                   "seed": seed, "val_size": val_size, "test_size": test_size}
    return Task("inpainting", {"M": mask}, ("Y",), ("X",), sample(val_size, _generator(seed + 1)),
                sample(test_size, _generator(seed + 2)), sample, None, description)
