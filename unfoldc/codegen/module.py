"""Emit the standalone PyTorch module for a Program (see docs/generated-module.md).

The file reads like hand-written PyTorch: a class per layer holding the per-layer trainables, the
network class with its construction-time work in `__init__`, and a `forward` that computes the
loop-invariant work once, initializes the states and runs the layer loop. Every statement
carries an origin comment `# spec.unf:LINE`. Output is a pure function of the Program and the
source text, so it is byte-for-byte deterministic.
"""

from __future__ import annotations

from unfoldc.codegen import nets as netgen
from unfoldc.codegen.exprs import ExprPrinter, format_number, is_number
from unfoldc.codegen.fixed_point import RUNTIME as FIXED_POINT_RUNTIME
from unfoldc.codegen.fixed_point import FixedPointEmitter
from unfoldc.codegen.forward import ForwardEmitter, reads_layer
from unfoldc.codegen.helpers import HELPERS, ORDER
from unfoldc.codegen.layers import LayerEmitter
from unfoldc.codegen.liveness import FULL, SAME, SIZED, ZEROS, expr_reads, fit
from unfoldc.codegen.names import Namespace
from unfoldc.codegen.runtime import runtime_definition
from unfoldc.codegen.text import comment, docstring, docstring_lines, literal
from unfoldc.codegen.trainables import TrainableEmitter
from unfoldc.codegen.writer import Writer, shape_tuple
from unfoldc.convergence.emit import ConvergenceEmitter
from unfoldc.ir.expr import Const, Expr, Op, Sym, symbols, walk
from unfoldc.ir.program import Assign, Program, Symbol
from unfoldc.ir.types import DimSum, dim_names
from unfoldc.ops import PREC_ATOM
from unfoldc.source import Source
from unfoldc.version import __version__


class ModuleEmitter:
    """Builds the generated file for one program."""

    def __init__(self, program: Program, source: Source):
        self.p, self.source = program, source
        self.ns = Namespace()
        self.cls = self.ns.fresh(_class_name(program.name))
        assert self.cls == network_class_name(program)  # the first name of a fresh namespace
        self.layer_cls = self.ns.fresh(self.cls + "Layer")
        self.output_cls = self.ns.fresh(self.cls + "Output")
        self.classical_cls = self.ns.fresh(self.cls + "Classical")
        self.helpers: set[str] = set()
        for s in program.symbols:
            self.ns.name(s.name)
        self.trainables = program.by_role("train")
        self.per_layer = [s for s in self.trainables if s.per_layer]
        self.shared = [s for s in self.trainables if not s.per_layer]
        nets = program.by_role("net")
        self.layer_nets = [s for s in nets if s.per_layer]
        self.shared_nets = [s for s in nets if not s.per_layer]
        for s in nets:
            self.helpers |= netgen.helpers_for(s)
        self.trainable = TrainableEmitter(self)  # storage names: allocated here
        self.layers = LayerEmitter(self)
        # The layer index `layer`, periodic trainables and initial values that read `layer`
        # make layer k more than a Layer module: `_layer(k)` then returns a view (layer_view_cls)
        # holding k and the values layer k reads (see forward.py).
        self.layer_index = self.ns.fresh("layer_index")
        self.layer_view_cls = self.ns.fresh(self.cls + "LayerAt")
        body_reads = {n for a in program.body for n in symbols(a.value)}
        self.reads_index = any(n.role == "layer" for n in body_reads)
        self.indexed = self.reads_index or any(
            s.period is not None or reads_layer(s.init) for s in self.per_layer)
        self.runtime: list[str] = []  # definitions of unfoldc/runtime/ it carries
        if nets:
            self.runtime.append("frozen")
        if all(s.type.batched for s in self._state_symbols()):
            self.runtime.append("Safeguard")
        self.runtime += FIXED_POINT_RUNTIME  # fixed_point(): solver and implicit backward
        self.fixed_point = FixedPointEmitter(self, self._state_symbols())
        self.convergence = ConvergenceEmitter(self)  # docstring section, report method, classes

    # ---- naming ---------------------------------------------------------------------------------
    def n(self, name: str) -> str:
        return self.ns.name(name)

    def _printer(self, scope: str) -> ExprPrinter:
        """A printer for `setup` (inside __init__) or `forward` code."""
        def name_of(sym: Sym) -> str:
            if sym.role == "layer":
                return self.layer_index  # a loop variable wherever `layer` may be read
            if scope == "setup" or sym.role in ("input", "state", "temp", "hoisted", "dim"):
                return self.n(sym.name)
            if sym.role in ("train", "net", "arg"):
                return self.n(sym.name)  # bound to a local at the top of forward / the loop
            if sym.role == "let" and self._let_phase(sym.name) == "prologue":
                return self.n(sym.name)
            return f"self.{self.n(sym.name)}"
        printer = ExprPrinter(name_of)
        return printer

    def _let_phase(self, name: str) -> str:
        return "setup" if any(a.target == name for a in self.p.setup) else "prologue"

    def expr(self, printer: ExprPrinter, e: Expr) -> str:
        text = printer(e)
        self.helpers |= printer.helpers
        return text

    def layer_values(self) -> list[Symbol]:
        """The per-layer trainables and nets, in the order of the layer view's fields."""
        return [*self.per_layer, *self.layer_nets]

    # ---- the file -------------------------------------------------------------------------------
    def emit(self) -> str:
        body = Writer()
        if self.per_layer or self.layer_nets:
            self.layers.layer_class(body)
            body()
            body()
        if self.indexed:
            self.layers.view_class(body)
            body()
            body()
        if self.trainables or self.layer_nets or self.shared_nets:
            self.layers.classical_class(body)
            body()
            body()
        self._main_class(body)
        self.convergence.tail(body)
        head = Writer()
        self._header(head)
        return head.text() + "\n\n" + body.text()

    def _header(self, w: Writer) -> None:
        p = self.p
        w('"""' + f"{p.name}: generated by unfoldc {__version__} from "
          f"{docstring(p.source_name)}.")
        w()
        w("Do not edit: change the spec and compile again.")
        for note in p.notes:
            w(f"Note: {docstring(note)}.")
        w(f"Spec sha256: {p.source_sha256}")
        w('"""')
        w()
        w("import copy")  # convergence_report() evaluates a float64 copy
        w("import warnings")  # fixed_point() warns when it does not converge
        if len(p.outputs) > 1 or self.indexed:
            w("from typing import NamedTuple")
        w()
        w("import torch")
        w("from torch import nn")
        for name in ORDER:
            if name in self.helpers:
                w()
                w()
                for line in HELPERS[name].strip("\n").splitlines():
                    w(line)
        for name in self.runtime:
            w()
            w()
            for line in runtime_definition(name).splitlines():
                w(line)
        if len(p.outputs) > 1:
            w()
            w()
            w(f"class {self.output_cls}(NamedTuple):")
            w.indent()
            w(f'"""The outputs of {p.name}."""')
            w()
            for o in p.outputs:
                w(f"{self.n(o)}: torch.Tensor")
            w.dedent()
        w()

    def _origin(self, line: int) -> str:
        text = self.source.line_text(line).split("#", 1)[0].strip()
        where = f"# {comment(self.p.source_name)}:{line}"
        return f"{where}: {comment(text)}" if text else where

    # ---- the network class ----------------------------------------------------------------------
    def _main_class(self, w: Writer) -> None:
        p = self.p
        w(f"class {self.cls}(nn.Module):")
        w.indent()
        doc = docstring_lines(p.doc or f"{p.name}, unfolded into a network of "
                              f"{p.num_layers} layers.")
        w('"""' + doc[0])
        for line in doc[1:]:
            w(line)
        w()
        w(f"Compiled by unfoldc from {docstring(p.source_name)}. Build with")
        kwargs = ", ".join(f"{self.n(s.name)}=..." for s in p.by_role("given"))
        w(f"`{self.cls}({kwargs + ', ' if kwargs else ''}num_layers={p.num_layers})` and call "
          f"with `model({', '.join(self.n(s.name) for s in p.by_role('input'))})`.")
        self.convergence.doc(w)
        w('"""')
        w()
        self._class_attributes(w)
        w()
        self._init(w)
        for s in self.shared:
            self.trainable.property(w, s)
        w()
        w("def extra_repr(self):")
        w.indent()
        w('return f"num_layers={self.num_layers}"')
        w.dedent()
        w()
        ForwardEmitter(self).emit(w)
        w()
        self.fixed_point.method(w)
        if p.objective is not None:
            w()
            self._objective(w)
        self.convergence.method(w)
        w.dedent()

    def _class_attributes(self, w: Writer) -> None:
        p = self.p

        def names(role):
            items = [f'"{self.n(s.name)}"' for s in p.by_role(role)]
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"

        outs = [f'"{self.n(o)}"' for o in p.outputs]
        w(f"SPEC_NAME = {literal(p.name)}")
        w(f'SPEC_SHA256 = "{p.source_sha256}"')
        w(f"GIVENS = {names('given')}")
        w(f"INPUTS = {names('input')}")
        w(f"STATES = {names('state')}")
        w(f"PARAMS = {names('param')}")
        w(f"OUTPUTS = ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
        sharing = ", ".join(f'"{self.n(s.name)}": "{_sharing(s)}"' for s in self.trainables)
        w(f"TRAINABLES = {{{sharing}}}")
        w(f"DEFAULT_LAYERS = {p.num_layers}")
        renamed = {self.n(s.name): s.name for s in p.symbols
                   if s.role in ("given", "input", "state", "param", "train")
                   and self.n(s.name) != s.name}
        if renamed:  # data files and --given name operands as the spec does
            items = ", ".join(f'"{k}": {literal(v)}' for k, v in sorted(renamed.items()))
            w(f"SPEC_NAMES = {{{items}}}  # generated name -> spec name, where they differ")
        self.fixed_point.attribute(w)
        if len(p.outputs) > 1:
            w(f"Output = {self.output_cls}")

    def _init(self, w: Writer) -> None:
        p = self.p
        pr = self._printer("setup")
        sig = ["self", "*"] + [self.n(s.name) for s in p.by_role("given")]
        sig.append(f"num_layers={p.num_layers}")
        if p.by_role("net"):
            sig.append("seed=0")
        if not p.by_role("given"):  # nothing to take the dtype and device from: say them
            sig += ["dtype=None", "device=None"]
        for s in p.by_role("param"):
            default = format_number(s.init.value) if isinstance(s.init, Const) else "None"
            sig.append(f"{self.n(s.name)}={default}")
        w(f"def __init__({', '.join(sig)}):")
        w.indent()
        w("super().__init__()")
        w("self.num_layers = num_layers")
        w("self.last_safeguard = None  # per layer, samples that fell back (last safeguarded call)")
        givens = p.by_role("given")
        for s in givens:
            w(f"{self.n(s.name)} = torch.as_tensor({self.n(s.name)})")
        if givens:
            w(f"like = {self.n(givens[0].name)}  # new tensors follow its dtype and device")
        else:
            w("like = torch.empty((), dtype=dtype, device=device)  # no givens to follow")
        self.bind_dims(w, self._used_dims_setup(), roles=("given",), prefix="")
        for s in givens:
            w(f'self.register_buffer("{self.n(s.name)}", {self.n(s.name)})')
        for s in p.by_role("param"):
            self._param(w, pr, s)
        in_forward = self._read_in_forward()
        for a in p.setup:
            w(self._origin(a.line))
            w(f"{self.n(a.target)} = {self.setup_value(pr, a.value)}")
            if a.target in in_forward:
                w(f'self.register_buffer("{self.n(a.target)}", {self.n(a.target)})')
        self.check_schedules(w, self._setup_schedules(), "setup")
        for s in self.trainables:
            self.trainable.init(w, pr, s)
        self.layers.init(w)
        w.dedent()

    # ---- vectors indexed by the layer index ----------------------------------------------------
    def _setup_schedules(self) -> list[tuple[Expr, int, str]]:
        """(vector, spec line, copies) for each `v[layer]` in an initial value, and for those of
        the body (checked against num_layers at construction too)."""
        found = []
        for s in self.per_layer:
            copies = "num_layers" if s.period is None else f"min({s.period}, num_layers)"
            found += [(v, s.line, copies) for v in _indexed(s.init)]
        return found + self.body_schedules("num_layers")

    def body_schedules(self, count: str) -> list[tuple[Expr, int, str]]:
        """(vector, spec line, `count`) for each `v[layer]` of the layer body: `count` layers
        read entries 0..count-1."""
        return [(v, a.line, count) for a in self.p.body for v in _indexed(a.value)]

    def condition_schedules(self, count: str) -> list[tuple[Expr, int, str]]:
        """Like body_schedules, for the vectors only `require` / `assume` conditions index by
        `layer`: the report evaluates them at each of its `count` layers."""
        body = {v for v, _, _ in self.body_schedules(count)}
        return [(v, c.line, count) for c in self.p.conditions for e in (c.lhs, c.rhs)
                for v in _indexed(e) if v not in body]

    def check_schedules(self, w: Writer, found, scope: str) -> None:
        """A located ValueError when a vector indexed by `layer` is shorter than the layers
        that read it (`scope`: "setup" in __init__, "forward" in the methods that run layers)."""
        pr = self._printer(scope)
        spec = ExprPrinter(lambda sym: sym.name)  # the vector as the spec writes it
        seen = set()
        for v, line, copies in found:
            code = pr.code(v).at(PREC_ATOM)
            self.helpers |= pr.helpers
            if (code, copies) in seen:
                continue
            seen.add((code, copies))
            text = _braces(spec(v))
            shown = text if text.isidentifier() else f"({text})"
            where = _braces(f"{self.p.source_name}:{line}")
            w(f"if {code}.shape[-1] < {copies}:")
            has = f"`{text}` has {{{code}.shape[-1]}} entries "
            per = f"for {{{copies}}} layers; "
            middle = [has + per]
            if 4 * w.depth + 26 + len(literal(has + per)) > 100:  # the line of the continuation
                middle = [has, per]  # keep the file within 100 columns
            parts = [f"{where}: `{shown}[layer]` reads entry k in layer k, but ", *middle,
                     "give it at least one entry per layer"]
            w(f"    raise ValueError(f{literal(parts[0])}")
            for part in parts[1:]:
                w(f"                     f{literal(part)}" + (")" if part is parts[-1] else ""))

    def _read_in_forward(self) -> set[str]:
        return {n.name for a in self.p.prologue + self.p.body for n in symbols(a.value)}

    def setup_value(self, pr, value) -> str:
        """A setup `let` printed as a tensor: `let q = 1 + m` is a Python int otherwise, which a
        buffer cannot hold and `torch.sqrt(q)` rejects (`like` is in scope wherever lets are)."""
        code = self.expr(pr, value)
        return f"like.new_tensor({code})" if is_number(value) else code

    def _param(self, w: Writer, pr: ExprPrinter, s: Symbol) -> None:
        name = self.n(s.name)
        w(self._origin(s.line))
        if not isinstance(s.init, Const):
            w(f"if {name} is None:")
            w(f"    {name} = {self.expr(pr, s.init)}")
        shape = shape_tuple(s.type, self.dim_name) if s.type.dims else "()"
        w(f"{name} = fill({name}, {shape}, like)  # a tensor from here on (setup reads it)")
        w(f'self.register_buffer("{name}", {name})')
        self.helpers.add("fill")

    # ---- the interface of the report emitter (convergence/emit.py): the module's names for
    # dimensions and the lines that bind them ----------------------------------------------------
    def dim_name(self, d) -> str:
        """The generated expression of a dimension: a literal size, a bound name, `n - 1`."""
        if isinstance(d, DimSum):  # `n - 1`, `2 * m`: arithmetic on the bound name
            return str(DimSum(self.n(d.name), d.offset, d.scale))
        return str(d) if isinstance(d, int) else self.n(d)

    def _used_dims_setup(self) -> set[str]:
        exprs = [a.value for a in self.p.setup]
        exprs += [s.init for s in self.p.symbols if s.role in ("param", "train") and s.init]
        used = {n.name for e in exprs for n in symbols(e) if n.role == "dim"}
        used |= {d for s in self.p.symbols if s.role in ("param", "train") for d in s.type.dims}
        used |= {d for s in self.p.by_role("net") for d in netgen.dims_of(s)}
        used |= {d for e in exprs for n in walk(e) if getattr(n, "op", "") in SIZED
                 for d in n.type.dims}
        return {n for d in used for n in dim_names(d)}

    def bind_dims(self, w: Writer, used: set[str], roles: tuple[str, ...],
                  prefix: str) -> list[str]:
        """`m, n = H.shape` lines for the dimensions `used`, read from symbols of `roles`;
        returns the names they assign, in order."""
        bound = []
        for s in self.p.symbols:
            if s.role not in roles:
                continue
            mine = [b for b in self.p.dims if b.symbol == s.name and b.dim in used]
            if not mine:
                continue
            offset = 1 if s.type.batched else 0
            names = ["_"] * (len(s.type.dims) + offset)
            for b in mine:
                names[b.axis + offset] = self.n(b.dim)
            if all(n == "_" for n in names[offset:]) and not offset:
                continue
            target = ", ".join(names) + ("," if len(names) == 1 else "")
            w(f"{target} = {prefix}{self.n(s.name)}.shape")
            bound += [n for n in names if n != "_"]
            used -= {b.dim for b in mine}
        return bound

    # ---- forward: see forward.py -------------------------------------------------------------
    def _objective(self, w: Writer) -> None:
        """`objective(states..., inputs...)`: the spec's `minimize` expression, per sample."""
        p = self.p
        pr = self._printer("forward")
        used = {s.name for s in symbols(p.objective)}
        args = [self.n(s.name) for s in p.by_role("state") + p.by_role("input")
                if s.name in used]
        w(f"def objective(self, {', '.join(args)}):")
        w.indent()
        w(f'"""The objective the spec minimizes ({docstring(p.source_name)}:'
          f'{self._objective_line()}), one value per sample.')
        w()
        w("Evaluate it on any layer's output, e.g. `model.objective(s=model(x), x=x)`.")
        w('"""')
        givens = p.by_role("given")
        source = f"self.{self.n(givens[0].name)}" if givens else (args[0] if args else "")
        if source and "like" in expr_reads(p.objective, pr.name_of):
            w(f"like = {source}")  # numbers in calls (`sqrt(n)`) become tensors like it
        # dimensions the objective reads: from the givens, else from the inputs it is passed
        dims = {x.name for x in symbols(p.objective) if x.role == "dim"}
        self.bind_dims(w, dims, ("given",), "self.")
        binders = {b.symbol for b in p.dims if b.dim in dims}
        if all(self.n(name) in args for name in binders if p.symbol(name).role == "input"):
            self.bind_dims(w, dims, ("input",), "")
        self._bind_shared(w, [p.objective])
        text = self.expr(pr, p.objective)
        if not p.objective.type.batched:
            text = f"({text}).expand({args[0]}.shape[0])" if args else text
        w(f"return {text}")
        w.dedent()

    def _objective_line(self) -> int:
        for i, line in enumerate(self.source.text.split("\n"), start=1):
            if line.lstrip().startswith("minimize"):
                return i
        return 0

    def _bind_forward_dims(self, w: Writer) -> list[str]:
        """Bind the dimensions forward reads and check the inputs' shapes; returns the names
        bound, in order."""
        checked = self._checked_inputs()
        used = self._used_dims_forward() | {n for s in checked for d in s.type.dims
                                            for n in dim_names(d)}
        bound = self.bind_dims(w, set(used), roles=("given",), prefix="self.")
        remaining = used - {b.dim for b in self.p.dims if self._role_of(b.symbol) == "given"}
        bound += self.bind_dims(w, set(remaining), roles=("input",), prefix="")
        for s in checked:
            name = self.n(s.name)
            dims = ", ".join(self.dim_name(d) for d in s.type.dims)
            want = f"({dims},)" if len(s.type.dims) == 1 else f"({dims})"
            shown = ", ".join(str(d) if isinstance(d, int) else f"{{{self.dim_name(d)}}}"
                              for d in s.type.dims)
            w(f"if {name}.shape[1:] != {want}:")
            spec = ", ".join(map(str, s.type.dims))
            w(f'    raise ValueError(f"`{s.name}` must be (B, {spec}) = (B, {shown}), "')
            w(f'                     f"got {{tuple({name}.shape)}}")')
        return bound

    def _checked_inputs(self) -> list[Symbol]:
        """Inputs whose sizes are all fixed before them (by givens or earlier inputs): their
        shapes are checked on entry, so a wrong size fails with the spec's names."""
        binder = {b.dim: b.symbol for b in self.p.dims}
        return [s for s in self.p.by_role("input") if s.type.dims and all(
            isinstance(d, int) or binder.get(d) != s.name for d in s.type.dims)]

    def _role_of(self, name: str) -> str:
        return self.p.symbol(name).role

    def _used_dims_forward(self) -> set[str]:
        exprs = [a.value for a in self.p.prologue + self.p.body]
        used = set()
        for e in exprs:
            for node in walk(e):
                if isinstance(node, Sym) and node.role == "dim":
                    used.add(node.name)
                if getattr(node, "op", "") in SIZED:
                    used |= set(node.type.dims)
        for a in self.p.prologue:
            if a.kind == "init":
                used |= set(self.p.symbol(a.target).type.dims)
        return {n for d in used for n in dim_names(d)}

    def _bind_shared(self, w: Writer, exprs=None, prefix: str = "self.") -> list[str]:
        """Locals for the shared trainables and nets `exprs` read (default: prologue and body),
        from `prefix` (`self.`, or `shared.` where the classical layer may supply them);
        returns their names."""
        exprs = exprs if exprs is not None else [a.value for a in self.p.prologue + self.p.body]
        used = {n.name for e in exprs for n in symbols(e)}
        names = [self.n(s.name) for s in self.shared + self.shared_nets if s.name in used]
        for name in names:
            w(f"{name} = {prefix}{name}")
        return names

    def _state_init(self, pr: ExprPrinter, a: Assign) -> str:
        return self._fit_state(pr, self.p.symbol(a.target), a.value)

    def _fit_state(self, pr: ExprPrinter, state: Symbol, v: Expr) -> str:
        """Code for `v` as a value of `state`: a scalar fills the state's shape, and an unbatched
        value of a batched state gets the batch dimension (so every layer keeps its shape)."""
        batch = "B" if state.type.batched else None
        if state.type.rank == 0 and not batch:
            shape = "()"
        else:
            shape = shape_tuple(state.type, self.dim_name, batch)
        how = fit(state, v)  # (codegen/liveness.py reads the same decision)
        if how == ZEROS:
            return f"like.new_zeros({shape})"
        if how == FULL:
            return f"like.new_full({shape}, {float(v.value)!r})"
        code = pr.code(v)
        self.helpers |= pr.helpers
        if how == SAME:
            return code.text
        self.helpers.add("fill")
        text = code.text
        if v.type.batched and v.type.rank < state.type.rank:
            nones = ", ".join(["None"] * (state.type.rank - v.type.rank))
            text = f"{code.at(PREC_ATOM)}[:, {nones}]"
        return f"fill({text}, {shape}, like)"

    def _state_symbols(self) -> list[Symbol]:
        """The states the network keeps (dce may delete one nothing reads), in declaration
        order: what one layer maps to new values."""
        kept = {a.target for a in self.p.prologue if a.kind == "init"}
        return [s for s in self.p.by_role("state") if s.name in kept]

    def _states(self) -> list[str]:
        return [self.n(s.name) for s in self._state_symbols()]


def _indexed(e: Expr | None) -> list[Expr]:
    """The vectors `e` indexes by the layer index (`steps` in `steps[layer]`)."""
    if e is None:
        return []
    return [n.args[0] for n in walk(e) if isinstance(n, Op) and n.op == "index"]


def _braces(text: str) -> str:
    """`text` as the literal part of an f-string."""
    return text.replace("{", "{{").replace("}", "}}")


def _sharing(s: Symbol) -> str:
    """A trainable's entry in TRAINABLES: `shared`, `per_layer` or `periodic T`."""
    if not s.per_layer:
        return "shared"
    return "per_layer" if s.period is None else f"periodic {s.period}"




def _class_name(name: str) -> str:
    return name if name.isidentifier() else "".join(c if c.isalnum() else "_" for c in name)


def network_class_name(program: Program) -> str:
    """The name of the network class in `program`'s generated file (`algorithm class` gives
    `class_`): the first name its namespace hands out."""
    return Namespace().fresh(_class_name(program.name))


def emit_module(program: Program, source: Source) -> str:
    """The generated Python source for `program`."""
    return ModuleEmitter(program, source).emit()
