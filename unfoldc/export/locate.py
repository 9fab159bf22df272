"""Where in the spec an export failed: from a traced operator back to the `.unf` line.

Both exporters report failures on the traced program: torch.export with a traceback through
the generated module, torch.onnx with the fx node it could not translate (whose
`meta["stack_trace"]` names the generated lines that created it). Generated code carries an
origin comment `# spec.unf:LINE: ...` above the code of every spec line, so the innermost
generated line under such a comment gives the spec line; the column is the spec operator the
failing torch operator comes from, when its name says so (`solve` for `aten._linalg_solve_ex`).
"""

from __future__ import annotations

import re
import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from unfoldc.ops import OPS
from unfoldc.source import Source, Span

_FRAME = re.compile(r'File "(<unfoldc:[^"]*>)", line (\d+)')
_ORIGIN = re.compile(r"^\s*# .+?:(\d+)(?::|$)")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
# How torch.onnx says that no ONNX function translates an operator (a DispatchError).
_NO_ONNX_FUNCTION = "No ONNX function found"
_SPELLINGS = frozenset(op.spelling for op in OPS.values())


class ExportError(Exception):
    """A network that cannot be exported; a user error, located in the spec when known.

    Attributes:
        message: what is wrong (lowercase, identifiers in backticks).
        source: the spec's source, when `span` points into it.
        span: where in the spec (None: not traced back to a spec line).
        label: the text under the caret.
        help: how to get around it.
        notes: what the exporter said, when the message does not say it all.
    """

    def __init__(self, message: str, source: Source | None = None, span: Span | None = None,
                 label: str = "", help: str = "", notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.message, self.source, self.span = message, source, span
        self.label, self.help, self.notes = label, help, notes


def locate(exc: BaseException, model, inputs: tuple, stage: str) -> ExportError:
    """An `ExportError` for exporter failure `exc` on `model`, at the spec line when known.

    Args:
        exc: what torch.export or torch.onnx raised.
        model: the network being exported (its class carries the compiler's artifacts).
        inputs: the example inputs it was traced with (replayed to find a failed operator).
        stage: the exporter that failed, "torch.export" or "torch.onnx".
    """
    art = type(model).artifacts
    node = _failed_node(exc)
    target = _op_name(node.target) if node is not None else ""
    what = f"`{target}`" if target else "an operation"
    detail = _first_line(exc)
    missing = stage == "torch.onnx" and _NO_ONNX_FUNCTION in detail
    why = "ONNX has no operator for it" if missing else f"{stage} cannot convert it"
    notes = () if missing else (f"{stage}: {detail}",)
    frames = _replay(model, inputs, node) + _generated_frames(exc, node)
    for k, (filename, line, _) in enumerate(frames):
        spec_line = _spec_line(art.code, line) if filename.endswith(_suffix(art)) else None
        if spec_line is not None:
            callees = [name for _, _, name in frames[:k]]
            span, construct = _span(art.source, spec_line, callees, target)
            message = f"cannot export {construct or what}: {why}"
            label = f"lowers to {what}" if target else ""
            return ExportError(message, art.source, span, label, _help(stage), notes)
    return ExportError(f"cannot export {what}: {why}", help=_help(stage),
                       notes=(f"{stage}: {detail}",))


def _help(stage: str) -> str:
    if stage == "torch.onnx":
        return ("export with --format pt2 (torch.export keeps every torch operator), or write "
                "the step without this operator")
    return "the forward pass must be traceable by torch.export (docs/generated-module.md)"


def _suffix(art) -> str:
    return f":{art.optimized.source_sha256[:12]}>"


def _failed_node(exc: BaseException) -> torch.fx.Node | None:
    """The fx node the ONNX exporter was translating when it failed (its frames hold it)."""
    found = None
    for err in _chain(exc):
        tb = err.__traceback__
        while tb is not None:
            node = tb.tb_frame.f_locals.get("node")
            if isinstance(node, torch.fx.Node):
                found = node  # the innermost frame that has one
            tb = tb.tb_next
    return found


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


Frame = tuple[str, int, str]  # (file, line, function), of generated code


def _replay(model, inputs: tuple, node) -> list[Frame]:
    """The generated frames, innermost first, that call the failed node's operator eagerly.

    The exporter records where a node was made only as far as the network's `forward`, not in
    the layer function or helpers it calls; running the network again and stopping at the
    operator's first call gives the whole stack.
    """
    if node is None or not isinstance(node.target, torch._ops.OpOverload):
        return []
    wanted = node.target.overloadpacket

    class Stop(Exception):
        pass

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if getattr(func, "overloadpacket", None) is wanted:
                raise Stop(traceback.extract_stack())
            return func(*args, **(kwargs or {}))

    try:
        with torch.no_grad(), Watch():
            model(*inputs)
    except Stop as stop:
        return [(f.filename, f.lineno, f.name) for f in reversed(stop.args[0])
                if f.filename.startswith("<unfoldc:")]
    except Exception:  # noqa: BLE001 - a replay that fails otherwise says nothing more
        return []
    return []


def _generated_frames(exc: BaseException, node) -> list[Frame]:
    """Generated frames, innermost first: the node's recorded stack, then the tracebacks."""
    frames = []
    if node is not None:
        trace = node.meta.get("stack_trace") or ""
        frames += [(f, int(n), "") for f, n in reversed(_FRAME.findall(trace))]
    for err in _chain(exc):
        stack = [(f.filename, f.lineno, f.name) for f in traceback.extract_tb(err.__traceback__)]
        frames += [f for f in reversed(stack) if f[0].startswith("<unfoldc:")]
    return frames


def _spec_line(code: str, line: int) -> int | None:
    """The spec line whose origin comment heads the statement at generated `line`."""
    lines = code.split("\n")
    for text in reversed(lines[:max(line - 1, 0)]):
        match = _ORIGIN.match(text)
        if match:
            return int(match.group(1))
        stripped = text.strip()
        if not stripped or stripped.startswith(("def ", "class ", '"""', "# --")):
            return None
    return None


def _span(source: Source, line: int, callees: list[str], target: str) -> tuple[Span, str]:
    """The span of the spec operator that failed on `line`, and its name in backticks.

    That operator is a generated helper the failing code ran inside (`svt`), or else one whose
    name the torch operator's contains (`solve` in `aten._linalg_solve_ex`); with neither, the
    whole statement.
    """
    text = source.line_text(line).split("#", 1)[0].rstrip()
    calls = [m for m in _CALL.finditer(text) if m.group(1) in _SPELLINGS]
    found = next((m for m in calls if m.group(1) in callees), None) or next(
        (m for m in calls if target and m.group(1) in target), None)
    if found is not None:
        return Span(line, found.start(1) + 1, line, found.end(1) + 1), f"`{found.group(1)}`"
    start = len(text) - len(text.lstrip())
    return Span(line, start + 1, line, len(text) + 1), ""


def _op_name(target) -> str:
    """`aten._linalg_solve_ex` for torch.ops.aten._linalg_solve_ex.default."""
    name = getattr(target, "name", None)
    name = name() if callable(name) else str(target)
    return name.replace("::", ".").removesuffix(".default")


def _first_line(exc: BaseException) -> str:
    """The innermost cause's first line: the exporters' own messages run to pages."""
    *_, inner = _chain(exc)
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(inner)).strip()
    return text.splitlines()[0] if text else type(inner).__name__
