"""Construction code for learned sub-networks (the classes are in codegen/helpers.py)."""

from __future__ import annotations

from unfoldc.ir.program import Symbol


def helpers_for(sym: Symbol) -> set[str]:
    """Helper definitions the generated file needs for this net."""
    cls = "mlp" if sym.net.arch == "mlp" else "convnet"
    return {cls, "init_layers", "activations"}


def construct(sym: Symbol, dim) -> str:
    """The expression building `sym`'s module, in __init__ (dims are local ints there)."""
    spec = sym.net
    flags = [f'act="{spec.act}"'] if spec.act != "relu" else []
    flags += [f"{k}=True" for k in ("residual", "zero_last") if getattr(spec, k)]
    common = ", ".join(flags + ["generator=generator"])
    if spec.arch == "mlp":
        sizes = ", ".join(dim(d) for d in spec.inputs) + ("," if len(spec.inputs) == 1 else "")
        return (f"MLP(({sizes}), {dim(spec.outputs[0])}, hidden={tuple(spec.hidden)!r}, "
                f"{common}).to(like)")
    d = 1 if spec.arch == "conv1d" else 2
    n_in = len(spec.inputs) // d
    return (f"ConvNet({d}, {n_in}, channels={spec.channels}, kernel={spec.kernel}, "
            f"depth={spec.depth}, {common}).to(like)")


def dims_of(sym: Symbol) -> set:
    """Dimensions the construction reads."""
    return {d for d in sym.net.inputs + sym.net.outputs if isinstance(d, str)}
