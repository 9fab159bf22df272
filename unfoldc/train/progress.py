"""A one-line progress display on stderr (carriage-return updates, no dependency)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Rewrites one stderr line at most every `interval` seconds.

    Args:
        enabled: draw at all (False under tests, on non-main ranks, or with progress off).
        interval: minimum seconds between redraws, so printing never slows training.
    """

    def __init__(self, enabled: bool, interval: float = 0.2, stream=None):
        self.enabled = enabled
        self.interval = interval
        self.stream = stream or sys.stderr
        self._last = 0.0
        self._width = 0

    def update(self, stage: str, index: int, count: int, step: int, cap: int, loss: float,
               val_db: float | None) -> None:
        """Redraw the line if enough time has passed."""
        now = time.monotonic()
        if not self.enabled or now - self._last < self.interval:
            return
        self._last = now
        val = "" if val_db is None else f"  val {val_db:7.2f} dB"
        bar = _bar(step / max(cap, 1))
        self._draw(f"[{index + 1}/{count}] {stage:<16} {bar} {step}/{cap}  "
                   f"loss {loss:.4e}{val}")

    def _draw(self, line: str) -> None:
        pad = " " * max(0, self._width - len(line))
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        """End the line so later output starts on a fresh one."""
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def _bar(fraction: float, width: int = 20) -> str:
    filled = int(round(min(max(fraction, 0.0), 1.0) * width))
    return "[" + "#" * filled + "." * (width - filled) + "]"
