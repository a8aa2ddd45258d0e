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
    assert main(["convert", str(tmp_path / "net.pt"), str(out_path), "--trust-pickle", "--input-shape", "12",
                 "--sparsity", "0.5", "--bits", "4"]) == 0
    model = load(out_path)
    assert model.inputs[0]["shape"] == (None, 12)
    summary = model.summary()
    # 16 shared values (bits=4) and the zero of the pruned weights: 17 codebook entries in 5-bit indices
    assert [(row["encoding"], row["codebook_size"], row["bits"]) for row in summary] == [("codebook", 17, 5)] * 2
    assert all(row["density"] <= 0.5 + 1e-9 for row in summary)


def test_convert_to_int8_with_calibration(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    torch.save(net, tmp_path / "net.pt")
    calib = np.random.default_rng(0).standard_normal((50, 12)).astype(np.float32)
    np.save(tmp_path / "calib.npy", calib)
    out_path = tmp_path / "net.pyrt"
    assert main(["convert", str(tmp_path / "net.pt"), str(out_path), "--trust-pickle", "--input-shape", "12",
                 "--quantize", "0=static,2=dynamic", "--calibration", str(tmp_path / "calib.npy")]) == 0
    out = capsys.readouterr().out
    assert "int8 (static: input scale" in out and "int8 (dynamic activation scales)" in out
    model = load(out_path)
    assert [(row["encoding"], row["bits"]) for row in model.summary()] == [("int8", 8), ("int8", 8)]
    assert [layer["op"] for layer in model.layers() if layer["encoding"]] == ["qlinear", "linear"]
    with torch.no_grad():
        ref = net(torch.from_numpy(calib)).numpy()
    assert np.abs(model.run(calib) - ref).max() < 0.05 * np.abs(ref).max()
    assert main(["bench", str(out_path), "--seconds", "0.05"]) == 0
    assert "the cost model predicts" in capsys.readouterr().out  # the int8 kernels have timings too


def _inspect_bad(path, data: bytes, capsys) -> str:
    path.write_bytes(data)
    assert main(["inspect", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: INVALID (FormatError): ")
    return out


def test_inspect_explains_truncation(model_file, capsys):
    data = model_file.read_bytes()
    out = _inspect_bad(model_file, data[:-100], capsys)
    assert "100 bytes shorter than its header says" in out and "truncated" in out
    assert "header checksum OK" in out  # what is intact is shown too
    out = _inspect_bad(model_file, data[:30], capsys)
    assert "only 30 bytes of the 64-byte header" in out


def test_inspect_names_the_damaged_section_and_keeps_the_others(model_file, capsys):
    import pyruntime
    from pyruntime._inspect import inspect_bytes

    data = bytearray(model_file.read_bytes())
    report = inspect_bytes(bytes(data))
    victim = next(s for s in report.sections if s.type == 2 and s.size > 100)
    data[victim.offset + victim.size // 2] ^= 0x01
    out = _inspect_bad(model_file, bytes(data), capsys)
    line = next(ln for ln in out.splitlines() if ln.startswith(f"{victim.index} "))
    assert line.rstrip().endswith("checksum mismatch")
    assert f"section {victim.index} (tensor" in out and "the other sections are intact" in out
    bad = inspect_bytes(bytes(data))
    assert [s.status for s in bad.sections].count("ok") == len(bad.sections) - 1
    with pytest.raises(pyruntime.FormatError, match=f"section {victim.index}"):
        pyruntime.load(bytes(data))


@pytest.mark.parametrize(
    "content,words",
    [
        (b"", "the file is empty"),
        (b"PK\x03\x04" + bytes(100), "ZIP archive"),
        (b"\x93NUMPY\x01\x00" + bytes(100), "NumPy .npy"),
        (b"hello, world\n" * 10, "not a pyruntime model file"),
        (b"PYRT\r\n", "first 6 bytes of a model file"),
    ],
)
def test_inspect_recognises_other_files(tmp_path, capsys, content, words):
    assert words in _inspect_bad(tmp_path / "x.pyrt", content, capsys)


def test_inspect_explains_a_newer_version(model_file, capsys):
    import struct
    import zlib

    from pyruntime import _core

    newer = _core.FORMAT_VERSION + 1
    data = bytearray(model_file.read_bytes())
    struct.pack_into("<I", data, 8, newer)
    struct.pack_into("<I", data, 60, zlib.crc32(bytes(data[:60])))
    out = _inspect_bad(model_file, bytes(data), capsys)
    assert (f"format version {newer}, newer than this pyruntime reads (versions 1..{_core.FORMAT_VERSION}): "
            "upgrade pyruntime") in out


def test_inspect_explains_a_consistent_but_wrong_file(model_file, capsys):
    """Every checksum matches but the graph is wrong: the writer, not the storage, is to blame."""
    import struct
    import zlib

    from pyruntime._inspect import inspect_bytes

    data = bytearray(model_file.read_bytes())
    graph = next(s for s in inspect_bytes(bytes(data)).sections if s.type == 1)
    struct.pack_into("<H", data, graph.offset + 28, 77)  # node 0: op code
    payload = bytes(data[graph.offset:graph.offset + graph.size])
    struct.pack_into("<I", data, 64 + 32 * graph.index + 24, zlib.crc32(payload))
    count = struct.unpack_from("<I", data, 24)[0]
    struct.pack_into("<I", data, 28, zlib.crc32(bytes(data[64:64 + 32 * count])))
    struct.pack_into("<I", data, 60, zlib.crc32(bytes(data[:60])))
    out = _inspect_bad(model_file, bytes(data), capsys)
    assert "unknown op code 77" in out and "every checksum matches" in out


def test_bench_compares_the_measured_time_with_the_cost_model(model_file, capsys):
    assert main(["bench", str(model_file), "--seconds", "0.05", "--batch", "8", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "us@b8 (pred)" in out and "batch 8, 2 threads" in out and "the cost model predicts" in out
    assert "why this encoding:" in out and "smallest file" in out


def test_convert_for_speed_records_the_objective(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 3))
    torch.save(net, tmp_path / "net.pt")
    out_path = tmp_path / "net.pyrt"
    assert main(["convert", str(tmp_path / "net.pt"), str(out_path), "--trust-pickle", "--input-shape", "64",
                 "--sparsity", "0.5", "--bits", "4", "--optimize", "speed", "--batch", "16", "--size-budget", "1.5"]) == 0
    assert "fastest at batch 16" in capsys.readouterr().out
    assert all(r["why"].startswith("fastest at batch 16") for r in load(out_path).summary())
    assert main(["convert", str(tmp_path / "net.pt"), str(out_path), "--trust-pickle", "--input-shape", "64",
                 "--optimize", "size", "--size-budget", "1.5"]) == 1
    assert "size_budget bounds optimize='speed'" in capsys.readouterr().err


def test_calibrate_writes_a_profile_the_converter_can_use(tmp_path, capsys, monkeypatch):
    from pyruntime.cost import CostModel, default_cost_model

    path = tmp_path / "prof.json"
    assert main(["calibrate", "-o", str(path), "--budget", "0", "--threads", "1", "--name", "here"]) == 0
    out = capsys.readouterr().out
    assert "predicted / measured: median" in out and "read bandwidth: 1 thread" in out
    model = CostModel.load(path)
    assert model.name == "here" and len(model.coef) == 16 and {"i8_r16k4", "i8_p128"} <= set(model.coef)
    monkeypatch.setenv("PYRUNTIME_COST_PROFILE", str(path))
    assert default_cost_model().name == "here"


def test_inspect_gives_the_bits_per_weight_of_binary_and_int8_tensors(tmp_path, capsys):
    from pyruntime import _core

    rng = np.random.default_rng(0)
    model = {"input_shape": [70], "nodes": [
        {"op": "blinear", "inputs": [0], "tensors": [0], "attrs": {"input": 0, "output": 0}},
        {"op": "linear", "inputs": [1], "tensors": [1]}],
        "tensors": [{"name": "b.weight", "encoding": "binary", "shape": [9, 70], "bits": rng.integers(0, 2, 630),
                     "scales": np.ones(9, np.float32)},
                    {"name": "q.weight", "encoding": "int8", "shape": [3, 9], "qvalues": rng.integers(-9, 9, 27),
                     "scales": np.ones(3, np.float32)}]}
    path = tmp_path / "b.pyrt"
    path.write_bytes(_core.write_model(model))
    assert main(["inspect", str(path)]) == 0
    rows = {line.split()[1]: line.split() for line in capsys.readouterr().out.splitlines()
            if line.strip().startswith(("0 ", "1 ")) and "weight" in line}
    assert rows["b.weight"][2:6] == ["binary", "9x70", "630", "1"]
    assert rows["q.weight"][2:6] == ["int8", "3x9", "27", "8"]


def test_a_model_of_token_ids_and_two_outputs_through_the_cli(tmp_path, capsys):
    """Format version 5: inspect lists the typed inputs and the outputs; run takes an .npz of one array per
    input and writes one of one array per output; bench makes ids for an i32 input."""
    from pyruntime.convert import Graph, from_graph

    rng = np.random.default_rng(4)
    g = Graph((5,), dtype="i32")
    scale = g.add_input((5, 1))
    e = g.embedding(g.input, rng.standard_normal((12, 6)).astype(np.float32), name="emb")
    h = g.gelu(g.mul(e, scale))
    g.set_outputs([h, g.layer_norm(h)])
    path = tmp_path / "ids.pyrt"
    from_graph(g).save(path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "v0 = input (5,) i32" in out and "v1 = input (5, 1)" in out and "outputs: v4, v5" in out
    ids = rng.integers(0, 12, (3, 5)).astype(np.int64)
    s = rng.random((3, 5, 1)).astype(np.float32)
    np.savez(tmp_path / "x.npz", ids, s)
    assert main(["run", str(path), "--input", str(tmp_path / "x.npz"), "--output", str(tmp_path / "y.npz")]) == 0
    want = load(str(path)).run(ids, s)
    with np.load(tmp_path / "y.npz") as z:
        for k, w in zip(z.files, want, strict=True):
            np.testing.assert_array_equal(z[k], w)
    assert main(["bench", str(path), "--seconds", "0.05", "--per-layer"]) == 0
    assert "embedding" in capsys.readouterr().out
