"""Which roles each context may read, and which phase a value is computed in.

A context is where an expression appears: the value of a `let`, a `param`, a trainable's
initial value (`train`), a state's initial value (`state`), an interval `bound`, or the layer
`body`. Givens, fixed params and setup-time lets are known at construction; inputs only per call;
per-layer trainables only inside the layer loop.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from unfoldc.ir.expr import Expr, Sym, walk

_STATIC = {"given", "param", "let", "dim"}
ALLOWED: dict[str, set[str]] = {
    "param": _STATIC - {"let"} | {"let"},
    "train": set(_STATIC),
    "train_layer": set(_STATIC),  # a per-layer (or periodic) trainable's initial value
    "bound": set(_STATIC),
    "let": _STATIC | {"input", "train"},
    "state": _STATIC | {"input", "train", "state"},
    "body": _STATIC | {"input", "train", "train_per_layer", "state", "temp", "net"},
    "condition": _STATIC | {"train", "train_per_layer"},
    "func": _STATIC | {"input", "train", "train_per_layer", "arg"},
    "objective": _STATIC | {"input", "train", "state"},
}

_CONTEXT_NAMES = {
    "param": "a fixed parameter's value", "train": "a trainable's initial value",
    "train_layer": "a per-layer trainable's initial value",
    "bound": "a constraint bound", "let": "a `let` value", "state": "a state's initial value",
    "body": "the layer body", "condition": "a `require` or `assume` condition",
    "func": "a function body", "objective": "the objective (`minimize`)",
}


# Where the layer index `layer` has a value: in each layer, and per copy of a trainable.
LAYER_CONTEXTS = ("body", "train_layer", "condition")


def describe_context(ctx: str) -> str:
    """A phrase for error messages: 'a `let` value cannot use ...'."""
    return _CONTEXT_NAMES[ctx]


def phase_of(e: Expr, per_call: Collection[str] = ()) -> str:
    """`setup` when `e` needs only construction-time values, else `prologue`.

    `per_call` names the lets already known to be per call (`per_call_lets`): a value that
    reads one is per call too (`let d = 2 * c` after `let c = H.T @ y`).
    """
    for n in walk(e):
        if isinstance(n, Sym) and (n.role in ("input", "train", "state")
                                   or (n.role == "let" and n.name in per_call)):
            return "prologue"
    return "setup"


def per_call_lets(symbols: Iterable) -> set[str]:
    """The lets among `symbols` (in declaration order) computed per call, not at construction.

    One pass in order: a let reads only earlier ones, so each is decided once (deciding each
    reference again, recursively, doubles the work per level of lets reading two others).
    """
    found: set[str] = set()
    for s in symbols:
        if s.role == "let" and s.init is not None and phase_of(s.init, found) == "prologue":
            found.add(s.name)
    return found
