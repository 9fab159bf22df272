"""Random mutants of the example specs, compiled and, when they compile, built and run.

A mutant is an example with one to three random edits (characters deleted or inserted, a token
put in place of a word). `exercise` compiles it and, when that succeeds, builds the network on
small random givens, runs one forward pass and evaluates the convergence report. Every mutant
must end as a user error (a located diagnostic), run, or fail at run time with a message that
names the spec (`m.unf:LINE`): an internal error or an unlocated run-time failure is a bug.
Used by tests/test_mutants_run.py (a fixed seed) and benchmarks/fuzz_mutants.py (many seeds).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

import unfoldc
from unfoldc.loader import class_from
from unfoldc.source import Source

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TOKENS = ["(", ")", "[", "]", ",", ":", "=", "<-", "@", "*", "^", ".T", "-", "+", "/", "0",
          "1.5", "1e309", "layers", "output", "state", "train", "given", "let", "x", "H", "s",
          "soft", "I", "eye(n)", "shared", "per_layer", "\n", "\r", " ", "#", '"', "step",
          "checkpoint", "seed", "in", "?", "\t", "positive", "0 / 0", "2 ^ 2000"]
NAME = "m.unf"

# How a mutant ends. The last two are bugs.
USER_ERROR, RAN, LOCATED = "user error", "ran", "located run-time error"
INTERNAL, UNLOCATED = "internal error", "unlocated run-time failure"
KINDS = (USER_ERROR, RAN, LOCATED, INTERNAL, UNLOCATED)


@dataclass(frozen=True)
class Outcome:
    kind: str
    detail: str = ""


def examples() -> dict[str, str]:
    return {p.name: p.read_text("utf-8") for p in sorted(EXAMPLES.glob("*.unf"))}


def mutate(text: str, rng: random.Random) -> str:
    """`text` with one to three random edits."""
    for _ in range(rng.randint(1, 3)):
        pos = rng.randint(0, len(text))
        end = min(len(text), pos + rng.randint(0, 12))
        kind = rng.choice(["delete", "insert", "token", "word"])
        if kind == "delete":
            text = text[:pos] + text[end:]
        elif kind == "insert":
            text = text[:pos] + "".join(rng.choice("()[]+-*/^@.,:=<#\"\n 019eT")
                                        for _ in range(rng.randint(1, 3))) + text[pos:]
        elif kind == "token":
            text = text[:pos] + rng.choice(TOKENS) + text[end:]
        else:
            words = list(re.finditer(r"\w+|\S", text))
            w = words[rng.randrange(len(words))]
            text = text[:w.start()] + rng.choice(TOKENS) + text[w.end():]
    return text


def exercise(text: str, seed: int = 0) -> Outcome:
    """Compile `text`; when it compiles, build it, run it forward, evaluate its report."""
    try:
        art = unfoldc.compile_source(Source(NAME, text))
    except unfoldc.UserError:
        return Outcome(USER_ERROR)
    except Exception as exc:  # noqa: BLE001 - what the fuzzer looks for
        return Outcome(INTERNAL, f"compile: {type(exc).__name__}: {exc}")
    try:
        _run(art, seed)
    except Exception as exc:  # noqa: BLE001
        message = f"{type(exc).__name__}: {exc}"
        return Outcome(LOCATED if f"{NAME}:" in str(exc) else UNLOCATED, message[:300])
    return Outcome(RAN)


def _run(art, seed: int) -> None:
    cls = class_from(art)
    rng = torch.Generator().manual_seed(seed)
    sizes = {b.dim: 6 + b.axis for b in art.optimized.dims}  # distinct, small, consistent
    program = art.optimized
    givens = {cls.GIVENS[i]: _operand(s.type, sizes, rng)
              for i, s in enumerate(program.by_role("given"))}
    model = cls(**givens) if givens else cls(dtype=torch.float64)
    inputs = [_operand(s.type, sizes, rng, batch=2) for s in program.by_role("input")]
    model(*inputs)
    if hasattr(model, "convergence_report"):
        model.convergence_report()


def _operand(t, sizes: dict, rng: torch.Generator, batch: int | None = None) -> torch.Tensor:
    shape = [d if isinstance(d, int) else sizes.get(d, 4) for d in t.dims]
    shape = ([batch] if batch else []) + shape
    return torch.randn(shape, generator=rng, dtype=torch.float64)


def run_many(count: int, seed: int) -> tuple[Counter, list[tuple[str, Outcome]]]:
    """Outcomes of `count` mutants drawn with `seed`, and the bugs (mutant text, outcome)."""
    rng = random.Random(seed)
    specs = examples()
    tally: Counter = Counter()
    bugs = []
    for i in range(count):
        text = mutate(specs[rng.choice(sorted(specs))], rng)
        outcome = exercise(text, seed=i)
        tally[outcome.kind] += 1
        if outcome.kind in (INTERNAL, UNLOCATED):
            bugs.append((text, outcome))
    return tally, bugs
