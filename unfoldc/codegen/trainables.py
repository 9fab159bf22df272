"""Emit the storage of trainables: constraints as reparametrizations (see docs/language.md).

A trainable declared `positive`, `nonneg` or `in [lo, hi]` is stored as an unconstrained raw
parameter and read through a property that maps it into its set: `positive` as its initial value
times exp(raw) (raw starts at 0), `nonneg` as |raw|, an interval through the `interval` helper,
which equals the initial value at raw = 0. An unconstrained trainable is its own nn.Parameter.
Initial values are checked against their constraint at construction, with the spec's line.
(`--enforce-convergence` is a pass, unfoldc/convergence/enforce.py: it rewrites the program's
trainables before codegen, which stores them here like any other.)
"""

from __future__ import annotations

from unfoldc.codegen.exprs import ExprPrinter
from unfoldc.codegen.forward import reads_layer
from unfoldc.codegen.text import literal
from unfoldc.codegen.writer import Writer, shape_tuple
from unfoldc.ir.program import Symbol


class TrainableEmitter:
    """Names, registers, reads and checks the trainables of one module (hooked from module.py)."""

    def __init__(self, em):
        """Allocates the storage names of every trainable in `em`'s namespace."""
        self.em = em
        self.names = {s.name: self._names_of(s) for s in em.trainables}

    def bounds(self, s: Symbol) -> list[str]:
        """The locals (and buffers) holding an interval trainable's bounds: [lo, hi]."""
        return [self.names[s.name]["lo"], self.names[s.name]["hi"]]

    def _names_of(self, s: Symbol) -> dict[str, str]:
        """The raw parameter and buffers of a constrained trainable, by role."""
        base, fresh = self.em.n(s.name), self.em.ns.fresh
        kind = s.constraint.kind if s.constraint else None
        if kind == "positive":
            return {"raw": fresh(base + "_log"), "init": fresh(base + "_init")}
        if kind == "nonneg":
            return {"raw": fresh(base + "_raw")}
        if kind == "interval":
            return {"raw": fresh(base + "_raw"), "init": fresh(base + "_init"),
                    "lo": fresh(base + "_lo"), "hi": fresh(base + "_hi")}
        return {}

    def store(self, w: Writer, s: Symbol, value: str) -> None:
        """Register the storage of trainable `s`, whose initial value is in local `value` (and
        interval bounds in locals named like their buffers)."""
        st = self.names[s.name]
        kind = s.constraint.kind if s.constraint else None
        if kind == "positive":
            w(f'self.register_buffer("{st["init"]}", {value}.clone())')
            w(f"self.{st['raw']} = nn.Parameter(torch.zeros_like({value}))")
        elif kind == "nonneg":
            w(f"self.{st['raw']} = nn.Parameter({value}.clone())")
        elif kind == "interval":
            w(f'self.register_buffer("{st["init"]}", {value}.clone())')
            w(f'self.register_buffer("{st["lo"]}", {st["lo"]}.clone())')
            w(f'self.register_buffer("{st["hi"]}", {st["hi"]}.clone())')
            w(f"self.{st['raw']} = nn.Parameter(torch.zeros_like({value}))")
        else:
            w(f"self.{self.em.n(s.name)} = nn.Parameter({value}.clone())")

    def property(self, w: Writer, s: Symbol) -> None:
        """The property that reads a constrained trainable `s` from its raw parameter."""
        st = self.names[s.name]
        kind = s.constraint.kind if s.constraint else None
        if kind is None:
            return
        if kind == "positive":
            self.em.helpers.add("positive")
            value = f"positive(self.{st['raw']}, self.{st['init']})"
            doc = f"`{s.name}` = initial value * exp({st['raw']}): always positive."
        elif kind == "nonneg":
            value = f"self.{st['raw']}.abs()"
            doc = f"`{s.name}` = |{st['raw']}|: never negative."
        else:
            self.em.helpers.add("interval")
            value = (f"interval(self.{st['raw']}, self.{st['init']}, self.{st['lo']}, "
                     f"self.{st['hi']})")
            doc = f"`{s.name}` in [lo, hi]; equals its initial value where {st['raw']} = 0."
        w()
        w("@property")
        w(f"def {self.em.n(s.name)}(self):")
        w.indent()
        w(f'"""{doc}"""')
        w(f"return {value}")
        w.dedent()

    def init(self, w: Writer, pr: ExprPrinter, s: Symbol) -> None:
        """In `__init__`: trainable `s`'s initial value (stacked per copy where it reads
        `layer`), checked against its constraint; a shared one is stored at once."""
        name = self.em.n(s.name)
        shape = shape_tuple(s.type, self.em.dim_name) if s.type.dims else "()"
        self.em.helpers.add("fill")
        w(self.em._origin(s.line))
        if s.per_layer and reads_layer(s.init):  # copy k starts from the value at layer = k
            copies = "num_layers" if s.period is None else f"min({s.period}, num_layers)"
            w(f"{name} = torch.stack([")
            w(f"    fill({self.em.expr(pr, s.init)}, {shape}, like)")
            w(f"    for {self.em.layer_index} in range({copies})")
            w("])")
        else:
            w(f"{name} = fill({self.em.expr(pr, s.init)}, {shape}, like)")
        self._check(w, pr, s)
        if not s.per_layer:
            self.store(w, s, name)

    def _check(self, w: Writer, pr: ExprPrinter, s: Symbol) -> None:
        """A located ValueError when the initial value is outside the constraint's set."""
        c = s.constraint
        if c is None:
            return
        name, st = self.em.n(s.name), self.names[s.name]
        where = f"{self.em.p.source_name}:{s.line}"
        if c.kind == "positive":
            cond, what = f"({name} > 0).all()", "positive"
        elif c.kind == "nonneg":
            # |raw| would silently turn a negative initial value into its absolute value.
            cond, what = f"({name} >= 0).all()", "nonnegative"
        else:
            lo, hi = (self.em.expr(pr, b) for b in c.bounds)
            w(f"{st['lo']} = fill({lo}, (), like)")
            w(f"{st['hi']} = fill({hi}, (), like)")
            cond = f"(({name} >= {st['lo']}) & ({name} <= {st['hi']})).all()"
            what = f"in [{lo}, {hi}]"
        w(f"if not bool({cond}):")
        message = f"{where}: the initial value of `{s.name}` must be {what}"
        w(f"    raise ValueError({literal(message)})")
