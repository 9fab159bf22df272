"""What every pass returns: the new program and whether it changed anything."""

from __future__ import annotations

from dataclasses import dataclass

from unfoldc.ir.program import Program


@dataclass(frozen=True)
class PassResult:
    program: Program
    changed: bool
