"""PNG plots of a run, drawn with matplotlib's Agg canvas (no display, no global backend switch)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_nmse(metrics: dict, path: Path) -> None:
    """NMSE (dB) per layer: trained network vs the classical (untrained) iteration."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for key, label, style in (("nmse_db", "trained", "o-"),
                              ("classical_nmse_db", "classical", "s--")):
        values = metrics.get(key)
        if values:
            ax.plot(range(1, len(values) + 1), values, style, label=label)
    ax.set(xlabel="layer", ylabel="NMSE (dB)", title="test NMSE per layer")
    ax.grid(True, alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_training(history: list[dict], path: Path) -> None:
    """Training loss and validation NMSE against the step."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    steps = [r["step"] for r in history]
    lines = ax.semilogy(steps, [r["loss"] for r in history], color="C0", label="training loss")
    ax.set(xlabel="step", ylabel="loss")
    val = [(r["step"], r["val_nmse_db"]) for r in history if "val_nmse_db" in r]
    if val:
        twin = ax.twinx()
        lines += twin.plot([s for s, _ in val], [v for _, v in val], color="C1",
                           label="validation NMSE")
        twin.set_ylabel("validation NMSE (dB) at the stage's depth")
    ax.legend(lines, [line.get_label() for line in lines])
    ax.set_title("training curve")
    _save(fig, path)


def plot_parameters(model: nn.Module, path: Path) -> None:
    """Each per-layer trainable against the layer (its norm when it is not a scalar); a
    `periodic T` one shows the copy every layer uses (that of layer k mod T)."""
    kinds = {n: kind.split() for n, kind in model.TRAINABLES.items()}
    names = [n for n, kind in kinds.items() if kind[0] in ("per_layer", "periodic")]
    fig = Figure(figsize=(6, 2.2 * max(1, len(names))))
    for i, name in enumerate(names):
        ax = fig.add_subplot(max(1, len(names)), 1, i + 1)
        period = int(kinds[name][1]) if kinds[name][0] == "periodic" else len(model.layers)
        values = [getattr(model.layers[k % period], name).detach()
                  for k in range(len(model.layers))]
        scalar = all(v.numel() == 1 for v in values)
        ys = [float(v) if scalar else float(v.double().norm()) for v in values]
        ax.plot(range(1, len(ys) + 1), ys, "o-")
        ax.set(xlabel="layer", ylabel=name if scalar else f"||{name}||")
        ax.grid(True, alpha=0.3)
    if not names:
        fig.add_subplot().text(0.5, 0.5, "no per-layer trainables", ha="center")
    _save(fig, path)
