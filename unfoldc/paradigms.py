"""The paradigm report: what a spec declares, what it learns, and how many parameters.

Trainables are classified into the four design paradigms of deep unfolding (Shlezinger et al.,
"Deep Unfolding: Recent Developments, Theory, and Design Guidelines", 2025):
    hyperparameters    scalar step sizes, thresholds, penalties (paradigm 1)
    objective params   anything read by a declared `func`, learned copies of a given operator
                       (init exactly a `given`, e.g. `Hk = H`), and vector weights (paradigm 2)
    correction terms   learned nets added to a classical update, `... + psi(s)` (paradigm 3)
    learned operators  free matrices (LISTA's W1, W2) and nets that replace a step, `D(...)`
                       (paradigm 4, DNN inductive bias)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from unfoldc.ir.expr import Expr, Op, Sym, symbols, walk
from unfoldc.ir.program import Program, Symbol

GROUPS = ("hyperparameters", "objective parameters", "correction terms", "learned operators")


@dataclass(frozen=True)
class Row:
    name: str
    role: str
    shape: str
    sharing: str
    paradigm: str
    count: int | None  # trainable parameters (all layers); None if not trainable


@dataclass(frozen=True)
class Report:
    name: str
    source: str
    num_layers: int
    dims: dict
    rows: tuple[Row, ...]

    def by_group(self) -> dict[str, int | None]:
        """Parameter count per paradigm (None when a dimension is unknown)."""
        out: dict[str, int | None] = {}
        for r in self.rows:
            if r.paradigm in GROUPS:
                prev = out.get(r.paradigm, 0)
                out[r.paradigm] = None if prev is None or r.count is None else prev + r.count
        return out

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "groups": self.by_group()}, indent=2, sort_keys=True)

    def __str__(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in sorted(self.dims.items())) or "none given"
        head = [f"{self.name} ({self.source}): {self.num_layers} layers; dims: {dims}", ""]
        table = [("symbol", "role", "shape", "sharing", "paradigm", "parameters")]
        table += [(r.name, r.role, r.shape, r.sharing, r.paradigm,
                   _num(r.count) if r.paradigm != "-" else "-") for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(6)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
        groups = self.by_group()
        tail = ["", "trainable parameters by paradigm:"]
        tail += [f"  {g:<22} {_num(groups[g])}" for g in GROUPS if g in groups]
        total = None if None in groups.values() else sum(groups.values())
        tail.append(f"  {'total':<22} {_num(total)}")
        return "\n".join(head + lines + tail) + "\n"


def _num(n) -> str:
    if n is None:
        return "?"
    return f"{n:,}" if isinstance(n, int) else str(n)


def _size(dims: tuple, known: dict) -> int | None:
    sizes = [d if isinstance(d, int) else known.get(d) for d in dims]
    return None if None in sizes else math.prod(sizes)


def _net_params(sym: Symbol, known: dict) -> int | None:
    sizes = [d if isinstance(d, int) else known.get(d) for d in sym.net.inputs + sym.net.outputs]
    if sym.net.arch == "mlp" and None in sizes:
        return None
    return sym.net.parameter_count(lambda d: d if isinstance(d, int) else known[d])


def _parents(body_exprs: list[Expr]) -> dict[int, list[Op]]:
    parents: dict[int, list[Op]] = {}
    for e in body_exprs:
        for node in walk(e):
            if isinstance(node, Op):
                for a in node.args:
                    parents.setdefault(id(a), []).append(node)
    return parents


def _net_paradigm(name: str, program: Program) -> str:
    exprs = [a.value for a in program.body]
    parents = _parents(exprs)
    uses = [n for e in exprs for n in walk(e) if isinstance(n, Op) and n.op == "net"
            and n.args[0].name == name]
    additive = uses and all(any(p.op in ("add", "sub") for p in parents.get(id(u), []))
                            for u in uses)
    return "correction terms" if additive else "learned operators"


def classify(s: Symbol, program: Program) -> str:
    """The paradigm a trainable or net belongs to (see the module docstring)."""
    if s.role == "net":
        return _net_paradigm(s.name, program)
    in_funcs = any(s.name in {x.name for x in symbols(body)} for _, body in program.functions)
    if in_funcs:
        return "objective parameters"
    if s.type.kind == "matrix":
        given = isinstance(s.init, Sym) and s.init.role == "given"
        return "objective parameters" if given else "learned operators"
    if s.type.kind == "vector":
        return "objective parameters"
    return "hyperparameters"


def report(program: Program, dims: dict | None = None, num_layers: int | None = None) -> Report:
    """The paradigm report of `program` for the given dimension sizes and depth."""
    known = dict(dims or {})
    k = num_layers or program.num_layers
    rows = []
    for s in program.symbols:
        shape = str(s.type) if s.role != "net" else _net_shape(s)
        if s.role in ("train", "net"):
            one = _size(s.type.dims, known) if s.role == "train" else _net_params(s, known)
            count = None if one is None else one * s.copies(k)
            sharing = "shared" if not s.per_layer else \
                "per_layer" if s.period is None else f"periodic {s.period}"
            rows.append(Row(s.name, s.role, shape, sharing, classify(s, program), count))
        else:
            rows.append(Row(s.name, s.role, shape, "-", "-", None))
    return Report(program.name, program.source_name, k, known, tuple(rows))


def _net_shape(s: Symbol) -> str:
    spec = s.net
    ins = ", ".join(map(str, spec.inputs))
    outs = ", ".join(map(str, spec.outputs))
    return f"{spec.arch}[{ins} -> {outs}]"


def parse_dims(text: str) -> dict[str, int]:
    """`m=250,n=500` -> {'m': 250, 'n': 500}; raises ValueError on malformed input."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip().isidentifier() or not value.strip().isdigit():
            raise ValueError(f"expected NAME=INTEGER, found {part!r}")
        out[key.strip()] = int(value)
    return out
