"""What a new user hits first: the version, model files of every kind given to ``convert`` (and files of the
wrong kind given anywhere), shape and option mistakes, random input, dtypes, arrays that are not numpy's,
an import from the source tree and the names MNIST files come under. Each mistake gets one line that says
what is wrong, never a traceback."""
from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pyruntime
from pyruntime import load
from pyruntime.cli import main
from pyruntime.convert import from_numpy
from pyruntime.convert.sources import parse_shape, sniff
from pyruntime.datasets import load_mnist


@pytest.fixture
def model_file(tmp_path):
    rng = np.random.default_rng(5)
    cm = from_numpy([("linear", rng.standard_normal((6, 12)).astype(np.float32), None), ("relu",)], input_shape=(12,))
    path = tmp_path / "m.pyrt"
    cm.save(path)
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_version_names_the_package_the_format_and_the_kernels(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert f"pyruntime {pyruntime.__version__}" in out
    assert f"1-{pyruntime._core.FORMAT_VERSION}" in out and pyruntime._core.active_isa() in out


def test_the_version_is_the_one_the_package_metadata_gives():
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("the source tree's pyproject.toml is not beside the tests")
    assert tomllib.loads(pyproject.read_text())["project"]["version"] == pyruntime.__version__


@pytest.mark.parametrize("text,shape,dtype", [
    ("784", (784,), "f32"), ("1,28,28", (1, 28, 28), "f32"), ("1x28x28", (1, 28, 28), "f32"),
    ("(1, 28, 28)", (1, 28, 28), "f32"), ("128:int", (128,), "i32"), ("16:int64", (16,), "i32"),
])
def test_input_shapes_in_the_forms_people_type(text, shape, dtype):
    assert parse_shape(text) == (shape, dtype)


@pytest.mark.parametrize("text", ["abc", "", "1,,-3", "0", "28:complex"])
def test_a_bad_input_shape_is_one_line_naming_the_option(tmp_path, capsys, text):
    with pytest.raises(ValueError, match="--input-shape"):
        parse_shape(text)
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(3, 2), tmp_path / "net.pt")
    assert main(["convert", str(tmp_path / "net.pt"), str(tmp_path / "o.pyrt"), "--trust-pickle",
                 "--input-shape", text]) == 1
    assert "--input-shape" in _one_line_error(capsys)


def test_a_pickled_module_needs_explicit_trust(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Sequential(torch.nn.Linear(12, 4)), tmp_path / "net.pt")
    out = tmp_path / "net.pyrt"
    assert main(["convert", str(tmp_path / "net.pt"), str(out), "--input-shape", "12"]) == 1
    err = _one_line_error(capsys)
    assert "--trust-pickle" in err and "runs code" in err
    assert not out.exists()
    assert main(["convert", str(tmp_path / "net.pt"), str(out), "--input-shape", "12", "--trust-pickle"]) == 0
    assert load(out).inputs[0]["shape"] == (None, 12)


def test_convert_help_warns_about_pickles(capsys):
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--trust-pickle" in out and "runs any code" in out and "ONNX" in out


def test_a_state_dict_is_refused_with_what_to_save_instead(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(12, 4).state_dict(), tmp_path / "sd.pt")
    assert main(["convert", str(tmp_path / "sd.pt"), str(tmp_path / "o.pyrt"), "--input-shape", "12",
                 "--trust-pickle"]) == 1
    assert "state_dict" in _one_line_error(capsys)


def test_a_shape_mistake_in_convert_names_the_users_shape_not_a_doubled_batch(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), tmp_path / "net.pt")
    assert main(["convert", str(tmp_path / "net.pt"), str(tmp_path / "o.pyrt"), "--trust-pickle",
                 "--input-shape", "1x28x29"]) == 1
    err = _one_line_error(capsys)
    assert "(1, 1, 28, 29)" in err and "2x" not in err


def test_a_forward_that_hard_codes_the_batch_is_named():
    torch = pytest.importorskip("torch")
    from pyruntime.convert import from_torch

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(x.view(1, 8))

    with pytest.raises(ValueError, match="hard-codes the batch size") as e:
        from_torch(Fixed(), torch.zeros(1, 8))
    assert e.value.__cause__ is None and e.value.__suppress_context__


@pytest.mark.parametrize("kind", ["pyrt", "npz", "npy"])
def test_files_that_are_not_models_are_refused_by_convert(tmp_path, model_file, capsys, kind):
    path = {"pyrt": model_file, "npz": tmp_path / "a.npz", "npy": tmp_path / "a.npy"}[kind]
    if kind == "npz":
        np.savez(path, np.zeros(3))
    elif kind == "npy":
        np.save(path, np.zeros(3))
    assert sniff(path) == kind
    assert main(["convert", str(path), str(tmp_path / "o.pyrt"), "--input-shape", "3"]) == 1
    err = _one_line_error(capsys)
    assert ("already a .pyrt model" if kind == "pyrt" else f".{kind} file") in err


def test_run_says_when_it_makes_up_its_input(model_file, capsys):
    assert main(["run", str(model_file), "--batch", "2"]) == 0
    err = capsys.readouterr().err
    assert "no --input: running on random data" in err and "batch 2" in err


def test_run_refuses_float64_as_model_run_does(model_file, tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((2, 12))
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(model_file), "--input", str(tmp_path / "x.npy")]) == 1
    assert "float64" in _one_line_error(capsys)
    with pytest.raises(ValueError, match="float64, expected float32"):
        load(model_file).run(x)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    assert main(["run", str(model_file), "--input", str(tmp_path / "x.npy")]) == 0


def test_files_of_the_wrong_kind_for_input_calibration_and_model(model_file, tmp_path, capsys):
    np.savez(tmp_path / "c.npz", np.zeros((4, 12), np.float32))
    assert main(["run", str(model_file), "--input", str(model_file)]) == 1
    assert "a .pyrt model" in _one_line_error(capsys)
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(12, 4), tmp_path / "net.pt")
    assert main(["convert", str(tmp_path / "net.pt"), str(tmp_path / "o.pyrt"), "--trust-pickle", "--input-shape",
                 "12", "--quantize", "static", "--calibration", str(tmp_path / "c.npz")]) == 1
    assert "--calibration" in (err := _one_line_error(capsys)) and ".npz" in err
    assert main(["run", str(tmp_path / "net.pt"), "--batch", "1"]) == 1
    assert "not a .pyrt model: convert it first" in _one_line_error(capsys)


def test_a_bad_per_layer_option_names_the_option(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(12, 4), tmp_path / "net.pt")
    assert main(["convert", str(tmp_path / "net.pt"), str(tmp_path / "o.pyrt"), "--trust-pickle", "--input-shape",
                 "12", "--sparsity", "fc1=lots"]) == 1
    assert "--sparsity" in _one_line_error(capsys)


def test_model_run_takes_torch_tensors_in_place(model_file):
    torch = pytest.importorskip("torch")
    m = load(model_file)
    x = torch.randn(3, 12)
    np.testing.assert_array_equal(m.run(x), m.run(x.numpy()))
    from pyruntime._model import as_array

    assert np.shares_memory(as_array(x), x.numpy())  # DLPack: no copy
    with pytest.raises(TypeError, match="requires grad: pass x.detach()"):
        m.run(x.requires_grad_())
    with pytest.raises(ValueError, match="float64, expected float32"):
        m.run(torch.zeros(3, 12, dtype=torch.float64))


def test_model_run_takes_objects_with_array_and_refuses_lists(model_file):
    class Wrapped:
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a

    m = load(model_file)
    x = np.random.default_rng(1).standard_normal((2, 12)).astype(np.float32)
    np.testing.assert_array_equal(m.run(Wrapped(x)), m.run(x))
    with pytest.raises(TypeError, match="must be a numpy array"):
        m.run(x.tolist())


def test_importing_from_a_source_tree_without_a_build_says_what_to_do(tmp_path):
    src = Path(pyruntime.__file__).resolve().parent
    tree = tmp_path / "checkout"
    shutil.copytree(src, tree / "pyruntime", ignore=shutil.ignore_patterns("*.so", "lib", "__pycache__"))
    (tree / "csrc").mkdir()
    (tree / "pyproject.toml").write_text("[project]\nname = 'pyruntime'\n")
    r = subprocess.run([sys.executable, "-c", "import pyruntime"], check=False, cwd=tree, capture_output=True,
                       text=True,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)})
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "source tree" in last and "tools/dev_build.sh" in last and "another directory" in last


def _idx(images: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, images.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    return header + images.astype(np.uint8).tobytes()


@pytest.mark.parametrize("layout", ["dotted", "dotted-gz", "raw-folder"])
def test_mnist_under_its_common_file_names(tmp_path, layout):
    rng = np.random.default_rng(0)
    folder = tmp_path / "MNIST" / "raw" if layout == "raw-folder" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train": 6, "t10k": 4}
    for part, n in parts.items():
        for kind, arr in (("images", rng.integers(0, 256, (n, 28, 28))), ("labels", rng.integers(0, 10, n))):
            rank = 3 if kind == "images" else 1
            name = f"{part}-{kind}.idx{rank}-ubyte" if layout != "raw-folder" else f"{part}-{kind}-idx{rank}-ubyte"
            data = _idx(arr)
            if layout == "dotted-gz":
                (folder / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    ds = load_mnist(tmp_path)
    assert ds.train.x.shape == (6, 28, 28) and ds.test.y.shape == (4,)


def test_missing_mnist_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="yann.lecun.com"):
        load_mnist(tmp_path)


def test_bench_shows_progress_only_when_asked_or_on_a_terminal(model_file, capsys, monkeypatch):
    monkeypatch.delenv("PYRUNTIME_PROGRESS", raising=False)
    assert main(["bench", str(model_file), "--seconds", "0.05"]) == 0
    assert "timing batch" not in capsys.readouterr().err  # not a terminal: no bar
    pytest.importorskip("tqdm")
    monkeypatch.setenv("PYRUNTIME_PROGRESS", "1")
    assert main(["bench", str(model_file), "--seconds", "0.05"]) == 0
    err = capsys.readouterr().err
    assert "timing batch 1" in err and "/5 [" in err
