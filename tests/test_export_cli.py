"""`unfoldc export`: ONNX files that onnxruntime runs like the torch module, pt2 archives, errors.

Each ONNX case exports a two-layer network (ONNX conversion takes seconds per model on a CPU)
traced at batch size 2 and runs it at batch size 7, so the batch dimension must be dynamic.
The torch module compared with is built the way the command builds it (float64 givens, then
float32), independently of the command's code.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from conftest import EXAMPLES, ROOT

import unfoldc
from unfoldc import cli
from unfoldc.train.checkpoint import save_weights

ort = pytest.importorskip("onnxruntime", reason="the extra unfoldc[export] is not installed")
pytestmark = pytest.mark.usefixtures("one_thread")

M, N, LAYERS, BATCH = 6, 4, 2, 7


@pytest.fixture(scope="module")
def H_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("givens") / "H.npy"
    np.save(path, np.random.default_rng(0).standard_normal((M, N)))
    return path


def export(argv, monkeypatch, capsys) -> tuple[int, str]:
    """Run `unfoldc export ...` in this process from the repository root; (exit code, stderr)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NO_COLOR", "1")
    code = cli.main(["export", *map(str, argv)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def reference(name: str, H_file, **weights) -> torch.nn.Module:
    """The network the command exports, built directly; `weights`: values of trainables."""
    H = torch.from_numpy(np.load(H_file))
    model = unfoldc.load(EXAMPLES / f"{name}.unf")(H=H, num_layers=LAYERS)
    with torch.no_grad():
        for key, value in weights.items():
            model.get_parameter(key).fill_(value)
    return model.to(torch.float32).eval()


def run_onnx(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]
    return session.run(None, {"x": x.numpy()})[0]


# One export in the quick loop; the others are `slow` (a dynamo trace and an ONNX build each).
@pytest.mark.parametrize("name", [pytest.param("ista", marks=pytest.mark.slow), "lista_cp",
                                  pytest.param("admm_lasso", marks=pytest.mark.slow),
                                  pytest.param("pnp_pgd", marks=pytest.mark.slow)])
def test_onnxruntime_matches_torch(name, H_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / f"{name}.onnx"
    code, err = export([f"examples/{name}.unf", "--given", f"H={H_file}", "--layers", LAYERS,
                        "-o", out], monkeypatch, capsys)
    assert code == 0, err
    assert f"wrote {out} (onnx" in err
    x = torch.randn(BATCH, M, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = reference(name, H_file)(x).numpy()
    got = run_onnx(out, x)
    assert got.shape == (BATCH, N) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    if name == "admm_lasso":  # solve has no standard ONNX operator: the user is told
        assert "com.microsoft::Inverse" in err


def test_weights_file_sets_the_trained_values_and_depth(H_file, tmp_path, monkeypatch, capsys):
    trained = reference("ista", H_file, **{"layers.0.rho_raw": 0.7, "layers.1.mu_log": -0.3})
    weights = tmp_path / "weights.safetensors"
    save_weights(trained.to(torch.float64), weights)  # holds H and the depth, as train writes
    out = tmp_path / "ista.pt2"  # the network is built alike for both formats; pt2 is quicker
    code, err = export(["examples/ista.unf", "--weights", weights, "-o", out], monkeypatch,
                       capsys)
    assert code == 0, err
    assert f"{LAYERS} layers" in err
    x = torch.randn(3, M, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = trained.to(torch.float32)(x)
        untrained = reference("ista", H_file)(x)
        got = torch.export.load(out).module()(x)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, untrained, rtol=1e-3)


def test_pt2_archive_runs_at_another_batch_size(H_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "lista_cp.pt2"
    code, err = export(["examples/lista_cp.unf", "--given", f"H={H_file}", "--layers", LAYERS,
                        "--dtype", "float64", "-o", out], monkeypatch, capsys)
    assert code == 0, err
    program = torch.export.load(out)
    x = torch.randn(BATCH, M, dtype=torch.float64)
    with torch.no_grad():
        want = reference("lista_cp", H_file).to(torch.float64)(x)
    torch.testing.assert_close(program.module()(x), want)


def test_unsupported_operator_is_located_in_the_spec(tmp_path, monkeypatch, capsys):
    code, err = export(["examples/rpca.unf", "--dims", "m=4,n=3", "--layers", 1, "-o",
                        tmp_path / "rpca.onnx"], monkeypatch, capsys)
    assert code == 1
    assert err.startswith("error: cannot export `svt`: ONNX has no operator for it\n")
    assert "--> examples/rpca.unf:17:10\n" in err
    assert "    L <- svt(L - mu * R, mu * lam1)\n" in err
    assert "          ^^^ lowers to `aten._linalg_svd`" in err
    assert "--format pt2" in err
    assert not (tmp_path / "rpca.onnx").exists()


def test_missing_extra_names_the_install_command(H_file, tmp_path, monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "unfoldc.export.onnx_ops", raising=False)
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript: ImportError
    code, err = export(["examples/ista.unf", "--given", f"H={H_file}", "-o",
                        tmp_path / "ista.onnx"], monkeypatch, capsys)
    assert code == 1
    assert "onnxscript is missing" in err
    assert "pip install 'unfoldc[export]'" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["examples/ista.unf", "-o", "x.onnx"], "missing --given for H"),
    (["examples/ista.unf", "--given", "G=H.npy", "-o", "x.onnx"], "no given named G"),
    (["examples/rpca.unf", "-o", "x.bin"], "cannot tell the format from `x.bin`"),
    (["examples/rpca.unf", "--layers", 0, "-o", "x.pt2"], "--layers takes a positive number"),
    (["examples/rpca.unf", "--dims", "m=x", "-o", "x.pt2"], "--dims: expected NAME=INTEGER"),
])
def test_usage_errors(argv, message, monkeypatch, capsys):
    code, err = export(argv, monkeypatch, capsys)
    assert code == 2
    assert message in err


@pytest.mark.parametrize(("argv", "message"), [
    (["examples/rpca.unf", "-o", "{tmp}/r.pt2"],
     "error: no given fixes the size `m` of input `Y`; give it with --dims m=SIZE"),
    (["examples/rpca.unf", "--dims", "m=4,n=3,q=2", "-o", "{tmp}/r.pt2"],
     "error: --dims q=2: the spec has no dimension `q` (it has `m`, `n`)"),
    (["examples/ista.unf", "--given", "H={H}", "--dims", "m=5", "-o", "{tmp}/i.pt2"],
     "error: --dims m=5: the givens fix `m` = 6"),
    (["examples/ista.unf", "--given", "H={tmp}", "-o", "{tmp}/i.pt2"],
     "is a directory, not a file"),
])
def test_user_errors(argv, message, H_file, tmp_path, monkeypatch, capsys):
    argv = [a.format(tmp=tmp_path, H=H_file) for a in argv]
    code, err = export(argv, monkeypatch, capsys)
    assert code == 1
    assert message in err


def test_a_trace_failure_says_what_torch_export_said(H_file, tmp_path):
    from unfoldc.export.exporter import ExportError, export_network

    model = reference("ista", H_file)
    with pytest.raises(ExportError) as info:  # x must be (B, 6): the forward's own check fails
        export_network(model, (torch.randn(2, 3),), "pt2", tmp_path / "ista.pt2")
    assert info.value.message == "cannot export an operation: torch.export cannot convert it"
    (note,) = info.value.notes
    assert note.startswith("torch.export: `x` must be (B, m) = (B, 6), got (")
    assert "traceable by torch.export" in info.value.help


@pytest.mark.slow  # quick loop under 90 s (pyproject.toml)
def test_several_outputs_export_as_a_tuple(tmp_path, monkeypatch, capsys):
    out = tmp_path / "rpca.pt2"  # RPCA's named tuple (L, S) cannot be saved in an archive
    code, err = export(["examples/rpca.unf", "--dims", "m=4,n=3", "--layers", LAYERS, "-o",
                        out], monkeypatch, capsys)
    assert code == 0, err
    Y = torch.randn(3, 4, 3)
    want = unfoldc.load(EXAMPLES / "rpca.unf")(num_layers=LAYERS).eval()(Y)
    got = torch.export.load(out).module()(Y)
    assert isinstance(got, tuple) and len(got) == 2
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
