"""Bad data, weights, checkpoints and options (issue 14): every one is a user error.

Each case writes one broken file (or option) into `tmp_path`, runs the CLI in-process and asserts
exit code 1 with exactly one `error: ...` line on stderr that names the file or the array: never
exit 3 ("a bug in unfoldc"), never a traceback, never terminal escapes off a terminal.
"""

from __future__ import annotations

import fractions
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import unfoldc
from unfoldc.cli import main
from unfoldc.train.checkpoint import save_weights

ROOT = Path(__file__).resolve().parents[1]
ISTA = str(ROOT / "examples" / "ista.unf")
M, N = 4, 8
FAST = ["--layers", "2", "--steps", "2", "--batch", "4", "--eval-every", "1",
        "--classical-layers", "0", "--no-progress", "--no-plots"]


def _H() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((M, N)) / 2


def _cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc: int, err: str, mention: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1, f"exit {rc}: {err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert mention in lines[0], err
    assert "\x1b" not in err and "Traceback" not in err


def _truncated(path: Path, data) -> None:
    np.save(path, data)
    path.write_bytes(path.read_bytes()[:-7])


def _huge_header(path: Path) -> None:
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (4, 8), }"
    header += b" " * (200_000 - len(header)) + b"\n"
    path.write_bytes(b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header)


def _with(value, row: int, col: int) -> np.ndarray:
    H = _H()
    H[row, col] = value
    return H


# name -> writer of a bad `.npy` for the given `H` (a matrix[m, n])
BAD_NPY = {
    "bool": lambda p: np.save(p, np.ones((M, N), bool)),
    "complex": lambda p: np.save(p, _H() + 1j),
    "strings": lambda p: np.save(p, np.array([["a"] * N] * M)),
    "structured": lambda p: np.save(p, np.zeros(M, dtype=[("a", "f8"), ("b", "f8")])),
    "1-D": lambda p: np.save(p, np.ones(N)),
    "3-D": lambda p: np.save(p, np.ones((2, M, N))),
    "0-d": lambda p: np.save(p, np.array(1.0)),
    "empty": lambda p: np.save(p, np.ones((0, N))),
    "nan": lambda p: np.save(p, _with(np.nan, 2, 3)),
    "inf": lambda p: np.save(p, _with(np.inf, 1, 0)),
    "object": lambda p: np.save(p, np.array([[{}] * N] * M, dtype=object), allow_pickle=True),
    "text": lambda p: p.write_text("1 2 3\n4 5 6\n"),
    "truncated": lambda p: _truncated(p, _H()),
    "huge header": _huge_header,
    "garbled header": lambda p: p.write_bytes(b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f8', (4\n"),
    "empty file": lambda p: p.write_bytes(b""),
    "directory": lambda p: p.mkdir(),
    "missing": lambda p: None,
}


@pytest.mark.parametrize("case", BAD_NPY)
def test_check_given_bad_array(case, tmp_path, capsys):
    path = tmp_path / "H.npy"
    BAD_NPY[case](path)
    rc, _, err = _cli(capsys, "check", ISTA, "--given", f"H={path}")
    _one_line_error(rc, err, "H.npy")
    assert "NAME.unf" not in err


@pytest.mark.parametrize("dtype", ["int64", "float16", "float32"])
def test_check_given_other_real_dtypes_are_converted(dtype, tmp_path, capsys):
    path = tmp_path / "H.npy"
    np.save(path, (_H() * 4).astype(dtype))
    rc, out, err = _cli(capsys, "check", ISTA, "--given", f"H={path}")
    assert rc in (0, 1) and "error" not in err, err
    assert "layer" in out


@pytest.mark.parametrize("layers", ["0", "-3"])
def test_check_layers_must_be_positive(layers, tmp_path, capsys):
    path = tmp_path / "H.npy"
    np.save(path, _H())
    rc, out, err = _cli(capsys, "check", ISTA, "--given", f"H={path}", "--layers", layers)
    assert rc == 2 and "--layers takes a positive number" in err
    assert "report" not in out


@pytest.mark.parametrize("layers", ["10001", "1000000000000"])
def test_check_refuses_a_huge_depth_before_building(layers, capsys, monkeypatch):
    """`check --layers 1000000000000` built a ModuleList of that length (issue 14)."""
    import unfoldc.pipeline

    monkeypatch.setattr(unfoldc.pipeline, "compile_file", lambda *a, **k: pytest.fail("built"))
    rc, _, err = _cli(capsys, "check", ISTA, "--layers", layers)
    assert rc == 2 and "Traceback" not in err
    assert "is more than 10000 layers, the most unfoldc builds" in err


@pytest.mark.parametrize("option", ["--layers", "--classical-layers"])
def test_train_refuses_a_huge_depth_before_building(option, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", ISTA, option, "1000000000000", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and not (tmp_path / "run").exists()
    assert f"argument {option}: 1000000000000 is more than 10000 layers" in err


def test_the_depth_limit_is_the_specs_layer_limit():
    from unfoldc import limits
    from unfoldc.syntax import to_ast
    from unfoldc.train import checkpoint, cli

    assert to_ast.MAX_LAYERS is cli.MAX_LAYERS is checkpoint.MAX_LAYERS is limits.MAX_LAYERS


# --- weights files -------------------------------------------------------------------------

def _model(layers: int = 3, spec: str = ISTA, H: np.ndarray | None = None):
    cls = unfoldc.load(spec)
    return cls(H=torch.as_tensor(_H() if H is None else H), num_layers=layers)


def _nan_weights(path: Path) -> None:
    model = _model()
    with torch.no_grad():
        model.layers[1].rho_raw.fill_(float("nan"))
    save_weights(model, path)


def _metadata(path: Path, **changes) -> None:
    save_weights(_model(), path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    metadata.update(changes)
    save_file(tensors, str(path), metadata={k: v for k, v in metadata.items() if v is not None})


def _cut(path: Path) -> None:
    save_weights(_model(), path)
    path.write_bytes(path.read_bytes()[:-20])


BAD_WEIGHTS = {
    "other spec": lambda p: save_weights(_model(spec=str(ROOT / "examples" / "fista.unf")), p),
    "truncated": _cut,
    "garbage": lambda p: p.write_bytes(b"\x00\x01garbage" * 10),
    "empty file": lambda p: p.write_bytes(b""),
    "nan weights": _nan_weights,
    "no metadata": lambda p: save_file(_model().state_dict(), str(p)),
    "no sha256": lambda p: _metadata(p, spec_sha256=None),
    "bad layer count": lambda p: _metadata(p, num_layers="three"),
    "huge layer count": lambda p: _metadata(p, num_layers="1000000000000"),
    "directory": lambda p: p.mkdir(),
    "missing": lambda p: None,
}


@pytest.mark.parametrize("case", BAD_WEIGHTS)
def test_check_bad_weights(case, tmp_path, capsys):
    given = tmp_path / "H.npy"
    np.save(given, _H())
    path = tmp_path / "w.safetensors"
    BAD_WEIGHTS[case](path)
    rc, _, err = _cli(capsys, "check", ISTA, "--given", f"H={given}", "--weights", path)
    _one_line_error(rc, err, "w.safetensors")


def test_check_weights_of_other_sizes(tmp_path, capsys):
    lista = str(ROOT / "examples" / "lista.unf")
    path = tmp_path / "w.safetensors"
    save_weights(_model(spec=lista, H=np.ones((M + 1, N))), path)  # W1 is n x (m + 1)
    given = tmp_path / "H.npy"
    np.save(given, _H())
    rc, _, err = _cli(capsys, "check", lista, "--given", f"H={given}", "--weights", path)
    _one_line_error(rc, err, "w.safetensors")
    assert "shape mismatch" in err


def test_train_weights_keep_the_tasks_givens(tmp_path, capsys):
    data = tmp_path / "d.npz"
    _data(data)
    path = tmp_path / "w.safetensors"
    save_weights(_model(H=_H() * 3, layers=2), path)
    out = tmp_path / "run"
    assert _cli(capsys, "train", ISTA, "--data", data, "--weights", path, "--out", out,
                *FAST)[0] == 0
    from safetensors import safe_open

    with safe_open(str(out / "weights.safetensors"), framework="pt") as f:
        assert torch.allclose(f.get_tensor("H").double(), torch.as_tensor(_H()), atol=1e-6)


def test_check_weights_of_other_depth(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    save_weights(_model(layers=3), path)
    rc, _, err = _cli(capsys, "check", ISTA, "--weights", path, "--layers", "5")
    _one_line_error(rc, err, "w.safetensors")
    assert "3 layers" in err


def test_check_weights_alone_uses_the_givens_they_hold(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    save_weights(_model(layers=3), path)
    rc, out, err = _cli(capsys, "check", ISTA, "--weights", path)
    assert rc in (0, 1), err
    assert "give the operands" not in out
    assert "ISTA convergence report (3 layers)" in out


# --- training data, weights, checkpoints, output directories -------------------------------

def _data(path: Path, **changes) -> None:
    rng = np.random.default_rng(1)
    H = _H()
    s = rng.standard_normal((12, N)) * (rng.random((12, N)) < 0.3)
    arrays = {"H": H, "x": s @ H.T, "s": s}
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def _nan_row(name: str, shape: tuple[int, ...], value=np.nan) -> np.ndarray:
    a = np.ones(shape)
    a[5, 1] = value
    return a


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _corrupt_member(path: Path) -> None:
    np.savez_compressed(path, H=np.arange(4000.0).reshape(40, 100), x=np.ones((12, M)))
    raw = bytearray(path.read_bytes())
    raw[200:260] = b"\x00" * 60  # inside H's deflate stream; the zip directory is intact
    path.write_bytes(bytes(raw))


BAD_DATA = {
    "wrong width": (lambda p: _data(p, x=np.ones((12, M + 1))), "`x`"),
    "1-D input": (lambda p: _data(p, x=np.ones(12)), "`x`"),
    "3-D input": (lambda p: _data(p, x=np.ones((12, M, 2))), "`x`"),
    "given of other size": (lambda p: _data(p, H=np.ones((M, N + 1))), "`s`"),
    "1-D given": (lambda p: _data(p, H=np.ones(N)), "`H`"),
    "nan input": (lambda p: _data(p, x=_nan_row("x", (12, M))), "row 5"),
    "inf target": (lambda p: _data(p, s=_nan_row("s", (12, N), np.inf)), "row 5"),
    "nan given": (lambda p: _data(p, H=_with(np.nan, 2, 3)), "`H`"),
    "zero targets": (lambda p: _data(p, s=np.zeros((12, N))), "`s`"),
    "truncated": (lambda p: (_data(p), p.write_bytes(p.read_bytes()[:200])), "d.npz"),
    "text": (lambda p: p.write_text("not a zip"), "d.npz"),
    "single array": (lambda p: p.write_bytes(_npy_bytes(np.ones((12, M)))), "d.npz"),
    "corrupt member": (lambda p: _corrupt_member(p), "d.npz"),
    "object": (lambda p: np.savez(p, x=np.array([{}], dtype=object)), "d.npz"),
    "directory": (lambda p: p.mkdir(), "d.npz"),
    "missing": (lambda p: None, "d.npz"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_train_bad_data(case, tmp_path, capsys):
    write, mention = BAD_DATA[case]
    path = tmp_path / "d.npz"
    write(path)
    rc, _, err = _cli(capsys, "train", ISTA, "--data", path, "--out", tmp_path / "run", *FAST)
    _one_line_error(rc, err, mention)
    assert not (tmp_path / "run" / "weights.safetensors").exists()


def test_train_pt_data_with_foreign_objects(tmp_path, capsys):
    path = tmp_path / "d.pt"
    torch.save({"x": fractions.Fraction(1, 3)}, path)
    rc, _, err = _cli(capsys, "train", ISTA, "--data", path, "--out", tmp_path / "run", *FAST)
    _one_line_error(rc, err, "d.pt")


@pytest.mark.parametrize("case", ["other spec", "nan weights", "no sha256", "bad layer count",
                                  "truncated"])
def test_train_bad_weights(case, tmp_path, capsys):
    data = tmp_path / "d.npz"
    _data(data)
    path = tmp_path / "w.safetensors"
    BAD_WEIGHTS[case](path)
    rc, _, err = _cli(capsys, "train", ISTA, "--data", data, "--weights", path,
                      "--out", tmp_path / "run", "--layers", "3", *FAST[2:])
    _one_line_error(rc, err, "w.safetensors")


BAD_CHECKPOINTS = {
    "garbage": lambda p: p.write_bytes(b"garbage"),
    "not a dict": lambda p: torch.save([1, 2, 3], p),
    "no fields": lambda p: torch.save({"foo": torch.zeros(1)}, p),
    "foreign object": lambda p: torch.save({"x": fractions.Fraction(1, 3)}, p),
}


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_resume_from_a_bad_checkpoint(case, tmp_path, capsys):
    data = tmp_path / "d.npz"
    _data(data)
    out = tmp_path / "run"
    out.mkdir()
    BAD_CHECKPOINTS[case](out / "checkpoint.pt")
    rc, _, err = _cli(capsys, "train", ISTA, "--data", data, "--out", out, "--resume", *FAST)
    _one_line_error(rc, err, "checkpoint.pt")


def test_resume_from_a_checkpoint_of_another_network(tmp_path, capsys):
    data = tmp_path / "d.npz"
    _data(data)
    out = tmp_path / "run"
    assert _cli(capsys, "train", ISTA, "--data", data, "--out", out, *FAST)[0] == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["model"] = {"bogus": torch.zeros(2)}
    torch.save(state, out / "checkpoint.pt")
    rc, _, err = _cli(capsys, "train", ISTA, "--data", data, "--out", out, "--resume", *FAST)
    _one_line_error(rc, err, "checkpoint.pt")


PLAIN = """algorithm Plain
given H : matrix[m, n]
input x : vector[m]
state s : vector[n] = 0
let L = opnorm(H)^2
layers 4:
    s <- soft(s - (1 / L) * H.T @ (H @ s - x), 0.1 / L)
output s
"""


def test_spec_without_trainables(tmp_path, capsys):
    spec = tmp_path / "plain.unf"
    spec.write_text(PLAIN)
    data = tmp_path / "d.npz"
    _data(data)
    rc, _, err = _cli(capsys, "train", spec, "--data", data, "--out", tmp_path / "run", *FAST)
    _one_line_error(rc, err, "trainable")


@pytest.mark.parametrize("case", ["spec directory", "missing spec"])
def test_spec_path_messages(case, tmp_path, capsys):
    spec = tmp_path / "s.unf"
    if case == "spec directory":
        spec.mkdir()
    rc, _, err = _cli(capsys, "train", spec, "--out", tmp_path / "run", *FAST)
    _one_line_error(rc, err, "s.unf")
    assert ("directory" in err) == (case == "spec directory")


def test_a_missing_output_directory_is_not_blamed_on_the_spec(tmp_path, capsys):
    rc, _, err = _cli(capsys, "compile", ISTA, "-o", tmp_path / "nowhere" / "ista.py")
    assert rc == 1 and "nowhere" in err and "NAME.unf" not in err


ALISTA = """algorithm Analytic
given A : matrix[m, n]
given W : matrix[m, n]
input y : vector[m]
state x : vector[n] = 0
train g : scalar per_layer = 0.5 positive
train t : scalar per_layer = 0.01 nonneg
layers 2:
    x <- soft(x - g * W.T @ (A @ x - y), g * t)
output x
"""


@pytest.mark.parametrize("w_cols, rc", [(N, 0), (N + 1, 1)])
def test_published_file_binds_every_given_it_holds(w_cols, rc, tmp_path, capsys):
    spec = tmp_path / "analytic.unf"
    spec.write_text(ALISTA)
    data = tmp_path / "published.npz"
    rng = np.random.default_rng(2)
    np.savez(data, A=_H(), W=_H()[:, :1] * np.ones((M, w_cols)),
             x_test=rng.standard_normal((6, N)) * (rng.random((6, N)) < 0.5))
    code, _, err = _cli(capsys, "train", spec, "--data", data, "--out", tmp_path / "run",
                        "--p", "0.5", *FAST)
    assert code == rc, err
    assert "givens from" in err and "`A`, `W`" in err
    if rc:
        assert "`W`" in err.splitlines()[-1] and "n = " in err


def test_check_given_replaces_the_copy_in_the_weights(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    save_weights(_model(layers=3), path)
    big = tmp_path / "H.npy"
    np.save(big, _H() * 100)  # the trained steps are far too long for this operator
    rc, out, _ = _cli(capsys, "check", ISTA, "--weights", path, "--given", f"H={big}")
    assert rc in (0, 1, 4) and "FAIL" in out  # exit codes: the convergence report's own
