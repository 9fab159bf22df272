"""Emit the network's calling methods: `forward` and the layer map it is made of.

One layer is a method, so that other methods (the classical step, the safeguard, a fixed-point
solver) run the same map:

    _start(shared, inputs...) -> (context, states)   inputs checked, per-call values, initial states
    _step(layer, context, states) -> states          one layer: the spec's body, in order
    _output(context, states) -> output               what forward returns after a layer
    _layer(k, classical=False) -> layer              layer k's parameters (the last one's past it)
    _depth(num_layers) -> K                          the number of layers to run, checked

`context` is the tuple of per-call values the layer reads (inputs, dimensions, shared trainables,
hoisted work), `states` the tuple of every state in STATES order. `shared` supplies the shared
trainables and nets: the network itself, or `self.classical` (every trainable at its initial
value), so `_step(self._layer(k, classical=True), classical_context, states)` is one untrained
layer. `layer` is a Layer module (or None when every trainable is shared), except where the body
reads the layer index `layer`, where a trainable is `periodic T`, or where a per-layer initial
value reads `layer`: then it is the view `<Net>LayerAt(k, <per-layer values>)`, so the index
travels with the parameters and `_step`'s signature is the same for every network.
"""

from __future__ import annotations

from unfoldc.codegen.liveness import dim_reads, expr_reads, fit_reads, unpacked
from unfoldc.codegen.text import docstring
from unfoldc.codegen.writer import Writer, batched_shape, call_lines, def_lines, shape_parts
from unfoldc.ir.expr import Sym, symbols, walk


def _tuple(names: list[str]) -> str:
    """`(a, b)`, `(a,)` or `()`."""
    return f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"


class ForwardEmitter:
    """Writes forward, classical_step and the private layer-map methods of one network class."""

    def __init__(self, em):
        self.em, self.p = em, em.p
        self.states = em._states()
        self.inputs = [em.n(s.name) for s in self.p.by_role("input")]
        self.per_layer = bool(em.per_layer or em.layer_nets)
        self.guarded = "Safeguard" in em.runtime

    def emit(self, w) -> None:
        """The methods, at the class body's indentation of `w`."""
        step_reads, output_reads = self._step_reads(), self._output_reads()
        start, stores, start_reads = self._start_body(w)
        # the per-call values `_step` and `_output` read, in the order `_start` defines them
        defined = self.inputs + ["B", "like"] + stores
        self.context = [n for n in dict.fromkeys(defined)
                        if n in step_reads | output_reads and n not in self.states]
        for method in (self._forward, self._classical_step, self._depth, self._layer):
            method(w)
            w()
        self._start(w, start, start_reads | set(self.context))
        w()
        self._method(w, "_step(self, layer, context, states)",
                     "One layer: the update equations of the spec, in order.",
                     self._step_body(w), step_reads)
        w()
        self._method(w, "_output(self, context, states)",
                     "What forward returns, from the states after a layer.",
                     self._output_body(w), output_reads)

    # ---- public methods -------------------------------------------------------------------------
    def _forward(self, w) -> None:
        flags = ["*", "num_layers=None", "all_layers=False", "checkpoint=False", "safeguard=False",
                 "safeguard_delta=0.1", "safeguard_theta=0.1"]
        def_lines(w, "forward", ["self"] + self.inputs + flags)
        w.indent()
        self._forward_doc(w)
        w("K = self._depth(num_layers)")
        w(f"context, states = self._start(self, {', '.join(self.inputs)})")
        w("guard = None")
        w("if safeguard:")
        if self.guarded:
            w("    # Heaton et al. 2023: a sample keeps a layer's update only where it shrinks the")
            w("    # fixed-point residual of the classical layer, else it takes the classical one")
            w(f"    classical = self._start(self.classical, {', '.join(self.inputs)})[0]")
            w("    guard = Safeguard(  # T_k(states): classical layer k")
            w("        lambda k, states: self._step(self._layer(k, classical=True), classical, "
              "states),")
            w("        states, safeguard_delta, safeguard_theta)")
        else:
            unbatched = [s.name for s in self.em._state_symbols() if not s.type.batched]
            message = (f"safeguard=True needs per-sample states, but `{unbatched[0]}` is shared "
                       f"by the batch")
            w(f"    raise ValueError({message!r})")
        w("history = []")
        w("for k in range(K):")
        w("    layer = self._layer(k)")
        w("    if checkpoint:  # recompute this layer in the backward pass instead of storing it")
        w("        new = torch.utils.checkpoint.checkpoint(self._step, layer, context, states,")
        w("                                                use_reentrant=False)")
        w("    else:")
        w("        new = self._step(layer, context, states)")
        w("    states = new if guard is None else guard(k, states, new)")
        w("    if all_layers:")
        w("        history.append(self._output(context, states))")
        w("if guard is not None:")
        w("    self.last_safeguard = guard.fallbacks()")
        w("if all_layers:")
        w("    return history")
        w("return self._output(context, states)")
        w.dedent()

    def _forward_doc(self, w) -> None:
        em, p = self.em, self.p
        w('"""Run K = num_layers (default: the built depth) layers on a batch.')
        w()
        w("Inputs are batched: " + ", ".join(
            f"`{em.n(s.name)}` {batched_shape(s.type)}" for s in p.by_role("input")) + ".")
        outs = ", ".join(f"`{em.n(o)}`" for o in p.outputs)
        kind = "an Output named tuple" if len(p.outputs) > 1 else "the tensor"
        w(f"Returns {kind} {outs}; with all_layers=True, a list of it after every layer.")
        w("Layers past the built depth reuse the last layer's parameters. With safeguard=True a")
        w("layer's update is kept per sample only where it passes the safeguard test against")
        w("`classical_step` (see Safeguard); `self.last_safeguard` then lists, per layer, how many")
        w("samples took the classical update instead.")
        w('"""')

    def _classical_step(self, w) -> None:
        states = self.states
        index = ["*", "k"] if self.em.indexed else []
        def_lines(w, "classical_step", ["self"] + self.inputs + states + index)
        w.indent()
        w(f'"""One layer of the untrained {docstring(self.p.name)}: every trainable at its '
          'initial value.')
        w()
        several = "a tuple in STATES order" if len(states) > 1 else "the new state"
        w(f"Maps the batched states ({', '.join(states)}) one classical layer further for the")
        w(f"given inputs; returns {several}. The trainables are `self.classical`'s")
        w("(initial values, which training never changes).")
        if self.em.indexed:
            w("Layers differ (the layer index, a schedule `v[layer]`, a periodic trainable): `k`")
            w("(0-based) says which classical layer to run.")
        w('"""')
        w(f"context = self._start(self.classical, {', '.join(self.inputs)})[0]")
        layer = "self._layer(k, classical=True)" if self.em.indexed else "self.classical"
        call = f"self._step({layer}, context, {_tuple(states)})"
        w(f"return {call}" if len(states) > 1 else f"return {call}[0]")
        w.dedent()

    # ---- the layer map --------------------------------------------------------------------------
    def _depth(self, w) -> None:
        w("def _depth(self, num_layers):")
        w.indent()
        w('"""The layers to run: `num_layers` (a positive int), by default the built depth."""')
        w("if num_layers is None:")
        w("    return self.num_layers")
        w("if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:")
        w('    raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")')
        if self.per_layer:
            w("if not self.layers:")
            w('    raise ValueError("this network was built with num_layers=0: it has no layer "')
            w('                     "parameters to run; build it with num_layers >= 1")')
        # layer k reads entry k of a body schedule `v[layer]`, past the built depth too
        self.em.check_schedules(w, self.em.body_schedules("num_layers"), "forward")
        w("return num_layers")
        w.dedent()

    def _layer(self, w) -> None:
        w("def _layer(self, k, classical=False):")
        w.indent()
        if self.em.indexed:
            self._layer_view(w)
        elif self.per_layer:
            w('"""Layer k\'s parameters; past the built depth, the last layer\'s. classical=True: '
              'the')
            w('untrained layer (every trainable at its initial value)."""')
            w("if classical:")
            w("    return self.classical")
            w("return self.layers[min(k, len(self.layers) - 1)]")
        else:
            w('"""Layer k\'s parameters: none, every trainable of this network is shared."""')
            w("return None")
        w.dedent()

    def _layer_view(self, w) -> None:
        """`_layer` of an indexed network: the view of layer k, learned or classical."""
        em = self.em
        w('"""Layer k: its index and per-layer values. Past the built depth they are the last')
        w("layer's; a periodic T trainable's is copy k mod T's. classical=True: their initial")
        w('values (one that reads `layer`: at the same k)."""')
        learned = [self._entry(s, classical=False) for s in em.layer_values()]
        untrained = [self._entry(s, classical=True) for s in em.layer_values()]
        if untrained != learned:  # (equal when the layer holds nothing but its index)
            w("if classical:")
            w.indent()
            self._view(w, untrained)
            w.dedent()
        self._view(w, learned)

    def _view(self, w, values: list[str]) -> None:
        """`return <Net>LayerAt(k, values...)`, one value a line beyond 100 columns."""
        call_lines(w, f"return {self.em.layer_view_cls}", ["k", *values])

    def _entry(self, s, classical: bool) -> str:
        """Layer k's value of the per-layer trainable or net `s`, from `self.layers` or
        `self.classical` (which stacks an initial value that reads `layer`, one per copy)."""
        name = self.em.n(s.name)
        period = getattr(s, "period", None)
        position = "k" if period is None else f"k % {period}"
        if not classical:
            return f"self.layers[min({position}, len(self.layers) - 1)].{name}"
        if s.role == "net" or not reads_layer(s.init):  # one value for all (a net: layer 0's)
            return f"self.classical.{name}"
        return f"self.classical.{name}[min({position}, len(self.classical.{name}) - 1)]"

    def _start(self, w, body: list[str], reads: set[str]) -> None:
        """`_start`: `B` and `like` first where `reads` (its lines' and its return's) has them."""
        def_lines(w, "_start", ["self", "shared"] + self.inputs)
        w.indent()
        w('"""Check the inputs; return the per-call values the layers read and the initial states.')
        w()
        w("`shared` holds the shared trainables: the network itself, or `self.classical`.")
        w('"""')
        if "B" in reads:
            w(f"B = {self.inputs[0]}.shape[0]" if self.inputs else "B = 1")
        if "like" in reads:
            w(f"like = {self.inputs[0]}" if self.inputs else "like = next(self.buffers())")
        w.lines += body
        w(f"return {_tuple(self.context)}, {_tuple(self.states)}")
        w.dedent()

    def _start_body(self, w) -> tuple[list[str], list[str], set[str]]:
        """The lines of `_start` after `B` and `like` and before its return, the names they
        assign (in order) and the names they read."""
        em, p = self.em, self.p
        pr = em._printer("forward")
        out = _writer(w.depth + 1)
        stores = em._bind_forward_dims(out)
        stores += em._bind_shared(out, prefix="shared.")
        reads: set[str] = set()
        for a in [a for a in p.prologue if a.kind == "let"]:
            out(em._origin(a.line))
            out(f"{em.n(a.target)} = {em.expr(pr, a.value)}")
            stores.append(em.n(a.target))
            reads |= expr_reads(a.value, pr.name_of)
        hoisted = [a for a in p.prologue if a.kind == "hoisted"]
        if hoisted:
            out("# -- loop-invariant work, hoisted out of the layer loop --")
            for a in hoisted:
                out(f"{em.n(a.target)} = {em.expr(pr, a.value)}")
                stores.append(em.n(a.target))
                reads |= expr_reads(a.value, pr.name_of)
        out("# -- initial states --")
        for a in [a for a in p.prologue if a.kind == "init"]:
            out(em._origin(a.line))
            out(f"{em.n(a.target)} = {em._state_init(pr, a)}")
            stores.append(em.n(a.target))
            reads |= fit_reads(p.symbol(a.target), a.value, pr.name_of, em.n)
        return out.lines, stores, reads

    def _step_reads(self) -> set[str]:
        """The names `_step` reads: the states it returns and what its assignments read."""
        em, p = self.em, self.p
        name_of = em._printer("forward").name_of
        reads = set(self.states)
        for a in p.body:
            if a.kind == "update":
                reads |= fit_reads(p.symbol(a.target), a.value, name_of, em.n)
            else:
                reads |= expr_reads(a.value, name_of)
        return reads

    def _output_reads(self) -> set[str]:
        """The names `_output` reads: the outputs, and the batch size and the sizes an output
        shared by the batch is expanded to."""
        reads = {self.em.n(o) for o in self.p.outputs}
        for o in self.p.outputs:
            t = self.p.symbol(o).type
            if not t.batched:
                reads |= {"B"} | dim_reads(t, self.em.n)
        return reads

    def _step_body(self, w) -> list[str]:
        em, p = self.em, self.p
        pr = em._printer("forward")
        out = _writer(w.depth + 1)
        used = {n.name for a in p.body for n in symbols(a.value)}
        bound = [s for s in em.layer_values() if s.name in used]
        if em.reads_index:
            out(f"{em.layer_index} = layer.k  # the layer index `layer`")
        if bound:
            lhs = ", ".join(em.n(s.name) for s in bound)
            rhs = ", ".join(f"layer.{em.n(s.name)}" for s in bound)
            out(f"{lhs} = {rhs}")
        last = None
        for a in p.body:
            if a.line != last:
                out(em._origin(a.line))
                last = a.line
            if a.kind == "update":
                value = em._fit_state(pr, p.symbol(a.target), a.value)
            else:
                value = em.expr(pr, a.value)
            out(f"{em.n(a.target)} = {value}")
        if not any(a.kind == "update" for a in p.body):  # W0001 warned: nothing is updated
            out("# no state that reaches an output is updated: the layers change nothing")
        out(f"return {_tuple(self.states)}")
        return out.lines

    def _output_body(self, w) -> list[str]:
        em = self.em
        out = _writer(w.depth + 1)
        outs = []
        for o in self.p.outputs:
            s = self.p.symbol(o)
            text = em.n(o)
            if not s.type.batched:
                parts = shape_parts(s.type, em.dim_name, "B")
                text = f"{text}.expand({', '.join(parts)}{',' if len(parts) == 1 else ''})"
            outs.append(text)
        out(f"return {outs[0]}" if len(outs) == 1 else f"return self.Output({', '.join(outs)})")
        return out.lines

    def _method(self, w, signature: str, doc: str, body: list[str], reads: set[str]) -> None:
        """`def signature:` with its docstring, the context and states it `reads`, and `body`."""
        w(f"def {signature}:")
        w.indent()
        w(f'"""{doc}"""')
        for names, source in ((self.context, "context"), (self.states, "states")):
            targets = unpacked(names, reads)
            if targets is not None:
                w(f"{_tuple(targets) if len(targets) == 1 else ', '.join(targets)} = {source}")
        w.dedent()
        w.lines += body

def reads_layer(e) -> bool:
    """Whether the expression `e` (or None) reads the layer index `layer`."""
    return e is not None and any(isinstance(n, Sym) and n.role == "layer" for n in walk(e))


def _writer(depth: int) -> Writer:
    out = Writer()
    out.depth = depth
    return out
