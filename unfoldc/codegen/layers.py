"""Emit the classes one layer is made of, and their construction in the network's `__init__`.

`<Net>Layer` (nn.Module) holds one layer's per-layer trainables (their storage: trainables.py)
and nets; `<Net>LayerAt` (NamedTuple) is the view of layer k where `_step` needs its index
(see forward.py); `<Net>Classical` holds every trainable and net at its initial value, the
untrained layer that `classical_step` and the safeguard run.
"""

from __future__ import annotations

from unfoldc.codegen import nets as netgen
from unfoldc.codegen.forward import reads_layer
from unfoldc.codegen.text import docstring
from unfoldc.codegen.writer import Writer
from unfoldc.ir.program import Symbol


class LayerEmitter:
    """Writes the layer classes of one module and the lines of `__init__` that build them."""

    def __init__(self, em):
        self.em = em

    def init(self, w: Writer) -> None:
        """In `__init__`, after the trainables: the nets, `self.layers` and `self.classical`."""
        self._nets(w)
        if self.em.per_layer or self.em.layer_nets:
            args, reads_k = self._call()
            index = "k" if reads_k else "_"
            w("self.layers = nn.ModuleList(")
            w(f"    [{self.em.layer_cls}({args}) for {index} in range(num_layers)]")
            w(")")
        else:
            w("self.layers = nn.ModuleList()  # this network has no per-layer parameters")
        self._classical_init(w)

    def _params(self) -> list[tuple[str, Symbol]]:
        """(argument, its trainable or net) of the layer class, in order: per-layer initial
        values (and interval bounds), nets, then periodic trainables, which default to None
        (only layers 0..T-1 hold a copy)."""
        def values(group):
            out = []
            for s in group:
                out.append((self.em.n(s.name), s))
                if s.constraint and s.constraint.kind == "interval":
                    out += [(bound, s) for bound in self.em.trainable.bounds(s)]
            return out
        own = [s for s in self.em.per_layer if s.period is None]
        periodic = [s for s in self.em.per_layer if s.period is not None]
        return values(own) + [(self.em.n(s.name), s) for s in self.em.layer_nets] + values(periodic)

    def _args(self) -> str:
        """The layer class's signature (after `self`)."""
        return ", ".join(arg + ("=None" if s.period is not None else "")
                         for arg, s in self._params())

    def _call(self) -> tuple[str, bool]:
        """The arguments of `Layer(...)` for layer k, and whether they read k: entry k of a net
        list or of initial values stacked over the layer index; a periodic copy only for k < T."""
        out = []
        for arg, s in self._params():
            stacked = s.role == "net" or (arg == self.em.n(s.name) and reads_layer(s.init))
            value = f"{arg}[k]" if stacked else arg
            out.append(value if s.period is None else f"{value} if k < {s.period} else None")
        reads_k = any(s.role == "net" or s.period is not None or reads_layer(s.init)
                      for _, s in self._params())
        return ", ".join(out), reads_k

    def layer_class(self, w: Writer) -> None:
        """`<Net>Layer`: one layer's per-layer trainables (stored as trainables.py says, read
        through their properties) and nets."""
        args = self._args()
        w(f"class {self.em.layer_cls}(nn.Module):")
        w.indent()
        if any(s.period is not None for s in self.em.per_layer):
            w(f'"""The trainable parameters of one {self.em.p.name} layer.')
            w()
            w("A `periodic T` trainable is held by layers 0..T-1 only (None elsewhere): layer k")
            w('uses the copy of layer k mod T."""')
        else:
            w(f'"""The trainable parameters of one {self.em.p.name} layer."""')
        w()
        w(f"def __init__(self, {args}):")
        w.indent()
        w("super().__init__()")
        for s in self.em.per_layer:
            w(self.em._origin(s.line))
            if s.period is not None:
                w(f"if {self.em.n(s.name)} is not None:")
                w.indent()
            self.em.trainable.store(w, s, self.em.n(s.name))
            if s.period is not None:
                w.dedent()
        for s in self.em.layer_nets:
            w(self.em._origin(s.line))
            w(f"self.{self.em.n(s.name)} = {self.em.n(s.name)}")
        w.dedent()
        for s in self.em.per_layer:
            self.em.trainable.property(w, s)
        w.dedent()

    def view_class(self, w: Writer) -> None:
        """Layer k as `_step` reads it where a Layer module is not enough: its index k (the
        layer index `layer`, the copy k mod T of a periodic trainable, entry k of a classical
        value that reads `layer`) and its per-layer values, under a Layer's attribute names."""
        w(f"class {self.em.layer_view_cls}(NamedTuple):")
        w.indent()
        name = docstring(self.em.p.name)
        w(f'"""Layer k of {name} as `_step` reads it (`_layer(k)`): the index k and the')
        w("layer's per-layer values, learned or classical (a periodic trainable's: copy k mod T).")
        w('"""')
        w()
        w("k: int")
        for s in self.em.layer_values():
            w(f"{self.em.n(s.name)}: {'nn.Module' if s.role == 'net' else 'torch.Tensor'}")
        w.dedent()

    def classical_class(self, w: Writer) -> None:
        """The classical layer: every trainable (per-layer and shared) and net at its initial
        value, under the attribute names of a learned layer, in buffers outside state_dict."""
        em = self.em
        names = [em.n(s.name) for s in [*em.trainables, *em.layer_nets, *em.shared_nets]]
        w(f"class {self.em.classical_cls}(nn.Module):")
        w.indent()
        w(f'"""One layer of the untrained {self.em.p.name}: every trainable at its initial value.')
        w()
        w("Attribute names are a learned layer's (and the network's shared trainables); values")
        w("are non-persistent buffers: they follow .to(), never train and stay out of state_dict.")
        if self.em.layer_nets or self.em.shared_nets:
            w("Nets are frozen copies of their initial weights (a per-layer net: layer 0's); for a")
            w("zero_last net that is the classical update itself.")
        if any(reads_layer(s.init) for s in self.em.per_layer):
            w("An initial value that reads `layer` is stacked, one entry per layer (per copy of a")
            w("periodic trainable): `_layer(k, classical=True)` takes layer k's.")
        w('"""')
        w()
        w(f"def __init__(self, {', '.join(names)}):")
        w.indent()
        w("super().__init__()")
        for s in self.em.trainables:
            w(self.em._origin(s.line))
            name = self.em.n(s.name)
            w(f'self.register_buffer("{name}", {name}.detach().clone(), persistent=False)')
        for s in [*self.em.layer_nets, *self.em.shared_nets]:
            w(self.em._origin(s.line))
            w(f"self.{self.em.n(s.name)} = frozen({self.em.n(s.name)})")
        w.dedent()
        w.dedent()

    def _classical_init(self, w: Writer) -> None:
        """`self.classical`: the classical layer built from the initial values."""
        learned = [*self.em.trainables, *self.em.layer_nets, *self.em.shared_nets]
        if not learned:
            w("self.classical = nn.Module()  # nothing is learned: every layer is classical")
            return
        args = [self.em.n(s.name) for s in self.em.trainables]
        args += [f"{self.em.n(s.name)}[0]" for s in self.em.layer_nets]
        args += [f"self.{self.em.n(s.name)}" for s in self.em.shared_nets]
        w("# the untrained layer (classical_step, safeguard): initial values, kept as they are")
        w(f"self.classical = {self.em.classical_cls}({', '.join(args)})")

    def _nets(self, w: Writer) -> None:
        """The nets, built from the seed: a shared one on the network, per-layer ones in a
        list that the layers take entry k of."""
        if self.em.layer_nets or self.em.shared_nets:
            w("generator = torch.Generator().manual_seed(seed)  # reproducible net weights")
        for s in self.em.shared_nets:
            w(self.em._origin(s.line))
            w(f"self.{self.em.n(s.name)} = {netgen.construct(s, self.em.dim_name)}")
        for s in self.em.layer_nets:
            w(self.em._origin(s.line))
            w(f"{self.em.n(s.name)} = [")
            w(f"    {netgen.construct(s, self.em.dim_name)}")
            w("    for _ in range(num_layers)")
            w("]")
