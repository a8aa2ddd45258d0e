"""The `pyruntime` command: inspect, run, bench, convert (demo runs in .ci/run)."""
from __future__ import annotations

import numpy as np
import pytest

from pyruntime import load
from pyruntime.cli import main
from pyruntime.convert import from_numpy


@pytest.fixture
def model_file(tmp_path):
    rng = np.random.default_rng(3)
    w1 = rng.standard_normal((32, 20)).astype(np.float32)
    w1[rng.random(w1.shape) < 0.9] = 0
    w2 = rng.standard_normal((5, 32)).astype(np.float32)
    cm = from_numpy([("flatten",), ("linear", w1, np.zeros(32, np.float32)), ("relu",), ("linear", w2, None)],
                    input_shape=(4, 5), bits={"fc1": 3})
    path = tmp_path / "m.pyrt"
    cm.save(path)
    return path


def test_inspect_lists_sections_tensors_and_graph(model_file, capsys):
    assert main(["inspect", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert "format version 1" in out and "all checksums OK" in out
    assert "codebook" in out and "dense" in out and "graph: input (4, 5)" in out
    assert "v2 = linear(v1" in out


def test_inspect_explains_a_corrupted_file(model_file, capsys):
    data = bytearray(model_file.read_bytes())
    data[-3] ^= 0xFF
    model_file.write_bytes(bytes(data))
    assert main(["inspect", str(model_file)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "checksum mismatch" in out


def test_run_writes_the_same_output_as_the_python_api(model_file, tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(model_file), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), load(model_file).run(x))


def test_run_with_a_wrong_input_shape_fails_with_a_message(model_file, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 7), np.float32))
    assert main(["run", str(model_file), "--input", str(tmp_path / "x.npy")]) == 1
    assert "expected 3 (batch, 4, 5)" in capsys.readouterr().err


def test_bench_prints_a_summary_and_a_time(model_file, capsys):
    assert main(["bench", str(model_file), "--seconds", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "codebook" in out and "us per run" in out


def test_convert_a_saved_torch_module(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    torch.save(net, tmp_path / "net.pt")
    out_path = tmp_path / "net.pyrt"
    assert main(["convert", str(tmp_path / "net.pt"), str(out_path), "--input-shape", "12",
                 "--sparsity", "0.5", "--bits", "4"]) == 0
    model = load(out_path)
    assert model.inputs[0]["shape"] == (None, 12)
    summary = model.summary()
    assert [row["bits"] for row in summary] == [4, 4]
    assert all(row["density"] <= 0.5 + 1e-9 for row in summary)
