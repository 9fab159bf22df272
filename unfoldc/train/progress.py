"""Progress on stderr: a redrawn line on a terminal, plain lines every N steps elsewhere.

On a terminal one line is rewritten in place (carriage returns, no dependency). When stderr is a
pipe or a file (CI logs, `nohup`, a job scheduler) carriage returns would pile up into one huge
line, so a complete line is printed every `every` steps and at the end of every stage instead.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """Rewrites one stderr line at most every `interval` seconds, or prints every `every` steps.

    Args:
        enabled: show progress at all (False under tests, on non-main ranks, or when off).
        interval: minimum seconds between redraws, so printing never slows training.
        stream: where to write (default: stderr).
        every: print a plain line every `every` steps of a stage (and at its last step) instead
            of redrawing one; None redraws.
    """

    def __init__(self, enabled: bool, interval: float = 0.2, stream=None,
                 every: int | None = None):
        self.enabled = enabled
        self.interval = interval
        self.stream = stream or sys.stderr
        self.every = every
        self._last = 0.0
        self._width = 0

    def update(self, stage: str, index: int, count: int, step: int, cap: int, loss: float,
               val_db: float | None, total: int | None = None) -> None:
        """Show step `step` of `cap` of stage `index` (0-based) of `count`, if it is time to.

        `total` is the step count over all stages, shown on plain lines.
        """
        if not self.enabled:
            return
        val = "" if val_db is None else f"  val {val_db:7.2f} dB"
        if self.every is not None:
            if step % self.every == 0 or step == cap:
                overall = "" if total is None else f" (total {total})"
                self.stream.write(f"[{index + 1}/{count}] {stage} step {step}/{cap}{overall}  "
                                  f"loss {loss:.4e}{val}\n")
                self.stream.flush()
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
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
