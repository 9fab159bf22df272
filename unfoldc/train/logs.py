"""Training logs that tools read: CSV files and TensorBoard events in the run folder.

`steps.csv` gets one row per training step as training goes (flushed, so `tail -f` and
spreadsheets see it live); `layers.csv` one row per layer of the final test metrics. When the
`tensorboard` package is installed (optional), the same scalars go to `tensorboard/` through
`torch.utils.tensorboard` (`tensorboard --logdir DIR/tensorboard`). A resumed run drops the rows
and events after its checkpoint, since it takes those steps again.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from unfoldc.train.errors import ConfigError

STEPS_CSV, LAYERS_CSV, TENSORBOARD = "steps.csv", "layers.csv", "tensorboard"
LOGS = (STEPS_CSV, LAYERS_CSV, TENSORBOARD)

STEP_COLUMNS = ("step", "stage", "stage_name", "stage_step", "num_layers", "loss", "lr",
                "val_nmse_db", "val_objective")
LAYER_COLUMNS = ("layer", "nmse_db", "objective", "classical_nmse_db", "classical_objective")


def tensorboard_available() -> bool:
    """Whether `torch.utils.tensorboard` can be imported (it needs the `tensorboard` package)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


def use_tensorboard(option: bool | None) -> bool:
    """The `tensorboard` option resolved: None means "when installed"; True requires it."""
    if option is None:
        return tensorboard_available()
    if option and not tensorboard_available():
        raise ConfigError("TensorBoard logging needs the `tensorboard` package; install it with "
                          "`pip install tensorboard`, or train without --tensorboard")
    return option


def _writer(out: Path, purge_step: int | None = None):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / TENSORBOARD), purge_step=purge_step)


class StepLog:
    """Appends one row per step to `out/steps.csv`, and scalars to TensorBoard when enabled.

    Files are opened at the first row: a resumed run keeps the rows before that step and drops
    the rest (TensorBoard: `purge_step`).

    Args:
        out: the run folder (None: log nothing).
        tensorboard: also write TensorBoard events.
    """

    def __init__(self, out: Path | None, tensorboard: bool):
        self.out, self.tensorboard = out, tensorboard
        self._file = self._csv = self._tb = None

    def write(self, row: dict) -> None:
        """Log one step; `row` has the keys of `STEP_COLUMNS` (validation ones optional)."""
        if self.out is None:
            return
        if self._file is None:
            self._open(row["step"])
        self._csv.writerow({k: _cell(row.get(k)) for k in STEP_COLUMNS})
        self._file.flush()
        if self._tb is not None:
            self._tb.add_scalar("train/loss", row["loss"], row["step"])
            self._tb.add_scalar("train/lr", row["lr"], row["step"])
            for key in ("val_nmse_db", "val_objective"):
                if row.get(key) is not None and math.isfinite(row[key]):
                    self._tb.add_scalar(key.replace("_", "/", 1), row[key], row["step"])

    def _open(self, first_step: int) -> None:
        path = self.out / STEPS_CSV
        kept = [r for r in _read_rows(path) if int(r["step"]) < first_step]
        self._file = path.open("w", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._file, STEP_COLUMNS, lineterminator="\n")
        self._csv.writeheader()
        self._csv.writerows(kept)
        if self.tensorboard:
            self._tb = _writer(self.out, purge_step=first_step)

    def close(self) -> None:
        """Close the files (the log can be written to again: it reopens and keeps its rows)."""
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
        self._file = self._csv = self._tb = None


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r.get("step", "").isdigit()]


def _cell(value) -> str:
    """CSV text: empty for a missing value, repr precision for floats (inf / -inf / nan kept)."""
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def write_layer_logs(out: Path, metrics: dict, tensorboard: bool) -> None:
    """`out/layers.csv` from the test metrics (one row per layer, numbered from 1), and the
    same values as TensorBoard scalars `test/*` with the layer as the step."""
    columns = {key: metrics.get(key) or [] for key in LAYER_COLUMNS[1:]}
    layers = max(len(values) for values in columns.values())
    rows = [{"layer": k + 1, **{key: values[k] if k < len(values) else None
                                 for key, values in columns.items()}} for k in range(layers)]
    with (out / LAYERS_CSV).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, LAYER_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    if not tensorboard:
        return
    tb = _writer(out)
    try:
        for row in rows:
            for key in LAYER_COLUMNS[1:]:
                if row[key] is not None and math.isfinite(row[key]):
                    tb.add_scalar(f"test/{key}", row[key], row["layer"])
    finally:
        tb.close()
