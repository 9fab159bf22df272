"""The math IR of a whole spec: symbols, the per-phase assignments, and the outputs.

    Program  := symbols, dims, setup [Assign], prologue [Assign], body [Assign], outputs
    Assign   := target <- value (an ir.expr.Expr), kind, spec line

Phases: `setup` runs once at construction (derived values of givens and fixed parameters);
`prologue` runs once per call before the layer loop (state initial values, values that depend
on inputs, and loop-invariant work hoisted out of the body); `body` is one layer, executed in
statement order (Gauss-Seidel: each statement sees the newest state values).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from unfoldc.ir.expr import Expr
from unfoldc.ir.types import Type
from unfoldc.source import Span


@dataclass(frozen=True)
class Constraint:
    kind: str  # positive | nonneg | interval
    bounds: tuple[Expr, ...] = ()


@dataclass(frozen=True)
class NetSpec:
    """A learned sub-network's architecture (see semantics/nets.py for the options)."""

    arch: str  # mlp | conv1d | conv2d
    inputs: tuple  # input sizes: one dim per vector argument, (h, w) per image argument
    outputs: tuple
    hidden: tuple[int, ...] = ()  # mlp hidden widths
    channels: int = 16  # conv hidden channels
    kernel: int = 3
    depth: int = 2  # conv layers
    act: str = "relu"
    residual: bool = False  # net(v) = v + block(v)
    zero_last: bool = False  # last layer starts at zero: the block contributes nothing

    def parameter_count(self, size) -> int:
        """The number of weights and biases, `size(d)` giving each input and output size.

        In closed form (a conv net's depth may be a typo of ten digits): semantics refuses
        nets too large to allocate from this count before anything is built (E0404).
        """
        if self.arch == "mlp":
            widths = [sum(size(d) for d in self.inputs), *self.hidden, size(self.outputs[0])]
            return sum(a * b + b for a, b in zip(widths, widths[1:]))
        dim = 1 if self.arch == "conv1d" else 2
        n_in, c, per = len(self.inputs) // dim, self.channels, self.kernel**dim

        def conv(a: int, b: int) -> int:
            return per * a * b + b

        if self.depth == 1:
            return conv(n_in, 1)
        return conv(n_in, c) + (self.depth - 2) * conv(c, c) + conv(c, 1)


@dataclass(frozen=True)
class Symbol:
    """A declared symbol of the spec."""

    name: str
    role: str  # given | input | state | let | param | train
    type: Type
    line: int
    span: Span
    per_layer: bool = False
    init: Expr | None = None  # initial value (state, param, train)
    constraint: Constraint | None = None
    net: NetSpec | None = None  # role `net` only
    period: int | None = None  # `periodic T` trainables (per_layer is True): layer k uses k % T

    def copies(self, num_layers: int) -> int:
        """How many values a trainable holds in a network of `num_layers` layers."""
        if not self.per_layer:
            return 1
        return num_layers if self.period is None else min(self.period, num_layers)


@dataclass(frozen=True)
class Assign:
    """`target` takes `value`; kind is let | init | hoisted | temp | update."""

    target: str
    value: Expr
    kind: str
    line: int

    @property
    def type(self) -> Type:
        return self.value.type


@dataclass(frozen=True)
class Condition:
    """A user-stated `require` / `assume`: `lhs op rhs`, checked per layer where needed."""

    kind: str  # require | assume
    op: str
    lhs: Expr
    rhs: Expr
    line: int
    text: str  # the condition as written in the spec


@dataclass(frozen=True)
class DimBinding:
    """Dimension `dim` is read at run time as axis `axis` of symbol `symbol`."""

    dim: str
    symbol: str
    axis: int


@dataclass(frozen=True)
class Program:
    name: str
    doc: str
    source_name: str
    source_sha256: str
    num_layers: int
    symbols: tuple[Symbol, ...]
    dims: tuple[DimBinding, ...]
    setup: tuple[Assign, ...]
    prologue: tuple[Assign, ...]
    body: tuple[Assign, ...]
    outputs: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())
    conditions: tuple[Condition, ...] = field(default=())
    objective: Expr | None = None  # `minimize ...`, per sample, of states and inputs
    functions: tuple[tuple[str, Expr], ...] = field(default=())  # (name, body) of each `func`

    def symbol(self, name: str) -> Symbol:
        """The declared symbol called `name`."""
        return next(s for s in self.symbols if s.name == name)

    def by_role(self, role: str) -> tuple[Symbol, ...]:
        """Declared symbols of one role, in declaration order."""
        return tuple(s for s in self.symbols if s.role == role)

    def with_(self, **changes) -> Program:
        """A copy with some fields replaced (passes return new programs)."""
        return replace(self, **changes)
