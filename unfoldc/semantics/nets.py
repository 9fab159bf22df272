"""Learned sub-networks: `net` declarations and their calls.

    net psi : mlp[n -> n](hidden = [64], act = relu) per_layer zero_last
    net D   : mlp[n, m -> n](hidden = [128, 128]) shared residual zero_last
    net C   : conv1d[n -> n](channels = 16, kernel = 5, depth = 3) per_layer residual
    net P   : conv2d[h, w -> h, w](channels = 32, kernel = 3, depth = 4) shared residual

mlp: one vector argument per input size, concatenated; output a vector. conv1d: vector
arguments of one length, stacked as channels; conv2d: matrix arguments (images), one per
(h, w) pair, stacked as channels. `residual` adds the first argument to the output; `zero_last`
starts the last layer at zero, so that an untrained net returns 0 (or, residual, its input).
"""

from __future__ import annotations

from dataclasses import replace

from unfoldc.ir.expr import Op, Sym
from unfoldc.ir.program import NetSpec, Symbol
from unfoldc.ir.types import Type
from unfoldc.syntax import nodes

ARCHS = ("mlp", "conv1d", "conv2d")
ACTIVATIONS = {"relu": 1.0, "tanh": 1.0, "sigmoid": 0.25, "gelu": 1.13, "elu": 1.0,
               "softplus": 1.0}  # Lipschitz constant of each (for the convergence bounds)
_OPTIONS = {"mlp": {"hidden", "act"}, "conv1d": {"channels", "kernel", "depth", "act"},
            "conv2d": {"channels", "kernel", "depth", "act"}}


def net_type(spec: NetSpec) -> Type:
    """The type of a net symbol: its signature, read by the `net` operator's shape rule."""
    return Type("net", (spec.arch, *spec.inputs, "->", *spec.outputs))


def declare_net(ck, d: nodes.NetDecl) -> Symbol | None:
    """Check a `net` declaration; returns its symbol (None after reporting errors)."""
    if d.arch not in ARCHS:
        ck.error("E0309", f"unknown network architecture `{d.arch}`", d.arch_span,
                 "not an architecture", help="use one of: " + ", ".join(ARCHS))
        return None
    ins = tuple(x.value for x in d.inputs)
    outs = tuple(x.value for x in d.outputs)
    spec = NetSpec(d.arch, ins, outs, residual="residual" in d.flags,
                   zero_last="zero_last" in d.flags)
    spec = _options(ck, d, spec)
    if spec is None or not _signature_ok(ck, d, spec):
        return None
    return Symbol(d.name, "net", net_type(spec), d.span.line, d.name_span, d.per_layer,
                  net=spec)


def _options(ck, d: nodes.NetDecl, spec: NetSpec) -> NetSpec | None:
    ok = True
    for key, value, span in d.options:
        if key not in _OPTIONS[d.arch]:
            ck.error("E0309", f"`{d.arch}` has no option `{key}`", span, "unknown option",
                     help="options: " + ", ".join(sorted(_OPTIONS[d.arch])))
            ok = False
        elif key == "act" and value not in ACTIVATIONS:
            ck.error("E0309", f"unknown activation `{value}`", span, "not an activation",
                     help="use one of: " + ", ".join(ACTIVATIONS))
            ok = False
        elif key == "hidden" and not (isinstance(value, tuple) and all(v > 0 for v in value)):
            ck.error("E0309", "`hidden` is a list of layer widths, e.g. `hidden = [64, 64]`",
                     span, "not a list of widths")
            ok = False
        elif key in ("channels", "kernel", "depth") and not (isinstance(value, int) and
                                                             value > 0):
            ck.error("E0309", f"`{key}` must be a positive integer", span, "not positive")
            ok = False
        elif key == "kernel" and value % 2 == 0:
            ck.error("E0309", "the kernel size must be odd (outputs keep the input size)",
                     span, "even kernel", help=f"use {value + 1}")
            ok = False
        else:
            spec = replace(spec, **{key: value})
    return spec if ok else None


def _signature_ok(ck, d: nodes.NetDecl, spec: NetSpec) -> bool:
    want = {"mlp": (None, 1), "conv1d": (None, 1), "conv2d": (2, 2)}[d.arch]
    per_input, n_out = want
    if len(spec.outputs) != n_out or (per_input and len(spec.inputs) % per_input):
        shape = "`[h, w -> h, w]` (one h, w pair per image)" if d.arch == "conv2d" else \
            "`[n -> n]` (one size per input vector, one output size)"
        ck.error("E0309", f"`{d.arch}` signatures look like {shape}", d.span,
                 "bad signature")
        return False
    if d.arch == "conv1d" and any(i != spec.outputs[0] for i in spec.inputs):
        ck.error("E0309", "conv1d keeps the signal length: inputs and output must have one "
                 "size", d.span, "sizes differ")
        return False
    if d.arch == "conv2d" and any(spec.inputs[i:i + 2] != spec.outputs
                                  for i in range(0, len(spec.inputs), 2)):
        ck.error("E0309", "conv2d keeps the image size: every input must be h x w like the "
                 "output", d.span, "sizes differ")
        return False
    return True


def call_net(ck, sym: Symbol, e: nodes.Call, args: list) -> Op | None:
    """`psi(a, b)`: check the arguments against the signature; the `net` operator."""
    spec = sym.net
    kind = "matrix" if spec.arch == "conv2d" else "vector"
    expected = spec.inputs if kind == "vector" else [
        spec.inputs[i:i + 2] for i in range(0, len(spec.inputs), 2)]
    if len(args) != len(expected):
        ck.error("E0303", f"`{sym.name}` takes {len(expected)} argument"
                 f"{'s' * (len(expected) != 1)}, found {len(args)}", e.span)
        return None
    for a, want, node in zip(args, expected, e.args):
        dims = want if kind == "matrix" else (want,)
        if a.type.kind != kind:
            ck.error("E0306", f"`{sym.name}` is a {spec.arch}: it takes a {kind}, found a "
                     f"{a.type}", node.span, f"a {a.type}",
                     help="conv2d works on images (matrices), mlp and conv1d on vectors")
            return None
        if not all(ck.dims.unify(x, y) for x, y in zip(a.type.dims, dims)):
            ck.error("E0302", f"`{sym.name}` expects a {kind}[{', '.join(map(str, dims))}], "
                     f"found a {ck.dims.resolve(a.type)}", node.span, "size differs")
            return None
    net = Sym(sym.name, sym.type, "net", sym.per_layer)
    out = (Type("matrix", spec.outputs) if kind == "matrix" else Type("vector", spec.outputs))
    return Op("net", (net, *args), out.with_batched(any(a.type.batched for a in args)))
