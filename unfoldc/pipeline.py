"""The only place the stages are wired. Every intermediate is kept for inspection.

    source text  -> AST          (syntax.parser.parse: Lark LALR, spans kept)
    AST          -> Checked      (semantics.check: names, roles, shapes; all errors at once)
    Checked      -> Program      (semantics.lower: batched states, dimensions, phases)
    Program      -> Program      (passes: [enforce_convergence], canonicalize, gram, hoist, cse,
                                  dce; lint after each)
    Program      -> graph        (ir.graph.build_graph: networkx, loop-carried edges explicit)
    Program      -> Python text  (codegen.module.emit_module: standalone torch module)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from unfoldc.codegen.module import emit_module
from unfoldc.convergence.enforce import enforce_pass
from unfoldc.diagnostics import Diagnostic, UserError
from unfoldc.ir.lint import lint
from unfoldc.ir.program import Program
from unfoldc.passes.canonicalize import canonicalize
from unfoldc.passes.cse import cse
from unfoldc.passes.dce import dce
from unfoldc.passes.gram import expand_gram
from unfoldc.passes.hoist import hoist
from unfoldc.semantics.check import check
from unfoldc.semantics.lower import lower
from unfoldc.source import Source, Span, normalize_newlines
from unfoldc.syntax import nodes
from unfoldc.syntax.parser import parse


@dataclass(frozen=True)
class Options:
    """Compiler switches; every pass can be turned off (for tests and comparisons)."""

    canonicalize: bool = True
    gram: bool = True
    hoist: bool = True
    cse: bool = True
    dce: bool = True
    enforce_convergence: bool = False  # reparametrize trainables so derived conditions hold


@dataclass
class Artifacts:
    """Everything one compilation produced."""

    source: Source
    ast: nodes.Spec
    program: Program  # as checked and lowered, before any pass
    optimized: Program  # after the passes
    code: str
    warnings: list[Diagnostic] = field(default_factory=list)
    passes: list[tuple[str, bool]] = field(default_factory=list)  # (pass, changed)

    def graph(self, unroll: int | None = None):
        """The iteration graph of the optimized program (networkx.DiGraph)."""
        from unfoldc.ir.graph import build_graph

        return build_graph(self.optimized, unroll)


# Enforcement runs first: it reads the conditions off the program as written.
PASSES = (("enforce_convergence", enforce_pass), ("canonicalize", canonicalize),
          ("gram", expand_gram), ("hoist", hoist), ("cse", cse), ("dce", dce))


def optimize(program: Program, options: Options) -> tuple[Program, list[tuple[str, bool]]]:
    """Run the enabled passes in order, verifying the IR after each."""
    log = []
    for name, run in PASSES:
        if getattr(options, name):
            result = run(program)
            program = lint(result.program, after=name)
            log.append((name, result.changed))
    return program, log


def compile_source(source: Source, options: Options | None = None) -> Artifacts:
    """Compile one spec; raises UserError (with every diagnostic) on mistakes in it."""
    ast = parse(source)
    checked = check(ast, source)
    program = lint(lower(checked), after="lower")
    optimized, log = optimize(program, options or Options())
    code = emit_module(optimized, source)
    return Artifacts(source, ast, program, optimized, code, list(checked.warnings), log)


def read_source(path: str | Path) -> Source:
    """Read a spec file, turning unreadable or non-UTF-8 files into diagnostics."""
    try:
        return Source.from_file(path)
    except UnicodeDecodeError as exc:
        raw = Path(path).read_bytes()
        # Everything before the bad byte decodes; count lines as Source does (CR, CRLF, LF).
        before = normalize_newlines(raw[: exc.start].decode("utf-8"))
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1

        src = Source(str(path), raw.decode("utf-8", errors="replace"))
        raise UserError([Diagnostic(
            "E0100", f"the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
            Span.point(line, col), "not UTF-8", help="save the spec as UTF-8 text")], src) from None


def compile_file(path: str | Path, options: Options | None = None) -> Artifacts:
    """Read and compile the spec at `path`."""
    return compile_source(read_source(path), options)
