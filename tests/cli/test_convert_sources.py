"""``pyruntime convert`` of every model file kind: ONNX, torch.export (.pt2), TorchScript and a pickled module,
each recognised by its content and converted to a model that computes what torch computes."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from pyruntime import load
from pyruntime.cli import main
from pyruntime.convert.sources import sniff

torch = pytest.importorskip("torch")


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 10 * 10, 5)).eval()


def _check(path, net, atol=2e-5):
    x = torch.randn(3, 1, 12, 12)
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(load(path).run(x.numpy()), want, atol=atol, rtol=1e-4)


def test_an_onnx_file(tmp_path, capsys):
    pytest.importorskip("onnx")
    net = _net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter is deprecated
        torch.onnx.export(net, (torch.zeros(1, 1, 12, 12),), str(tmp_path / "net.onnx"), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    assert sniff(tmp_path / "net.onnx") == "onnx"
    out = tmp_path / "net.pyrt"
    assert main(["convert", str(tmp_path / "net.onnx"), str(out)]) == 0
    _check(out, net)
    assert main(["convert", str(tmp_path / "net.onnx"), str(out), "--sparsity", "0.5", "--bits", "4"]) == 0
    fc = load(out).summary()[1]  # 2000 weights: shared and sparse (16 centroids and the zero)
    assert "codebook" in fc["encoding"] and fc["codebook_size"] <= 17 and fc["density"] <= 0.5 + 1e-9


def test_a_torch_export_program(tmp_path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter of ExportedPrograms needs onnxscript")
    net = _net()
    torch.export.save(torch.export.export(net, (torch.zeros(2, 1, 12, 12),)), tmp_path / "net.pt2")
    assert sniff(tmp_path / "net.pt2") == "torch.export"
    out = tmp_path / "net.pyrt"
    assert main(["convert", str(tmp_path / "net.pt2"), str(out)]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "torchvision" not in captured.err
    _check(out, net)  # batch 3 although the program was exported at batch 2
    assert [layer["layer"] for layer in load(out).summary()] == ["0.weight", "4.weight"]  # module paths


def test_a_torchscript_file_needs_its_input_shape(tmp_path, capsys):
    pytest.importorskip("onnx")
    net = _net()
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 1, 12, 12)), tmp_path / "net.ts")
    assert sniff(tmp_path / "net.ts") == "torchscript"
    out = tmp_path / "net.pyrt"
    assert main(["convert", str(tmp_path / "net.ts"), str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "TorchScript" in err and "--input-shape" in err
    assert main(["convert", str(tmp_path / "net.ts"), str(out), "--input-shape", "1x12x12"]) == 0
    _check(out, net)


def test_a_pickled_module_by_content_not_name(tmp_path, capsys):
    net = _net()
    torch.save(net, tmp_path / "net.onnx")  # a misleading name: the content decides
    assert sniff(tmp_path / "net.onnx") == "torch-pickle"
    out = tmp_path / "net.pyrt"
    assert main(["convert", str(tmp_path / "net.onnx"), str(out), "--input-shape", "1,12,12"]) == 1
    assert "--trust-pickle" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "net.onnx"), str(out), "--input-shape", "1,12,12", "--trust-pickle"]) == 0
    _check(out, net)
