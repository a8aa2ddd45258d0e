"""Small torch networks for the from_onnx tests (tests/convert/test_from_onnx.py), their export with
torch.onnx.export, and ONNX Runtime's outputs on the same inputs (torch, onnx and onnxruntime are imported by the
caller's module, which skips without them).

  LeNet300     LeNet-300-100: flatten, 784 -> 300 -> 100 -> 10, ReLU.
  LeNet5       LeNet-5 with batch norms: conv 5x5 (pad 2) + BN + ReLU + max pool, conv 5x5 + BN + ReLU + average
               pool, flatten, linear + BatchNorm1d + ReLU, linear + Tanh, linear + softmax.
  ResidualCNN  a stem conv, two branches (3x3 conv + BN, 1x1 conv) concatenated, a 1x1 conv added back to the
               stem (residual), ReLU6, max pool 3 / 2 / pad 1, nearest upsampling x2, LeakyReLU, a grouped conv,
               average pool, global average pool, flatten, linear, sigmoid.
  Conv1dNet    Conv1d + BatchNorm1d + ReLU, MaxPool1d, a strided Conv1d, flatten, linear.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnx
import torch
from torch import nn


class LeNet300(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class LeNet5(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.bn3 = nn.BatchNorm1d(120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = nn.functional.avg_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        x = x.view(x.size(0), -1)
        x = torch.relu(self.bn3(self.fc1(x)))
        x = torch.tanh(self.fc2(x))
        return torch.softmax(self.fc3(x), dim=1)


class ResidualCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.branch_a = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(8)
        self.branch_b = nn.Conv2d(8, 8, 1)
        self.merge = nn.Conv2d(16, 8, 1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.stem(x))
        a = self.bn_a(self.branch_a(s))
        b = self.branch_b(s)
        y = nn.functional.relu6(self.merge(torch.cat([a, b], dim=1)) + s)
        y = nn.functional.max_pool2d(y, 3, stride=2, padding=1)
        y = nn.functional.interpolate(y, scale_factor=2, mode="nearest")
        y = nn.functional.leaky_relu(self.grouped(y), 0.1)
        y = nn.functional.avg_pool2d(y, 2)
        y = torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1)
        return torch.sigmoid(self.fc(y))


class Conv1dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(4, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm1d(8)
        self.conv2 = nn.Conv1d(8, 6, 3, stride=2)
        self.fc = nn.Linear(6 * 2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool1d(torch.relu(self.bn1(self.conv1(x))), 2)
        return self.fc(torch.flatten(self.conv2(x), 1))


def randomize(net: nn.Module, seed: int = 0) -> nn.Module:
    """Weights N(0, 1 / sqrt(fan in)), biases N(0, 0.1), batch norms with random running statistics and affine
    parameters; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, 1.0 / fan_in ** 0.5, generator=g)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.1, generator=g)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.normal_(0.0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
    return net.eval()


def has_dynamo_exporter() -> bool:
    """The default (torch.export-based) exporter needs onnxscript."""
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def export(net: nn.Module, args: tuple, exporter: str = "legacy", *, names: tuple[str, ...] | None = None,
           dynamic_batch: bool = True, opset: int | None = None, fold: bool = True) -> onnx.ModelProto:
    """``net`` exported with torch.onnx.export: ``exporter`` "legacy" (TorchScript, dynamo=False) or "dynamo" (the
    default of torch >= 2.9; needs onnxscript), the batch dim symbolic unless ``dynamic_batch`` is False. ``fold``
    False (legacy) keeps the batch norms and the Shape chains of reshapes as nodes."""
    names = names or tuple(f"input{k}" for k in range(len(args)))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch")
            shapes = tuple({0: batch} for _ in args) if dynamic_batch else None
            program = torch.onnx.export(net, args, dynamo=True, input_names=list(names), dynamic_shapes=shapes,
                                        opset_version=opset, verbose=False)
            return program.model_proto
        f = io.BytesIO()
        torch.onnx.export(net, args, f, dynamo=False, input_names=list(names), opset_version=opset,
                          dynamic_axes={n: {0: "batch"} for n in names} if dynamic_batch else None,
                          do_constant_folding=fold)
        return onnx.load_from_string(f.getvalue())


def ort_run(model: onnx.ModelProto | bytes, *xs: np.ndarray) -> list[np.ndarray]:
    """ONNX Runtime's outputs of ``model`` on ``xs`` (one array per graph input, in order)."""
    import onnxruntime as ort

    data = model if isinstance(model, bytes) else model.SerializeToString()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), xs, strict=True)}
    return sess.run(None, feeds)


class SharedBN(nn.Module):
    """A conv whose output is read by its batch norm and by the residual add after it: the batch norm cannot fold
    into the conv (it becomes a per-channel mul and add)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.fc(torch.flatten(torch.relu(self.bn(y) + y), 1))


# --------------------------------------------------------------------------------------------------
# Graphs built with onnx.helper: the ops and forms exporters rarely write


def model(nodes: list, inputs: list, outputs: list[str], inits: dict | None = None, opset: int = 17,
          name: str = "test") -> onnx.ModelProto:
    """A model of ``nodes``; ``inputs`` as (name, element type, shape) with the batch first (a str: symbolic),
    float outputs, ``inits`` name -> array."""
    from onnx import helper, numpy_helper

    g = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [onnx.ValueInfoProto(name=n, type=helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, None)) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def op_cases() -> dict[str, tuple[onnx.ModelProto, list[np.ndarray]]]:
    """name -> (model, inputs): each a few ops in the forms the exporters of tests/convert/test_from_onnx.py do not
    write (Gemm without transB, with alpha and beta; a constant times an activation; a vector operand; Split, Slice
    with steps, Squeeze / Unsqueeze, Flatten, Expand; HardSwish / HardSigmoid / Pow / Neg / c - x / Clip; opset-11
    Softmax; auto_pad SAME, ceil_mode, count_include_pad 0, GlobalMaxPool; Resize by sizes, Upsample; Gather of
    constant indices; an embedding of int32 ids and the ReduceMean / Reciprocal form of a layer norm; values no output
    depends on)."""
    from onnx import TensorProto as T
    from onnx import helper as h

    rng = np.random.default_rng(7)
    F = T.FLOAT

    def w(*s: int) -> np.ndarray:
        return rng.standard_normal(s).astype(np.float32)

    def x(*s: int) -> np.ndarray:
        return rng.standard_normal(s).astype(np.float32)

    i64 = np.int64
    cases = {
        "gemm_alpha_beta": (model([h.make_node("Gemm", ["x", "w", "c"], ["y"], transB=0, alpha=0.5, beta=2.0)],
                                  [("x", F, ["b", 6])], ["y"], {"w": w(6, 5), "c": w(1, 5)}), [x(4, 6)]),
        "matmul_const_left": (model([h.make_node("MatMul", ["w", "x"], ["y"])], [("x", F, ["b", 6, 4])], ["y"],
                                    {"w": w(5, 6)}), [x(3, 6, 4)]),
        "matmul_vector": (model([h.make_node("MatMul", ["x", "w"], ["y"])], [("x", F, ["b", 3, 6])], ["y"],
                                {"w": w(6)}), [x(3, 3, 6)]),
        "shape_ops": (model([
            h.make_node("Split", ["x", "sp"], ["a", "b"], axis=2),
            h.make_node("Slice", ["a", "st", "en", "ax", "stp"], ["s"]),
            h.make_node("Transpose", ["b"], ["t"], perm=[0, 2, 1]),
            h.make_node("Unsqueeze", ["t", "one"], ["u"]),
            h.make_node("Squeeze", ["u", "one"], ["q"]),
            h.make_node("Flatten", ["q"], ["f"]),
            h.make_node("Flatten", ["s"], ["f2"]),
            h.make_node("Concat", ["f", "f2"], ["y"], axis=1)],
            [("x", F, ["b", 4, 6])], ["y"], {"sp": np.array([2, 4], i64), "st": np.array([-3], i64),
                                            "en": np.array([100], i64), "ax": np.array([1], i64),
                                            "stp": np.array([2], i64), "one": np.array([1], i64)}), [x(3, 4, 6)]),
        "unused_values": (model([  # a Split piece no one reads, a dangling Relu: no dead code in the graph
            h.make_node("Split", ["x"], ["a", "b"], axis=1, num_outputs=2), h.make_node("Relu", ["x"], ["dangling"]),
            h.make_node("Sigmoid", ["b"], ["y"])], [("x", F, ["b", 6])], ["y"], opset=18), [x(3, 6)]),
        "expand": (model([h.make_node("Expand", ["x", "sh"], ["e"]), h.make_node("Relu", ["e"], ["y"])],
                         [("x", F, ["b", 1, 4])], ["y"], {"sh": np.array([1, 3, 4], i64)}), [x(2, 1, 4)]),
        "elementwise": (model([
            h.make_node("HardSwish", ["x"], ["a"]), h.make_node("HardSigmoid", ["a"], ["b"], alpha=0.3, beta=0.4),
            h.make_node("Pow", ["x", "two"], ["p"]), h.make_node("Neg", ["p"], ["n"]),
            h.make_node("Sub", ["c", "n"], ["s"]), h.make_node("Div", ["s", "c"], ["d"]),
            h.make_node("Mul", ["d", "b"], ["m"]), h.make_node("Clip", ["m", "lo", "hi"], ["cl"]),
            h.make_node("LeakyRelu", ["cl"], ["y"], alpha=0.2)],
            [("x", F, ["b", 3, 5])], ["y"], {"two": np.array(2.0, np.float32), "c": w(5) + 3,
                                            "lo": np.array(-0.5, np.float32), "hi": np.array(2.0, np.float32)}),
            [x(4, 3, 5)]),
        "softmax_opset11": (model([h.make_node("Softmax", ["x"], ["y"], axis=1)], [("x", F, ["b", 3, 4])], ["y"],
                                  opset=11), [x(2, 3, 4)]),
        "pools": (model([
            h.make_node("Conv", ["x", "w"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2]),
            h.make_node("MaxPool", ["c"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
            h.make_node("AveragePool", ["c"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0),
            h.make_node("GlobalMaxPool", ["a"], ["g"]), h.make_node("GlobalAveragePool", ["m"], ["g2"]),
            h.make_node("Add", ["g", "g2"], ["y"])],
            [("x", F, ["b", 2, 9, 9])], ["y"], {"w": w(4, 2, 3, 3)}), [x(2, 2, 9, 9)]),
        "resize_sizes": (model([
            h.make_node("Resize", ["x", "", "", "sz"], ["r"], mode="nearest",
                        coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_floor"),
            h.make_node("Relu", ["r"], ["y"])], [("x", F, [2, 2, 3, 4])], ["y"], {"sz": np.array([2, 2, 6, 12], i64)},
            opset=13), [x(2, 2, 3, 4)]),
        "upsample_opset9": (model([h.make_node("Upsample", ["x", "sc"], ["y"], mode="nearest")],
                                  [("x", F, ["b", 2, 3, 4])], ["y"], {"sc": np.array([1, 1, 2, 1], np.float32)},
                                  opset=9), [x(2, 2, 3, 4)]),
        "gather_indices": (model([
            h.make_node("Gather", ["x", "i1"], ["a"], axis=1), h.make_node("Gather", ["x", "i2"], ["b"], axis=2),
            h.make_node("Gather", ["x", "i3"], ["c"], axis=-1), h.make_node("Flatten", ["c"], ["cf"]),
            h.make_node("Concat", ["a", "cf"], ["ac"], axis=1), h.make_node("Flatten", ["b"], ["y0"]),
            h.make_node("Concat", ["y0", "ac"], ["y"], axis=1)],
            [("x", F, ["b", 4, 5])], ["y"], {"i1": np.array(2, i64), "i2": np.array([4, 0, 2], i64),
                                            "i3": np.array([1, 3], i64)}), [x(3, 4, 5)]),
        "embedding_layer_norm": (model([
            h.make_node("Gather", ["table", "ids"], ["e"]),
            h.make_node("ReduceMean", ["e", "ax"], ["m"]), h.make_node("Sub", ["e", "m"], ["d"]),
            h.make_node("Mul", ["d", "d"], ["d2"]), h.make_node("ReduceMean", ["d2", "ax"], ["v"]),
            h.make_node("Add", ["v", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["sd"]),
            h.make_node("Reciprocal", ["sd"], ["r"]), h.make_node("Mul", ["d", "r"], ["y"])],
            [("ids", T.INT32, ["b", 7])], ["y"], {"table": w(10, 6), "ax": np.array([-1], i64),
                                                 "eps": np.array(1e-5, np.float32)}, opset=18),
            [rng.integers(0, 10, (3, 7)).astype(np.int32)]),
    }
    return cases
