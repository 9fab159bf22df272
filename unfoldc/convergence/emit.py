"""Emit the convergence part of a generated module: the docstring section, the
`convergence_report()` method, and the report classes (torch + standard library only).

The method evaluates every derived condition (derive.py) on the current parameters, layer by
layer. Values that do not change from layer to layer (norms of given matrices, eigenvalue ranges
of Gram matrices) are computed once before the layer loop; norms of ADMM's resolvents follow
from that range; norms of per-layer matrices are computed for all layers at once, matrix-free,
before the loop. Norms and eigenvalue ranges are exact (SVD, eigvalsh) up to size 128 and
Rayleigh-Ritz (Krylov) estimates from a fixed start above, which estimate norms from below.
Emitted lines stay within 100 columns; repeated subexpressions get one local name per layer.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
import textwrap
from pathlib import Path

from unfoldc.codegen.exprs import ExprPrinter, format_number
from unfoldc.codegen.text import docstring
from unfoldc.codegen.writer import call_lines
from unfoldc.convergence.derive import Analysis, Condition, QTol, derive
from unfoldc.convergence.linear import (
    LINOP,
    ONE,
    Lin,
    has_linop,
    linop_norm,
    mono_psd,
    mono_transpose,
)
from unfoldc.convergence.quantity import (
    QBlock,
    QEig,
    QExpr,
    QInf,
    QNet,
    QNorm,
    QProd,
    QSpectral,
    QSum,
    q_symbols,
)
from unfoldc.ir.expr import Op, Sym, symbols
from unfoldc.ir.types import SCALAR, dim_names

METHOD = "convergence_report"


class ConvergenceEmitter:
    """Writes the convergence section of one generated module (hooked from codegen/module.py)."""

    def __init__(self, em):
        self.em, self.p = em, em.p
        try:
            self.an: Analysis = derive(em.p)
        except Exception as exc:  # noqa: BLE001 - an optional analysis must not block compiling
            from unfoldc.convergence.analyze import Layer

            self.an = Analysis(em.p, Layer(em.p, [], {}, {}))
            self.an.notes.append(f"convergence analysis failed ({type(exc).__name__}: {exc}); "
                                 "please report it with the spec")
        self.report_cls = em.ns.fresh("ConvergenceReport")
        self.r = em.ns.fresh("report")  # local alias of the report class in the method
        self.cond_cls = em.ns.fresh("ConvergenceCondition")
        # values that change from layer to layer (`layer` is the layer index: a reserved name)
        self.per_layer = ({s.name for s in em.per_layer + em.layer_nets}
                          | set(self.an.layer.schedule) | {"layer"})
        self.dims_known = {b.dim for b in self.p.dims
                           if self.p.symbol(b.symbol).role == "given"}
        self.conditions = [c for c in self.an.conditions if self._evaluable(c)]
        keys = {c.key for c in self.conditions}
        self.certificates = [c for c in self.an.certificates if set(c.keys) <= keys]
        # The report's own locals never capture (or are captured by) spec names.
        # (`eps`, `tol`, `rows` are reserved in codegen/names.py GENERATED: spec names are
        # renamed around them; anything else the method introduces is allocated here.)
        self.eps, self.tol, self.rows = "eps", "tol", "rows"
        self.chain = em.ns.fresh("chain")
        # the report class's evaluation helpers the method calls (`tail` writes only those and
        # what they call); its docstring points to ritz_values
        self.calls: set[str] = {"ritz_values"}
        self.spectral_args: dict[str, tuple[str, str, str]] = {}  # key -> (C0, C1, eigenvalues)

    # ---- what can be evaluated from parameters alone --------------------------------------------
    def _evaluable(self, c: Condition) -> bool:
        ok_roles = {"given", "param", "let", "train", "const", "net", "layer", LINOP}
        sizes = {d for lin in _lins(c) if _prints_eye(lin) for d in dim_names(lin.dim)}
        for s in sorted(sizes - self.dims_known):
            self._skip(c, f"its size `{s}` is only known from the inputs")
            return False
        for s in _reads(c):
            if s.role == "dim" and s.name not in self.dims_known:
                self._skip(c, f"its size `{s.name}` is only known from the inputs")
                return False
            if s.role == "state" and s.name in self.an.layer.schedule:
                continue
            if s.role not in ok_roles | {"dim"} or (s.role == "let" and not self._setup(s.name)):
                self._skip(c, f"it reads `{s.name}` ({s.role}), which depends on the input")
                return False
        return True

    def _skip(self, c: Condition, why: str) -> None:
        self.an.notes.append(f"{self.p.source_name}:{c.line} {c.kind} {c.text()}: not "
                             f"evaluated: {why}")

    def _setup(self, name: str) -> bool:
        return any(a.target == name for a in self.p.setup)

    # ---- docstring -----------------------------------------------------------------------------
    def doc(self, w) -> None:
        """Lines appended to the network's class docstring."""
        w()
        w(f"Convergence conditions (evaluated by `{METHOD}()`):")
        for c in self.conditions:
            _doc_line(w, f"[{c.level}] {self.p.source_name}:{c.line} {c.kind}: {c.text()}")
        for n in self.an.notes:
            _doc_line(w, f"[skipped] {n}")
        if not self.conditions and not self.an.notes:
            w("    none derived")
        # (identities that hold by construction are proved at compile time: `unfoldc check`
        # lists them; they are not conditions of this network)
        names = ", ".join(c.name for c in self.certificates)
        _doc_line(w, f"Theorems that can certify it: {names or 'none (uncertified)'}.")

    # ---- the method -----------------------------------------------------------------------------
    def method(self, w) -> None:
        em = self.em
        w()
        w(f"CONVERGENCE_CONDITIONS = {self._table()}")
        w(f"CONVERGENCE_CERTIFICATES = {self._certificates()}")
        w(f"CONVERGENCE_UNCOVERED = {self._uncovered()}")
        w()
        w(f"def {METHOD}(self, num_layers=None, precision=None):")
        w.indent()
        w('"""Evaluate the convergence conditions on the current parameters, per layer.')
        w()
        w(f"Returns a {self.report_cls}: `.verdict` (certified, violated or uncertified), `.ok`")
        w("(certified), `.failing_layers`, `.network_bound`, `.values`, `str(report)` a table.")
        w("Values are computed on a float64 copy; tolerances follow `precision` (default: the")
        w("network's own dtype). Norms and eigenvalues above size 128 are Krylov estimates from")
        w(f"below (see {self.report_cls}.ritz_values); per-layer norms are computed for all")
        w("layers at once.")
        w('"""')
        w(f"{self.r} = {self.report_cls}")
        w(f"like = {self._call('reference_tensor', 'self')}")
        w("precision = like.dtype if precision is None else precision")
        w("if like.dtype != torch.float64:  # in float64, rounding never undercuts a bound")
        w(f"    return copy.deepcopy(self).double().{METHOD}(num_layers, precision)")
        w("K = self._depth(num_layers)  # past the built depth, layers repeat the last one")
        self.em.check_schedules(w, self.em.condition_schedules("K"), "forward")
        w(f"{self.eps} = torch.finfo(precision).eps")
        if any(_uses_tol(q) for c in self.conditions for q in (c.lhs, c.rhs)):
            w(f"{self.tol} = 10 * {self.eps} ** 0.5")
        w(f"{self.rows} = [[] for _ in self.CONVERGENCE_CONDITIONS]")
        self.spectral = [c for c in self.conditions if isinstance(c.lhs, QSpectral)]
        if self.spectral:
            w(f"{self.chain} = None  # the product of the layers' linear parts, per eigenvalue")
        w("with torch.no_grad():")
        w.indent()
        pr = ExprPrinter(self._name_of)
        self.pr_layers = ExprPrinter(self._stacked_name_of)  # per-layer values stacked
        self.loop_reads: set[str] = set()  # per-layer symbols read inside the layer loop
        self.layer = self.em.ns.fresh("layer")
        self._prelude(w, pr)
        hoisted: dict[str, str] = {}
        self.stacks: dict[str, str] = {}  # per-layer symbol -> its stack over the layers
        self.stacked: dict[str, str] = {}  # code -> name, evaluated for all layers at once
        self.per_layer_values: dict[str, str] = {}
        body = [self._condition_code(c, pr, hoisted) for c in self.conditions]
        for code, name in hoisted.items():
            _assign(w, name, code)
        for sym, stack in self.stacks.items():
            w(f"{stack} = torch.stack([self._layer(k).{self.em.n(sym)} for k in range(K)])")
        for code, name in self.stacked.items():
            _assign(w, name, code)
        for s, init in self._schedule_inits(pr):
            w(f"{s} = torch.as_tensor({init}, dtype=like.dtype, device=like.device)")
        w("for k in range(K):")
        w.indent()
        loop_start = len(w.lines)
        schedule = self._schedule_code(pr)  # before binding: it may read per-layer values
        bound = [s for s in em.per_layer + em.layer_nets if s.name in self.loop_reads]
        if "layer" in self.loop_reads:
            w(f"{em.layer_index} = k  # the layer index `layer`")
        if bound:
            w(f"{self.layer} = self._layer(k)")
            for s in bound:
                w(f"{em.n(s.name)} = {self.layer}.{em.n(s.name)}")
        for code, name in self.per_layer_values.items():
            _assign(w, name, code)
        for i, (c, (lhs, rhs)) in enumerate(zip(self.conditions, body)):
            lhs = self._premised(w, c, lhs)
            # A side computed from a bound (an abstract operator's norm constant, the triangle
            # inequality) proves the condition when it holds, nothing when it fails.
            bounded = ["refutes=False"] if _reads_linop(c) else []
            check = self._call("check", lhs, f'"{c.op}"', rhs, self.eps, *bounded)
            w(f"{self.rows}[{i}].append({check})")
        for c in self.spectral[:1]:
            c0, c1, lams = self.spectral_args[c.key]
            w(f"{self.chain} = {self._call('chain_step', self.chain, c0, c1, lams)}")
        if schedule:
            w(schedule)
        if len(w.lines) == loop_start:
            w("pass  # nothing is evaluated per layer (see CONVERGENCE_UNCOVERED)")
        w.dedent()
        w.dedent()
        chain = self._call("chain_norm", self.chain) if self.spectral else "None"
        shared = bool(self.spectral) and self.an.linear.extra.get("shared", False)
        w(f"return {self.report_cls}(")
        w.indent()
        w("self.SPEC_NAME, self.CONVERGENCE_CONDITIONS, "
          f"{self.rows}, self.CONVERGENCE_CERTIFICATES,")
        w(f"self.CONVERGENCE_UNCOVERED, chain_bound={chain}, shared_fixed_point={shared})")
        w.dedent()
        w.dedent()
        em.helpers |= pr.helpers | self.pr_layers.helpers

    def _premised(self, w, c: Condition, lhs: str) -> str:
        """A bound valid only where its premises (this layer's thresholds, checked above) hold."""
        if not c.premises:
            return lhs
        keys = [x.key for x in self.conditions]
        held = ", ".join(f"{self.rows}[{keys.index(k)}][-1][2]" for k in c.premises
                         if k in keys)
        name = self.em.ns.fresh("bound")
        _assign(w, name, self._call("premised", lhs, f"[{held}]"))
        return name

    def _table(self) -> str:
        if not self.conditions:
            return "()"
        lines = ["("]
        for c in self.conditions:
            head = (c.key, c.kind, c.level, f"{self.p.source_name}:{c.line}")
            lines += ["        (", "            " + ", ".join(repr(f) for f in head) + ","]
            for text in (c.text(), c.theorem):
                lines += [f"            {chunk}" for chunk in _string_lines(text, 84)]
                lines[-1] += ","
            lines.append("        ),")
        return "\n".join(lines + ["    )"])

    def _certificates(self) -> str:
        if not self.certificates:
            return "()"
        lines = ["("]
        for c in self.certificates:
            origin = f"{self.p.source_name}:{c.line}"
            lines += ["        (", f"            {c.name!r}, {origin!r},"]
            lines += [f"            {chunk}" for chunk in _string_lines(c.theorem, 84)]
            lines[-1] += ","
            lines += _tuple_lines(c.keys, "            ")
            lines.append("        ),")
        return "\n".join(lines + ["    )"])

    def _uncovered(self) -> str:
        reasons = list(self.an.uncovered) + [n for n in self.an.notes if "not evaluated" in n
                                             or "no Lipschitz bound" in n]
        if not reasons:
            return "()"
        lines = ["("]
        for text in reasons:
            lines += [f"        {chunk}" for chunk in _string_lines(text, 88)]
            lines[-1] += ","
        return "\n".join(lines + ["    )"])

    def _name_of(self, sym: Sym) -> str:
        em = self.em
        if sym.name in self.per_layer:
            self.loop_reads.add(sym.name)
        if sym.role == "layer":
            return em.layer_index
        if sym.role in ("given", "param"):
            return f"self.{em.n(sym.name)}"
        if sym.role in ("train", "net") and sym.name not in self.per_layer:
            return f"self.{em.n(sym.name)}"
        return em.n(sym.name)

    def _stacked_name_of(self, sym: Sym) -> str:
        """Per-layer trainables as their stack over the layers (leading dimension K)."""
        if sym.role == "train" and sym.name in self.per_layer:
            if sym.name not in self.stacks:
                self.stacks[sym.name] = self.em.ns.fresh(f"{self.em.n(sym.name)}_layers")
            return self.stacks[sym.name]
        return self._name_of(sym)

    def _prelude(self, w, pr: ExprPrinter) -> None:
        """Dimensions and the setup lets the conditions read, in setup order."""
        reads = {s for c in self.conditions for s in _reads(c)}
        # the schedule states' recurrences run in the report too: their lets are needed
        inits = {a.target: a.value for a in self.p.prologue if a.kind == "init"}
        for name, update in self.an.layer.schedule.items():
            reads |= symbols(update) | symbols(inits.get(name, _zero()))
        need = {s.name for s in reads if s.role == "let"}
        lets = []
        for a in reversed(self.p.setup):
            if a.target in need:
                lets.append(a)
                need |= {s.name for s in symbols(a.value) if s.role == "let"}
                reads |= symbols(a.value)
        dims = {s.name for s in reads if s.role == "dim"}
        dims |= {d for s in reads if s.role in ("given", "train") for d in s.type.dims}
        dims |= {d for c in self.conditions for lin in _lins(c) for d in [lin.dim]}
        self.em.bind_dims(w, {n for d in dims for n in dim_names(d)} & self.dims_known,
                           ("given",), "self.")
        for a in reversed(lets):
            w(f"{self.em.n(a.target)} = {self.em.setup_value(pr, a.value)}")

    def _schedule_inits(self, pr):
        inits = {a.target: a.value for a in self.p.prologue if a.kind == "init"}
        return [(self.em.n(s), pr(inits[s])) for s in self.an.layer.schedule]

    def _schedule_code(self, pr) -> str:
        """`t = <t's update>` for the schedule states ('' when there are none)."""
        sched = self.an.layer.schedule
        if not sched:
            return ""
        names = ", ".join(self.em.n(s) for s in sched)
        return f"{names} = {', '.join(pr(v) for v in sched.values())}"

    # ---- quantities -> code ---------------------------------------------------------------------
    def _condition_code(self, c: Condition, pr, hoisted) -> tuple[str, str]:
        return self._q(c.lhs, pr, hoisted), self._q(c.rhs, pr, hoisted)

    def _q(self, q, pr, hoisted, inner=False) -> str:
        if isinstance(q, QExpr) and inner and isinstance(q.expr, Op) and q.expr.op != "neg":
            return self._named(self._q_code(q, pr, hoisted), self._varies(q), hoisted)
        if isinstance(q, QExpr | QTol | QInf | QSum | QProd):
            return self._q_code(q, pr, hoisted)
        # norms: once before the loop when layer-independent, else once per layer
        return self._named(self._q_code(q, pr, hoisted), self._varies(q), hoisted)

    def _named(self, code: str, varies: bool, hoisted) -> str:
        """A local name for `code`, assigned once per layer (or once, when layer-invariant)."""
        if code.isidentifier() or code.endswith("[k]") and code[:-3].isidentifier():
            return code
        table = self.per_layer_values if varies else hoisted
        if code not in table:
            n = len(hoisted) + len(self.stacked) + len(self.per_layer_values)
            table[code] = self.em.ns.fresh(f"q{n}")
        return table[code]

    def _varies(self, q) -> bool:
        return any(s.name in self.per_layer for s in q_symbols(q))

    def _q_code(self, q, pr, hoisted) -> str:  # noqa: C901 - one case per quantity kind
        if isinstance(q, QExpr):
            return pr(q.expr)
        if isinstance(q, QTol):
            return self.tol
        if isinstance(q, QInf):
            return 'float("inf")'
        if isinstance(q, QSum):
            return " + ".join(self._q(x, pr, hoisted, True) for x in q.parts)
        if isinstance(q, QProd):
            return " * ".join(_wrap(self._q(x, pr, hoisted, True)) for x in q.parts)
        if isinstance(q, QBlock):
            if len(q.rows) == 1:
                return self._q(q.rows[0][0], pr, hoisted)
            rows = ", ".join("[" + ", ".join(self._q(x, pr, hoisted, True) for x in row) + "]"
                             for row in q.rows)
            return self._call("block_norm", f"[{rows}]")
        if isinstance(q, QEig):
            rng = self._q_hoist(self._range_code(q.lin, pr), q.lin, hoisted)
            return f"{rng}[{1 if q.which == 'max' else 0}]"
        if isinstance(q, QNorm):
            return self._norm_code(q.lin, pr, hoisted)
        if isinstance(q, QNet):
            return self._call("net_lipschitz", self._name_of(q.net), str(q.arg),
                              format_number(q.act))
        if isinstance(q, QSpectral):
            return self._spectral_code(q, pr, hoisted)
        raise TypeError(f"cannot emit quantity {type(q).__name__}")

    def _spectral_code(self, q: QSpectral, pr, hoisted) -> str:
        """rho over G's spectrum of C0 + C1 lambda; the eigenvalues are computed once."""
        if q.gram:
            lin = Lin(((q.gram, ONE),), None)
            code = self._range_code(lin, pr, "spectrum")
            lams = self._q_hoist(code, lin, hoisted)
        else:
            lams = "(0.0,)"
        c0, c1 = q.matrices()
        m0 = "[" + ", ".join("[" + ", ".join(pr(x) for x in row) + "]" for row in c0) + "]"
        m1 = "[" + ", ".join("[" + ", ".join(pr(x) for x in row) + "]" for row in c1) + "]"
        key = next(c.key for c in self.conditions if c.lhs is q)
        self.spectral_args[key] = (m0, m1, lams)
        return self._call("spectral_radius", m0, m1, lams, str(q.in_range))

    def _q_hoist(self, code: str, lin: Lin, hoisted) -> str:
        if any(s.name in self.per_layer for m, c in lin.terms for e in m for s in symbols(e)):
            return code
        if code not in hoisted:
            hoisted[code] = self.em.ns.fresh(f"q{len(hoisted)}")
        return hoisted[code]

    def _norm_code(self, lin: Lin, pr, hoisted) -> str:
        if lin.identity_only:
            total = None
            for _, c in lin.terms:
                total = c if total is None else Op("add", (total, c), SCALAR)
            return Call("abs", (pr(total),))
        if any(has_linop(m) for m, _ in lin.terms):
            return self._linop_bound(lin, pr)
        parts = dict(lin.terms)
        mono = [m for m in parts if m != ()]
        if len(mono) == 1 and mono[0] == mono_transpose(mono[0]):
            # ||c0 I + c M|| for symmetric M: max over M's eigenvalue range (computed once).
            m = mono[0]
            rng = self._q_hoist(self._range_code(Lin(((m, ONE),), lin.dim), pr),
                                Lin(((m, parts[m]),), lin.dim), hoisted)
            c0 = pr(parts.get((), QExpr(_zero()).expr))
            return self._call("affine_norm", c0, pr(parts[m]), rng)
        res = _resolvent(lin)
        if res is not None:
            # ||c0 I + c inv(G + shift I)|| for symmetric G: from G's eigenvalue range (once).
            c0, c, g, shift = res
            rng = self._q_hoist(self._range_code(Lin(((g, ONE),), lin.dim), pr),
                                Lin(((g, ONE),), lin.dim), hoisted)
            return self._call("resolvent_norm", pr(c0), pr(c), pr(shift), rng)
        n_in = _domain(lin)
        plain = all(_plain(f) for m, _ in lin.terms for f in m)
        reads = {s.name for m, c in lin.terms for e in (c, *m) for s in symbols(e)}
        # schedule states and the layer index are evaluated layer by layer, never stacked
        batchable = not reads & (set(self.an.layer.schedule) | {"layer"})
        if not plain or not batchable or n_in is None or not dim_names(n_in) <= self.dims_known:
            return self._call("opnorm", pr(lin.expr()))
        # matrix-free, every layer at once: products of the factors are never formed
        size = n_in if isinstance(n_in, int) else self.em.dim_name(n_in)
        code = self._call("opnorm_terms", self._terms(lin), str(size), "like")
        if not reads & self.per_layer:
            return self._named(code, False, hoisted)
        if code not in self.stacked:
            n = len(hoisted) + len(self.stacked) + len(self.per_layer_values)
            self.stacked[code] = self.em.ns.fresh(f"q{n}")
        return f"{self.stacked[code]}[k]"

    def _linop_bound(self, lin: Lin, pr) -> str:
        """sum_k |c_k| prod_j ||F_kj||: the triangle inequality and submultiplicativity, with the
        table's norm bound for an abstract operator (diff, grad2d) and opnorm for a matrix."""
        terms = []
        for m, c in lin.terms:
            norms = [format_number(linop_norm(f)) if linop_norm(f) is not None
                     else self._call("opnorm", pr(f)) for f in m]
            terms.append(" * ".join([f"abs({pr(c)})", *norms]))
        return "(" + " + ".join(terms) + ")" if terms else "0.0"

    def _range_code(self, lin: Lin, pr, kind: str = "range") -> str:
        """The eigenvalue range of a symmetric operator; B.T @ B from B alone (matrix-free).
        kind="spectrum": its eigenvalues instead (gram_spectrum, eig_spectrum)."""
        if any(has_linop(m) for m, _ in lin.terms):
            # an interval that contains the spectrum: [0, bound] for K^T K (PSD), else +-bound
            bound = self._linop_bound(lin, pr)
            psd = len(lin.terms) == 1 and lin.terms[0][1] == ONE and mono_psd(lin.terms[0][0])
            return f"({'0.0' if psd else f'-{bound}'}, {bound})"
        if len(lin.terms) == 1 and lin.terms[0][1] == ONE:
            m = lin.terms[0][0]
            if len(m) == 2 and isinstance(m[1], Sym) and m[0] == mono_transpose(m[1:])[0]:
                return self._call(f"gram_{kind}", pr(m[1]))
        return self._call(f"eig_{kind}", pr(lin.expr()))

    def _terms(self, lin: Lin) -> str:
        """`[(c, F1, ..., Fr), ...]`: the operator as sum of c * F1 @ ... @ Fr (stacked)."""
        pr = self.pr_layers
        items = [", ".join([pr(c)] + [pr(f) for f in m]) + ("," if not m else "")
                 for m, c in lin.terms]
        return "[" + ", ".join(f"({x})" for x in items) + "]"

    def _call(self, helper: str, *args: str) -> Call:
        """`report.helper(args)`, a call of the report class's evaluation helper `helper`
        (recorded: the module carries the helpers its report calls)."""
        self.calls.add(helper)
        return Call(f"{self.r}.{helper}", args)

    # ---- the classes at module level ------------------------------------------------------------
    def tail(self, w) -> None:
        w()
        w()
        source = runtime_source({"ConvergenceReport": self.report_cls,
                                 "ConvergenceCondition": self.cond_cls})
        # Only the evaluation helpers this module's report calls (and what they call) are
        # written: a module without nets or ADMM-type operators carries no code for them.
        for line in prune_helpers(source, self.report_cls, self.calls).splitlines():
            w(line)


def runtime_source(names: dict[str, str] | None = None) -> str:
    """The source of unfoldc/runtime/report.py's two classes, as a generated module carries it:
    copied verbatim (read as text, never imported: `unfoldc compile` does not import torch),
    the class names replaced (whole words, docstrings included) where the module's namespace
    gave them other names."""
    text = _runtime_classes()
    for old, new in (names or {}).items():
        text = re.sub(rf"\b{old}\b", new, text)
    return text


@functools.lru_cache(maxsize=1)
def _runtime_classes() -> str:
    origin = importlib.util.find_spec("unfoldc.runtime.report").origin
    source = Path(origin).read_text(encoding="utf-8")
    tree = ast.parse(source)
    classes = [ast.get_source_segment(source, node) for node in tree.body
               if isinstance(node, ast.ClassDef)]
    return "\n\n\n".join(classes)


HELPERS_MARK = "# ---- evaluation helpers"


def prune_helpers(source: str, report_cls: str, used: set[str]) -> str:
    """`source` without the report class's evaluation helpers that `used` does not reach.

    Helpers are the methods after HELPERS_MARK; one reaches another through `cls.name`.
    """
    tree = ast.parse(source)
    report = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == report_cls)
    lines = source.splitlines()
    mark = next(i for i, line in enumerate(lines) if HELPERS_MARK in line) + 1
    helpers = {n.name: n for n in report.body
               if isinstance(n, ast.FunctionDef) and n.lineno > mark}
    calls = {name: {a.attr for a in ast.walk(node) if isinstance(a, ast.Attribute)
                    and isinstance(a.value, ast.Name) and a.value.id == "cls"}
             for name, node in helpers.items()}
    keep, todo = set(), [name for name in used if name in helpers]
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(c for c in calls[name] if c in helpers)
    drop = set()
    for name, node in helpers.items():
        if name not in keep:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            drop.update(range(first - 2, node.end_lineno))  # with the blank line above
    return "\n".join(line for i, line in enumerate(lines) if i not in drop)


def _resolvent(lin: Lin):
    """(c0, c, G, shift) when lin = c0 I + c inv(G + shift I) with G a symmetric product."""
    from unfoldc.convergence.linear import lin_of_matrix

    parts = dict(lin.terms)
    mono = [m for m in parts if m != ()]
    if len(mono) != 1 or len(mono[0]) != 1 or not isinstance(mono[0][0], Op) \
            or mono[0][0].op != "inv":
        return None
    inner = lin_of_matrix(mono[0][0].args[0], lin.dim)
    if inner is None:
        return None
    inner = inner.simplified()
    g = [m for m, _ in inner.terms if m != ()]
    if len(g) != 1 or g[0] != mono_transpose(g[0]) or inner.coef(g[0]) != ONE:
        return None
    return parts.get((), _zero()), parts[mono[0]], g[0], inner.coef(())


def _uses_tol(q) -> bool:
    """Whether a quantity reads the coupling tolerance (the report defines `tol` only then)."""
    if isinstance(q, QTol):
        return True
    if isinstance(q, QSum | QProd):
        return any(_uses_tol(p) for p in q.parts)
    if isinstance(q, QBlock):
        return any(_uses_tol(x) for row in q.rows for x in row)
    return False


class Call(str):
    """The code of a call `head(args...)`, which keeps its pieces: `_assign` wraps it at its
    arguments, never by splitting the text."""

    head: str
    args: tuple[str, ...]

    def __new__(cls, head: str, args: tuple[str, ...]) -> Call:
        code = super().__new__(cls, f"{head}({', '.join(args)})")
        code.head, code.args = head, tuple(args)
        return code


def _assign(w, name: str, code: str) -> None:
    """`name = code`, with a call's arguments one per line when it would pass 100 columns."""
    if isinstance(code, Call):
        call_lines(w, f"{name} = {code.head}", list(code.args))
    else:
        w(f"{name} = {code}")


def _tuple_lines(keys, indent: str) -> list[str]:
    """`repr(tuple(keys)),` on one line, or one key a line when that passes 100 columns."""
    one = f"{indent}{tuple(keys)!r},"
    if len(one) <= 100:
        return [one]
    return [f"{indent}("] + [f"{indent}    {k!r}," for k in keys] + [f"{indent}),"]


def _string_lines(text: str, width: int) -> list[str]:
    """repr(text) split at spaces into adjacent literals of at most `width` columns."""
    chunks, cur = [], ""
    for word in text.split(" "):
        piece = word if not cur else " " + word
        if cur and len(repr(cur + piece)) > width:
            chunks.append(cur + " ")
            cur = word
        else:
            cur += piece
    return [repr(c) for c in chunks + [cur]]


def _plain(f) -> bool:
    """A stored matrix (or its transpose): cheap to apply inside power iteration."""
    return isinstance(f, Sym) or (isinstance(f, Op) and f.op == "transpose"
                                  and isinstance(f.args[0], Sym))


def _domain(lin: Lin):
    """The size of the vectors the operator acts on."""
    for m, _ in lin.terms:
        if m:
            t = m[-1].type
            return t.dims[1] if t.kind == "matrix" else None
    return lin.dim


def _wrap(code: str) -> str:
    return f"({code})" if " + " in code or " - " in code else code


def _zero():
    from unfoldc.ir.expr import Const

    return Const(0.0)


def _reads(c: Condition) -> set[Sym]:
    return q_symbols(c.lhs) | q_symbols(c.rhs)


def _prints_eye(lin: Lin) -> bool:
    """Whether evaluating the operator builds its identity `eye(dim)` (an identity term beside
    matrix terms; identity-only operators and bounds of abstract operators never do)."""
    monos = [m for m, _ in lin.terms]
    return () in monos and any(monos) and not any(has_linop(m) for m in monos)


def _lins(c: Condition):
    out = []

    def visit(q):
        if isinstance(q, QNorm | QEig):
            out.append(q.lin)
        for p in getattr(q, "parts", ()):
            visit(p)
        for row in getattr(q, "rows", ()):
            for x in row:
                visit(x)
    visit(c.lhs)
    visit(c.rhs)
    return out


def _doc_line(w, text: str) -> None:
    """One docstring entry, wrapped at 100 columns (continuations indented). User text (file
    names, spec text) is escaped by codegen/text.py's `docstring` before wrapping: escapes hold
    no spaces, so wrapping never splits one."""
    lines = textwrap.wrap(docstring(text), 100 - 4 * w.depth - 4, subsequent_indent="    ",
                          break_long_words=False, break_on_hyphens=False)
    for line in lines:
        w(f"    {line}")



def _reads_linop(c: Condition) -> bool:
    """Whether a side of `c` reads an abstract linear operator (diff, grad2d): its norm is the
    table's bound, not the value."""
    return any(s.role == LINOP for q in (c.lhs, c.rhs) for s in q_symbols(q))

__all__ = ["ConvergenceEmitter", "METHOD", "format_number"]
