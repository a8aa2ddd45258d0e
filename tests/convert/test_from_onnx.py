"""from_onnx: real torch networks exported with torch.onnx.export (the TorchScript exporter, ``dynamo=False``,
and where onnxscript is installed the default torch.export-based one), converted and run by the runtime, against
ONNX Runtime on the same inputs.

Dense, the runtime matches ONNX Runtime to float32 rounding (CNNs 1e-5 absolute, the transformer 1e-4 of its
output's scale); compressed (pruned, shared) it matches the converter's float64 reference of the compressed
weights (``cm.run_numpy``); int8 (a model quantized by onnxruntime.quantization) it matches ONNX Runtime's own
int8 arithmetic to int8 precision, with the file's integers and scales taken exactly. Graphs built with
onnx.helper cover the op forms exporters rarely write and the refusals."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx_models as om
import torch_models as tm
from onnx import TensorProto as T
from onnx import helper, numpy_helper

import pyruntime
from pyruntime.convert import from_onnx

needs_dynamo = pytest.mark.skipif(not om.has_dynamo_exporter(), reason="torch.onnx.export(dynamo=True) needs "
                                  "onnxscript")
EXPORTERS = ["legacy", pytest.param("dynamo", marks=needs_dynamo)]
# max |runtime - ORT| / max |ORT| for the transformer, dense weights
DENSE_TOL = 1e-4
# int8 against ONNX Runtime's int8: both quantize activations (ORT: uint8 with a zero point per tensor; the
# runtime: symmetric per sample), so outputs differ by the activation rounding, ~1e-2 of the output's scale
INT8_TOL = 6e-2


def _rel(got: np.ndarray, ref: np.ndarray) -> float:
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())


def _cnn(cls: type, seed: int = 0) -> torch.nn.Module:
    return om.randomize(cls(), seed)


SHAPES = {om.LeNet300: (1, 28, 28), om.LeNet5: (1, 28, 28), om.ResidualCNN: (3, 16, 16), om.Conv1dNet: (4, 12),
          om.SharedBN: (3, 6, 6)}


def _x(cls: type, batch: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, *SHAPES[cls])).astype(np.float32)


# -- float networks ------------------------------------------------------------------------------------------
def test_mlp_lenet_300_100() -> None:
    net = _cnn(om.LeNet300)
    m = om.export(net, (torch.from_numpy(_x(om.LeNet300, 2)),), "legacy")
    cm = from_onnx(m)
    assert [r.name for r in cm.layers] == ["fc1", "fc2", "fc3"]
    assert [r.shape for r in cm.layers] == [(300, 784), (100, 300), (10, 100)]
    x = _x(om.LeNet300, 5)  # a batch size other than the export's: the batch is symbolic
    np.testing.assert_allclose(cm.load().run(x), om.ort_run(m, x)[0], atol=1e-5)
    assert cm.metadata["source"].startswith("onnx:")
    assert cm.metadata["onnx_nodes"]["fc1"]


@pytest.mark.parametrize("dynamic_batch", [True, False])
def test_lenet5_batch_norms_fold(dynamic_batch: bool) -> None:
    """Exported without constant folding, the batch norms are nodes after conv1, conv2 and fc1, and the flatten a
    Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain (a fixed batch: a literal Reshape to (2, -1))."""
    net = _cnn(om.LeNet5)
    m = om.export(net, (torch.from_numpy(_x(om.LeNet5, 2)),), "legacy", fold=False, dynamic_batch=dynamic_batch)
    assert Counter(n.op_type for n in m.graph.node)["BatchNormalization"] == 3
    cm = from_onnx(m)
    assert cm.metadata["folded_batchnorm"] == {"conv1": "/bn1/BatchNormalization", "conv2": "/bn2/BatchNormalization",
                                               "fc1": "/bn3/BatchNormalization"}
    ops = [n["op"] for n in cm.to_dict()["nodes"]]
    assert "mul" not in ops and "add" not in ops  # every batch norm is in a layer's weights
    x = _x(om.LeNet5, 5 if dynamic_batch else 2)
    ref = om.ort_run(m, x)[0]
    np.testing.assert_allclose(cm.load().run(x), ref, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(ref, net(torch.from_numpy(x)).numpy(), atol=1e-5)


def test_batch_norm_that_cannot_fold_is_mul_and_add() -> None:
    net = _cnn(om.SharedBN)
    m = om.export(net, (torch.from_numpy(_x(om.SharedBN, 2)),), "legacy")
    cm = from_onnx(m)
    assert "folded_batchnorm" not in cm.metadata
    ops = Counter(n["op"] for n in cm.to_dict()["nodes"])
    assert ops["mul"] == 1 and ops["add"] == 2  # the batch norm's scale and shift, the residual add
    x = _x(om.SharedBN, 4)
    np.testing.assert_allclose(cm.load().run(x), om.ort_run(m, x)[0], atol=1e-5)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_residual_cnn_concat_pools_upsample(exporter: str) -> None:
    net = _cnn(om.ResidualCNN)
    m = om.export(net, (torch.from_numpy(_x(om.ResidualCNN, 2)),), exporter)
    cm = from_onnx(m)
    assert [r.name for r in cm.layers] == ["stem", "branch_a", "branch_b", "merge", "grouped", "fc"]
    ops = Counter(n["op"] for n in cm.to_dict()["nodes"])
    for op in ("concat", "add", "clamp", "max_pool2d", "upsample_nearest", "leaky_relu", "avg_pool2d",
               "global_avg_pool", "sigmoid"):
        assert ops[op] >= 1, (op, ops)
    x = _x(om.ResidualCNN, 3)
    np.testing.assert_allclose(cm.load().run(x), om.ort_run(m, x)[0], atol=1e-5)


@pytest.mark.parametrize("opset", [9, 11])
def test_older_opsets(opset: int) -> None:
    """Opset 9: Upsample, Clip with attributes, the padding of avg_pool2d as a Pad node before the AveragePool;
    opset 11: Resize with scales, Softmax over the flattened trailing dims."""
    net = _cnn(om.ResidualCNN)
    m = om.export(net, (torch.from_numpy(_x(om.ResidualCNN, 2)),), "legacy", opset=opset)
    ops = {n.op_type for n in m.graph.node}
    assert ("Upsample" in ops) == (opset == 9) and ("Resize" in ops) == (opset == 11)
    cm = from_onnx(m)
    x = _x(om.ResidualCNN, 3)
    np.testing.assert_allclose(cm.load().run(x), om.ort_run(m, x)[0], atol=1e-5)
    net = _cnn(om.LeNet5)
    m = om.export(net, (torch.from_numpy(_x(om.LeNet5, 2)),), "legacy", opset=opset)
    x = _x(om.LeNet5, 3)
    np.testing.assert_allclose(from_onnx(m).load().run(x), om.ort_run(m, x)[0], atol=1e-5)


def test_conv1d() -> None:
    net = _cnn(om.Conv1dNet)
    m = om.export(net, (torch.from_numpy(_x(om.Conv1dNet, 2)),), "legacy")
    cm = from_onnx(m)
    assert [r.name for r in cm.layers] == ["conv1", "conv2", "fc"]
    assert cm.layers[0].shape == (8, 4, 1, 3)  # a conv2d of height 1
    ops = [n["op"] for n in cm.to_dict()["nodes"]]  # [C, L] stays [C, 1, L] between the 1-D ops
    assert ops == ["reshape", "conv2d", "relu", "max_pool2d", "conv2d", "reshape", "linear"]
    x = _x(om.Conv1dNet, 3)
    np.testing.assert_allclose(cm.load().run(x), om.ort_run(m, x)[0], atol=1e-5)


# -- a transformer encoder -----------------------------------------------------------------------------------
def _bert(hidden_act: str = "gelu") -> torch.nn.Module:
    return tm.randomize(tm.bert_tiny(hidden_act=hidden_act), 0, std=0.1)


def _bert_layers(net: torch.nn.Module) -> list[str]:
    """The module paths of the layers the conversion has (the position and token type embeddings of constant ids
    are folded into a constant)."""
    return [n for n in tm.weighted_layers(net) if n.startswith(("embeddings.word", "encoder", "pooler"))]


@pytest.mark.parametrize("exporter,opset", [("legacy", None), ("legacy", 14),
                                            pytest.param("dynamo", None, marks=needs_dynamo)])
def test_bert_encoder_two_inputs_two_outputs(exporter: str, opset: int | None) -> None:
    """BERT (embeddings, attention with an additive mask, LayerNorm, GELU, pooler): int64 ids and mask in, the
    hidden states and the pooled vector out. Opset 14 has neither LayerNormalization nor Gelu: the exporter writes
    ReduceMean / Sub / Pow / Sqrt / Div and x * 0.5 * (1 + erf(x / sqrt 2)), which become layer_norm and gelu."""
    net = _bert()
    ids, mask = tm.bert_inputs(2, 12, 100, 0, (12, 7))
    m = om.export(net, (ids, mask), exporter, opset=opset)
    if opset == 14:
        assert {"Erf", "ReduceMean", "Sqrt"} <= {n.op_type for n in m.graph.node}
    cm = from_onnx(m)
    assert [r.name for r in cm.layers] == _bert_layers(net)
    assert cm.inputs == [((12,), "i32"), ((12,), "i32")]
    ops = Counter(n["op"] for n in cm.to_dict()["nodes"])
    assert ops["layer_norm"] == 5 and ops["gelu"] == 2 and ops["matmul"] == 4 and ops["embedding"] == 1
    ids, mask = tm.bert_inputs(3, 12, 100, 5, (12, 4, 9))
    got, ref = cm.load().run(ids.numpy(), mask.numpy()), om.ort_run(m, ids.numpy(), mask.numpy())
    assert len(got) == 2
    for g, r in zip(got, ref, strict=True):
        assert _rel(g, r) < DENSE_TOL


def test_bert_tanh_gelu_pattern() -> None:
    net = _bert("gelu_tanh")
    ids, mask = tm.bert_inputs(2, 12, 100, 0, (12, 7))
    m = om.export(net, (ids, mask), "legacy", opset=14)
    assert "Tanh" in {n.op_type for n in m.graph.node} and "Pow" in {n.op_type for n in m.graph.node}
    cm = from_onnx(m)
    gelus = [n for n in cm.to_dict()["nodes"] if n["op"] == "gelu"]
    assert len(gelus) == 2 and all(n["attrs"]["approximate"] == 1 for n in gelus)
    got, ref = cm.load().run(ids.numpy(), mask.numpy()), om.ort_run(m, ids.numpy(), mask.numpy())
    for g, r in zip(got, ref, strict=True):
        assert _rel(g, r) < DENSE_TOL


# -- compression ---------------------------------------------------------------------------------------------
def test_pruned_weights_keep_their_zeros_and_get_a_sparse_encoding() -> None:
    net = _cnn(om.LeNet300)
    with torch.no_grad():
        w = net.fc1.weight
        w[torch.rand(w.shape, generator=torch.Generator().manual_seed(3)) < 0.9] = 0.0
    nnz = int((net.fc1.weight != 0).sum())
    m = om.export(net, (torch.from_numpy(_x(om.LeNet300, 2)),), "legacy")
    cm = from_onnx(m)
    fc1 = cm.layers[0]
    assert fc1.name == "fc1" and fc1.nonzeros == nnz and fc1.encoding.startswith("csr")
    assert cm.layers[1].encoding == "dense"
    np.testing.assert_array_equal(cm.dense_weights()["fc1"][0], net.fc1.weight.detach().numpy())
    x = _x(om.LeNet300, 4)
    np.testing.assert_allclose(cm.load().run(x), om.ort_run(m, x)[0], atol=1e-5)


def test_sparsity_and_bits_compress_and_match_the_reference() -> None:
    net = _cnn(om.LeNet300)
    m = om.export(net, (torch.from_numpy(_x(om.LeNet300, 2)),), "legacy")
    cm = from_onnx(m, sparsity=0.9, bits=4)
    for r in cm.layers:
        assert r.density <= 0.101 and r.bits <= 4 and r.encoding in ("codebook", "csr+codebook"), r
    assert cm.file_bytes < from_onnx(m).file_bytes / 10
    x = _x(om.LeNet300, 4)
    np.testing.assert_allclose(cm.load().run(x), cm.run_numpy(x), rtol=1e-5, atol=1e-5)


def test_compression_per_layer_names() -> None:
    net = _cnn(om.LeNet300)
    m = om.export(net, (torch.from_numpy(_x(om.LeNet300, 2)),), "legacy")
    cm = from_onnx(m, sparsity={"fc1": 0.95}, bits={"fc2": 3}, optimize="speed", metadata={"note": "x"})
    r = {r.name: r for r in cm.layers}
    assert r["fc1"].density <= 0.051 and r["fc2"].bits <= 3 and (r["fc3"].nonzeros, r["fc3"].bits) == (1000, 32)
    assert cm.metadata["note"] == "x"
    with pytest.raises(ValueError, match="fc9"):
        from_onnx(m, sparsity={"fc9": 0.5})


# -- quantized models ----------------------------------------------------------------------------------------
def _inits(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}


@pytest.fixture(scope="module")
def float_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, cls in (("mlp", om.LeNet300), ("lenet5", om.LeNet5)):
        path = d / f"{name}.onnx"
        onnx.save(om.export(_cnn(cls), (torch.from_numpy(_x(cls, 2)),), "legacy"), str(path))
        out[name] = str(path)
    return out


@pytest.mark.parametrize("name,per_channel", [("mlp", False), ("mlp", True), ("lenet5", False)])
def test_quantize_dynamic_model(float_models: dict[str, str], tmp_path, name: str, per_channel: bool) -> None:
    """onnxruntime's quantize_dynamic: DynamicQuantizeLinear + MatMulInteger (+ ConvInteger for LeNet-5) become
    dynamic int8 layers holding the file's integers and scales exactly."""
    from onnxruntime.quantization import quantize_dynamic

    qpath = tmp_path / "q.onnx"
    quantize_dynamic(float_models[name], str(qpath), per_channel=per_channel)
    m = onnx.load(str(qpath))
    assert "MatMulInteger" in {n.op_type for n in m.graph.node}
    cm = from_onnx(str(qpath))
    inits = _inits(m)
    int8 = cm.metadata["onnx_int8"]
    for r in cm.layers:
        if r.name in cm.metadata.get("onnx_dequantized", {}):  # LeNet-5's fc1: a batch norm folded into it
            assert r.quantize == "" and "batch norm" in cm.metadata["onnx_dequantized"][r.name]
            continue
        assert r.quantize == "dynamic" and r.encoding in ("int8", "csr+int8") and r.name in int8
    # the file's weights, exactly: W = (q - zero point) * scale
    q = inits["fc2.weight_Transposed_quantized"].astype(np.int64) - inits["fc2.weight_Transposed_zero_point"]
    s = inits["fc2.weight_Transposed_scale"]
    np.testing.assert_array_equal(cm.dense_weights()["fc2"][0], (q * s).astype(np.float32).T)
    x = _x(om.LeNet300, 6, seed=4)
    ref = om.ort_run(m, x)[0]
    assert _rel(cm.load().run(x), ref) < INT8_TOL
    np.testing.assert_allclose(cm.load().run(x), cm.run_numpy(x), rtol=2e-2, atol=2e-2 * np.abs(ref).max())


def test_static_qdq_model(float_models: dict[str, str], tmp_path) -> None:
    """quantize_static in QDQ format: the weights' DequantizeLinear give int8 layers with the file's scales; the
    activations' QuantizeLinear / DequantizeLinear pairs become clamps to their uint8 range (a ReLU ORT fused into
    the quantization stays a ReLU)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter({"input0": _x(om.LeNet5, 1, seed=s)} for s in range(8))

        def get_next(self) -> dict | None:
            return next(self.it, None)

    qpath = tmp_path / "qdq.onnx"
    quantize_static(float_models["lenet5"], str(qpath), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    m = onnx.load(str(qpath))
    cm = from_onnx(m)
    assert set(cm.metadata["onnx_int8"]) == {"conv1", "conv2", "fc1", "fc2", "fc3"}
    assert any("clamps" in n for n in cm.metadata["onnx_notes"])
    inits = _inits(m)
    w = inits["fc3.weight_quantized"].astype(np.float32) * inits["fc3.weight_scale"][:, None]
    np.testing.assert_array_equal(cm.dense_weights()["fc3"][0], w)
    x = _x(om.LeNet5, 6, seed=11)
    assert _rel(cm.load().run(x), om.ort_run(m, x)[0]) < INT8_TOL


@pytest.mark.parametrize("axis", [1, 0])
def test_qdq_weight_scales_along_the_outputs_or_not(axis: int) -> None:
    """A MatMul weight [K, N] dequantized with scales per column (axis 1: the output channels) is an int8 layer;
    with scales per row (axis 0: the inputs) the runtime cannot hold them, and the layer is float, saying why. The
    layer is named after the weight initializer (quantization suffix and .weight dropped)."""
    rng = np.random.default_rng(2)
    q = rng.integers(-127, 128, (6, 5)).astype(np.int8)
    scale = (rng.random(q.shape[axis]) * 0.01 + 0.001).astype(np.float32)
    m = om.model([helper.make_node("DequantizeLinear", ["proj.weight_quantized", "ws"], ["w"], axis=axis, name="dq"),
                  helper.make_node("MatMul", ["x", "w"], ["y"], name="node_MatMul_3")],
                 [("x", T.FLOAT, ["b", 6])], ["y"], {"proj.weight_quantized": q, "ws": scale}, opset=13)
    cm = from_onnx(m)
    (layer,) = cm.layers
    assert layer.name == "proj"
    if axis == 1:
        assert layer.quantize == "dynamic" and "onnx_dequantized" not in cm.metadata
    else:
        assert layer.quantize == "" and "axis 0" in cm.metadata["onnx_dequantized"]["proj"]
    w = q.astype(np.float32) * (scale[None, :] if axis == 1 else scale[:, None])
    np.testing.assert_array_equal(cm.dense_weights()["proj"][0], w.T)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    assert _rel(cm.load().run(x), om.ort_run(m, x)[0]) < (INT8_TOL if axis == 1 else 1e-6)


# -- op forms exporters rarely write, refusals, inputs --------------------------------------------------------
@pytest.mark.parametrize("case", sorted(om.op_cases()))
def test_op_forms_match_onnx_runtime(case: str) -> None:
    m, xs = om.op_cases()[case]
    cm = from_onnx(m)
    np.testing.assert_allclose(cm.load().run(*xs), om.ort_run(m, *xs)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("op", ["TopK", "Where"])
def test_unsupported_op_names_the_op_and_node(op: str) -> None:
    k = {"TopK": ["r", "k"], "Where": ["cond", "r", "zero"]}[op]
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu0"),
             helper.make_node(op, k, ["y", "i"] if op == "TopK" else ["y"], name=f"my_{op.lower()}", axis=-1)
             if op == "TopK" else helper.make_node(op, k, ["y"], name=f"my_{op.lower()}")]
    m = om.model(nodes, [("x", T.FLOAT, ["b", 8])], ["y"], {"k": np.array([3], np.int64), "zero": np.zeros(1, np.float32),
                                                          "cond": np.arange(8) % 2 == 0})
    with pytest.raises(pyruntime.UnsupportedError) as e:
        from_onnx(m)
    msg = str(e.value)
    assert f"'{op}'" in msg and f"my_{op.lower()}" in msg and "Gemm" in msg and "\n" not in msg


def test_refusals_name_the_problem() -> None:
    h = helper
    seq = om.model([h.make_node("Relu", ["x"], ["y"])], [("x", T.FLOAT, ["b", "seq", 4])], ["y"])
    with pytest.raises(pyruntime.UnsupportedError, match="symbolic dim 'seq' at axis 1"):
        from_onnx(seq)
    merge = om.model([h.make_node("Reshape", ["x", "s"], ["y"], name="merge")], [("x", T.FLOAT, ["b", 3, 4])],
                     ["y"], {"s": np.array([-1, 4], np.int64)})
    with pytest.raises(pyruntime.UnsupportedError, match="Reshape node 'merge'.*batch dim"):
        from_onnx(merge)
    batch_t = om.model([h.make_node("Transpose", ["x"], ["y"], perm=[1, 0, 2], name="t")],
                       [("x", T.FLOAT, ["b", 3, 4])], ["y"])
    with pytest.raises(pyruntime.UnsupportedError, match="Transpose node 't'.*batch"):
        from_onnx(batch_t)
    erf = om.model([h.make_node("Erf", ["x"], ["y"], name="lonely")], [("x", T.FLOAT, ["b", 4])], ["y"])
    with pytest.raises(pyruntime.UnsupportedError, match="'Erf'.*lonely"):
        from_onnx(erf)


def test_path_bytes_and_model_proto_convert_alike(tmp_path) -> None:
    m = om.export(_cnn(om.LeNet300), (torch.from_numpy(_x(om.LeNet300, 2)),), "legacy")
    path = tmp_path / "mlp.onnx"
    onnx.save(m, str(path))
    data = from_onnx(m).to_bytes()
    for source in (str(path), path, path.read_bytes(), onnx.load(str(path))):
        assert from_onnx(source).to_bytes() == data
    with pytest.raises(TypeError, match="path, bytes or an onnx.ModelProto"):
        from_onnx(12)
    with pytest.raises(ValueError, match="not an ONNX model"):
        from_onnx(b"\x00not a model")


def test_missing_onnx_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "pyruntime\[onnx\]"'):
        from_onnx(b"")
