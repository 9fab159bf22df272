"""The iteration graph: a networkx view of the program that users inspect.

Nodes are the declared symbols, the assignments of each phase and the outputs; `data` edges go
from the node that computes a value to the nodes that read it within one iteration, and `carry`
edges are loop-carried: from a state's last update in the body to its readers at the start of
the next layer (so a rolled graph has a cycle per state). `unroll(program, K)` lays out K
layers, with per-layer trainables as separate nodes per layer.

Node attributes: kind, label, shape, line, phase, layer, hoisted, per_layer (see
unfoldc/graphs/ for the formats that draw them).
"""

from __future__ import annotations

import networkx as nx

from unfoldc.ir.expr import symbols
from unfoldc.ir.pretty import pretty
from unfoldc.ir.program import Assign, Program, Symbol
from unfoldc.limits import GRAPH_NODE_BYTES, MAX_GRAPH_NODES, MAX_LAYERS

_DECL_PHASE = {"given": "setup", "param": "setup", "train": "setup", "let": "setup",
               "input": "prologue", "state": "prologue"}


def _symbol_node(g: nx.DiGraph, s: Symbol, node_id: str, layer=None) -> None:
    phase = "layer" if s.per_layer else _DECL_PHASE.get(s.role, "setup")
    periodic = f" periodic {s.period}" if s.period is not None else ""
    g.add_node(node_id, kind=s.role, label=f"{s.name} : {s.type}{periodic}", shape=str(s.type),
               line=s.line, phase=phase, layer=layer,
               hoisted=False, per_layer=s.per_layer)


def _assign_node(g: nx.DiGraph, a: Assign, node_id: str, phase: str, layer=None,
                 state_type: str = "") -> None:
    arrow = "<-" if a.kind == "update" else "="
    kind = {"update": "update", "temp": "temp", "hoisted": "temp", "init": "state",
            "let": "let"}[a.kind]
    label = f"{a.target} {arrow} {pretty(a.value)}"
    shape = str(a.type)
    if a.kind == "init":
        label = f"{a.target}_0 = {pretty(a.value)}"
        shape = state_type
    g.add_node(node_id, kind=kind, label=label, shape=shape, line=a.line, phase=phase,
               layer=layer, hoisted=a.kind == "hoisted", per_layer=False)


class GraphTooLarge(ValueError):
    """An unrolled graph above the limits of unfoldc/limits.py (refused before it is built)."""


def graph_size(program: Program, unroll: int | None = None) -> int:
    """The number of nodes `build_graph(program, unroll)` makes, without building it."""
    static = [s for s in program.symbols
              if s.role in ("given", "input", "param") or (s.role == "train" and not s.per_layer)]
    layers = 1 if unroll is None else unroll
    # one node per layer for each per-layer trainable, but a `periodic T` one has T at most
    copies = sum(s.copies(layers) for s in program.symbols if s.role == "train" and s.per_layer)
    fixed = len(static) + len(program.setup) + len(program.prologue) + len(program.outputs)
    return fixed + len(program.body) * layers + copies


def check_unroll(program: Program, unroll: int) -> None:
    """Raise GraphTooLarge when `unroll` layers pass MAX_LAYERS or the graph MAX_GRAPH_NODES."""
    nodes = graph_size(program, unroll)
    if unroll <= MAX_LAYERS and nodes <= MAX_GRAPH_NODES:
        return
    fixed, per_layer = graph_size(program, 0), graph_size(program, 1) - graph_size(program, 0)
    most = min(MAX_LAYERS, max(1, (MAX_GRAPH_NODES - fixed) // max(per_layer, 1)))
    mib = nodes * GRAPH_NODE_BYTES / 2**20
    raise GraphTooLarge(f"--unroll {unroll} would make a graph of {nodes:,} nodes (about "
                        f"{mib:,.0f} MiB); unfoldc unrolls at most {MAX_LAYERS} layers and "
                        f"{MAX_GRAPH_NODES:,} nodes: use --unroll {most} or fewer")


class _Builder:
    def __init__(self, program: Program, layers: int | None):
        self.p = program
        self.g = nx.DiGraph(name=program.name, num_layers=program.num_layers,
                            spec=program.source_name, unrolled=layers)
        self.static: dict[str, str] = {}  # name -> node computing it before the loop

    def declarations(self) -> None:
        for s in self.p.symbols:
            if s.role in ("given", "input", "param") or (s.role == "train" and not s.per_layer):
                _symbol_node(self.g, s, s.name)
                self.static[s.name] = s.name
        for phase, assigns in (("setup", self.p.setup), ("prologue", self.p.prologue)):
            for a in assigns:
                node = f"init:{a.target}" if a.kind == "init" else a.target
                shape = str(self.p.symbol(a.target).type) if a.kind == "init" else ""
                _assign_node(self.g, a, node, phase, state_type=shape)
                self._edges(a, node, self.static)
                if a.kind != "init":
                    self.static[a.target] = node

    def _edges(self, a: Assign, node: str, scope: dict[str, str], carry=None) -> None:
        for s in sorted({x.name for x in symbols(a.value) if x.role != "dim"}):
            if s in scope:
                self.g.add_edge(scope[s], node, kind="data")
            elif carry is not None and s in carry:
                for src, kind in carry[s]:
                    self.g.add_edge(src, node, kind=kind)

    def layer(self, k: int | None, entry: dict[str, list]) -> dict[str, list]:
        """Add one layer's statements; `entry` says where each state comes from at its top."""
        prefix = "" if k is None else f"L{k}:"
        scope = dict(self.static)
        for s in self.p.symbols:
            if s.role == "train" and s.per_layer and k is not None and s.period is not None \
                    and k >= s.period:  # layer k reads the copy of layer k mod T
                scope[s.name] = f"L{k % s.period}:{s.name}"
            elif s.role == "train" and s.per_layer:
                _symbol_node(self.g, s, prefix + s.name, layer=k)
                scope[s.name] = prefix + s.name
        for i, a in enumerate(self.p.body):
            node = f"{prefix}{i}:{a.target}"
            _assign_node(self.g, a, node, "layer", layer=k)
            self._edges(a, node, scope, entry)
            scope[a.target] = node
        return {s.name: [(scope[s.name], "carry")] for s in self.p.by_role("state")
                if scope.get(s.name, "").startswith(prefix) and s.name in scope}

    def outputs(self, last: dict[str, list]) -> None:
        for o in self.p.outputs:
            node = f"out:{o}"
            self.g.add_node(node, kind="output", label=f"output {o}", shape=str(
                self.p.symbol(o).type), line=0, phase="epilogue", layer=None, hoisted=False,
                per_layer=False)
            for src, _ in last.get(o, [(self.static.get(o, f"init:{o}"), "data")]):
                self.g.add_edge(src, node, kind="data")


def build_graph(program: Program, unroll: int | None = None) -> nx.DiGraph:
    """The iteration graph of `program`, rolled (one layer, carry cycles) or unrolled K times.

    Raises:
        GraphTooLarge: K above the limits (checked before anything is built).
    """
    if unroll is not None:
        check_unroll(program, unroll)
    b = _Builder(program, unroll)
    b.declarations()
    entry = {s.name: [(f"init:{s.name}", "data")] for s in program.by_role("state")}
    if unroll is None:
        last = {a.target: f"{i}:{a.target}" for i, a in enumerate(program.body)
                if a.kind == "update"}
        for name, node in last.items():  # first layer reads the initial value, later ones this
            entry[name] = entry[name] + [(node, "carry")]
        carried = b.layer(None, entry)
        b.outputs({n: [(src, "data") for src, _ in v] for n, v in carried.items()})
        return b.g
    for k in range(unroll):
        out = b.layer(k, entry)
        entry = {n: v for n, v in entry.items() if n not in out} | out
    b.outputs({n: [(src, "data") for src, _ in v] for n, v in entry.items()})
    return b.g
