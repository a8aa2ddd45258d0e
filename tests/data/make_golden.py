"""Writes the golden files of tests/data: golden_v1.pyrt + golden_v1_expected.npz (format version 1),
golden_v2.pyrt + golden_v2_expected.npz (format version 2, a small convolutional net), golden_v3.pyrt +
golden_v3_expected.npz (format version 3, int8 layers) and golden_v5.pyrt + golden_v5_expected.npz (format
version 5, an attention block and the CNN ops of version 5).

Each was run once, when its file was created; never again. The committed bytes are the contract: every
later reader must load them to the same tensors and outputs (tests/format/test_golden.py), and the test
pins each file's SHA-256 so that a regenerated file cannot slip in unnoticed. The script refuses to
overwrite an existing golden file.

Version 1 touches every part of version 1: a rank-3 input with flatten, the four weight encodings,
packed and Huffman-coded index streams, column gaps with fillers, an empty row, codebooks of 1..8-bit
indices, relu, softmax and a metadata section.

Version 2 adds every version-2 op: a conv2d with a csr+codebook weight and a bias, relu, a 3x3/2 max
pool with ceil_mode, a dilated depthwise conv (codebook weight) with asymmetric padding, a residual add,
a 3x3/2 avg pool (count_include_pad = 0), a 1x1 conv (csr), a concat on the channel axis, a strided
conv (dense, groups 2, no bias) pooled and concatenated on the last axis, global_avg_pool, flatten,
a csr linear layer, a clamp, reshapes (one of a value no node reads).

Version 3 adds int8: a linear with an int8 weight (dynamic activation scales), a qlinear with a csr+int8
weight and a bias giving int8 (output scale = the next layer's input scale) through a relu to a qlinear
with an int8 weight giving float32 with a clamp, a zero channel, Huffman-coded and packed value streams,
then a float32 linear and a softmax.

Version 5 adds the transformer ops and typed inputs: three inputs (token ids i32 [6], a float mask [6], an
image [2, 4, 4]) and three outputs; an embedding stored csr+codebook, a constant operand broadcast over the
tokens, layer_norm, linear over the last axis (codebook, dense), head reshapes and transposes, matmul, div,
a mask made by sub and mul with constants, softmax_axis, gelu (tanh form), silu, slice, tanh; on the image
upsample_nearest, adaptive_avg_pool2d, leaky_relu, sigmoid and a broadcast product with a pooled gate.

    python tests/data/make_golden.py 3      (needs the built package: pyruntime._core.write_model)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
try:
    from pyruntime import _core
except ImportError:  # not installed: the source tree, with _core built in place
    sys.path.insert(0, str(HERE.parents[1]))
    from pyruntime import _core


def csr_index(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rowptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.uint32)
    return rowptr, np.nonzero(mask)[1].astype(np.uint32)


def build() -> dict:
    rng = np.random.default_rng(20261121)
    tensors: list[dict] = []

    def add(t: dict) -> int:
        tensors.append(t)
        return len(tensors) - 1

    def bias(n: int, name: str) -> int:
        return add({"name": name, "encoding": "dense", "shape": [n],
                    "values": (0.1 * rng.standard_normal(n)).astype(np.float32)})

    # fc0: dense 24 x 32
    w0 = add({"name": "fc0.weight", "encoding": "dense", "shape": [24, 32],
              "values": (rng.standard_normal(24 * 32) / np.sqrt(32)).astype(np.float32)})
    b0 = bias(24, "fc0.bias")
    # fc1: csr 20 x 24, 30% dense, row 3 empty, long gaps (fillers) in row 0, 3-bit gaps
    mask = rng.random((20, 24)) < 0.3
    mask[3] = False
    mask[0] = False
    mask[0, [0, 17, 23]] = True
    rowptr, colidx = csr_index(mask)
    w1 = add({"name": "fc1.weight", "encoding": "csr", "shape": [20, 24], "rowptr": rowptr, "colidx": colidx,
              "values": (rng.standard_normal(colidx.size) / 2).astype(np.float32), "gap_bits": 3})
    b1 = bias(20, "fc1.bias")
    # fc2: codebook 16 x 20, k = 5, 3-bit indices, skewed (Huffman-coded)
    p = np.array([0.6, 0.2, 0.1, 0.06, 0.04])
    w2 = add({"name": "fc2.weight", "encoding": "codebook", "shape": [16, 20],
              "centroids": np.array([0.0, -0.25, 0.25, -0.5, 0.5], np.float32),
              "indices": rng.choice(5, 16 * 20, p=p).astype(np.uint8), "index_bits": 3})
    b2 = bias(16, "fc2.bias")
    # fc3: csr+codebook 12 x 16, 60% dense, 4-bit gaps (mostly small: Huffman-coded), k = 16, 4-bit
    # uniform indices (packed)
    mask = rng.random((12, 16)) < 0.6
    rowptr, colidx = csr_index(mask)
    w3 = add({"name": "fc3.weight", "encoding": "csr+codebook", "shape": [12, 16], "rowptr": rowptr,
              "colidx": colidx, "centroids": np.sort(rng.standard_normal(16)).astype(np.float32) / 2,
              "indices": rng.integers(0, 16, colidx.size).astype(np.uint8), "index_bits": 4, "gap_bits": 4})
    # fc4: codebook 10 x 12, k = 2 (1-bit indices), no bias; fc5: codebook 10 x 10, k = 200 (8-bit)
    w4 = add({"name": "fc4.weight", "encoding": "codebook", "shape": [10, 12],
              "centroids": np.array([-0.4, 0.4], np.float32),
              "indices": rng.integers(0, 2, 120).astype(np.uint8), "index_bits": 1})
    w5 = add({"name": "fc5.weight", "encoding": "codebook", "shape": [10, 10],
              "centroids": np.linspace(-1, 1, 200, dtype=np.float32),
              "indices": rng.integers(0, 200, 100).astype(np.uint8), "index_bits": 8})
    b5 = bias(10, "fc5.bias")

    nodes = [
        {"op": "flatten", "inputs": [0]},
        {"op": "linear", "inputs": [1], "tensors": [w0, b0]},
        {"op": "relu", "inputs": [2]},
        {"op": "linear", "inputs": [3], "tensors": [w1, b1]},
        {"op": "relu", "inputs": [4]},
        {"op": "linear", "inputs": [5], "tensors": [w2, b2]},
        {"op": "relu", "inputs": [6]},
        {"op": "linear", "inputs": [7], "tensors": [w3]},
        {"op": "relu", "inputs": [8]},
        {"op": "linear", "inputs": [9], "tensors": [w4]},
        {"op": "linear", "inputs": [10], "tensors": [w5, b5]},
        {"op": "softmax", "inputs": [11]},
    ]
    meta = {"producer": "pyruntime golden-file generator", "format_version": 1, "note": "do not regenerate"}
    return {"input_shape": [2, 4, 4], "nodes": nodes, "tensors": tensors, "metadata": json.dumps(meta)}


def dense_matrix(t: dict) -> np.ndarray:
    """The full float32 weight a tensor dict stands for."""
    rows = t["shape"][0]
    cols = int(np.prod(t["shape"][1:]))
    if t["encoding"] == "dense":
        return np.asarray(t["values"], np.float32).reshape(t["shape"])
    if t["encoding"] == "codebook":
        return t["centroids"][t["indices"]].reshape(rows, cols)
    w = np.zeros((rows, cols), np.float32)
    vals = t["values"] if t["encoding"] == "csr" else t["centroids"][t["indices"]]
    for r in range(rows):
        lo, hi = t["rowptr"][r], t["rowptr"][r + 1]
        w[r, t["colidx"][lo:hi]] = vals[lo:hi]
    return w


def build_v2() -> dict:
    """input [3, 12, 12] -> ... -> [10]; value shapes in the comments."""
    rng = np.random.default_rng(20261122)
    tensors: list[dict] = []

    def add(t: dict) -> int:
        tensors.append(t)
        return len(tensors) - 1

    def bias(n: int, name: str) -> int:
        return add({"name": name, "encoding": "dense", "shape": [n],
                    "values": (0.1 * rng.standard_normal(n)).astype(np.float32)})

    def conv(stride, padding, dilation, groups) -> dict:
        return {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}

    # conv0: csr+codebook [8, 3, 3, 3] (rows 8, cols 27), 50% dense, k = 8, with an empty row
    mask = rng.random((8, 27)) < 0.5
    mask[5] = False
    rowptr, colidx = csr_index(mask)
    c0 = add({"name": "conv0.weight", "encoding": "csr+codebook", "shape": [8, 3, 3, 3], "rowptr": rowptr,
              "colidx": colidx, "centroids": np.sort(rng.standard_normal(8)).astype(np.float32) / 2,
              "indices": rng.integers(0, 8, colidx.size).astype(np.uint8)})
    c0b = bias(8, "conv0.bias")
    # dw: depthwise codebook [8, 1, 3, 3], k = 4 (2-bit indices, Huffman-coded)
    dw = add({"name": "dw.weight", "encoding": "codebook", "shape": [8, 1, 3, 3],
              "centroids": np.array([-0.5, -0.1, 0.2, 0.6], np.float32),
              "indices": rng.choice(4, 72, p=[0.05, 0.85, 0.05, 0.05]).astype(np.uint8)})  # skewed: Huffman
    # pw: 1x1 csr [6, 8, 1, 1], 40% dense
    mask = rng.random((6, 8)) < 0.4
    rowptr, colidx = csr_index(mask)
    pw = add({"name": "pw.weight", "encoding": "csr", "shape": [6, 8, 1, 1], "rowptr": rowptr, "colidx": colidx,
              "values": rng.standard_normal(colidx.size).astype(np.float32)})
    # sc: strided dense conv [6, 4, 2, 2], groups 2, no bias
    sc = add({"name": "sc.weight", "encoding": "dense", "shape": [6, 4, 2, 2],
              "values": (rng.standard_normal(96) / 4).astype(np.float32)})
    # fc: csr [10, 14], 60% dense
    mask = rng.random((10, 14)) < 0.6
    rowptr, colidx = csr_index(mask)
    fc = add({"name": "fc.weight", "encoding": "csr", "shape": [10, 14], "rowptr": rowptr, "colidx": colidx,
              "values": (rng.standard_normal(colidx.size) / 3).astype(np.float32)})
    fcb = bias(10, "fc.bias")

    pool = {"kernel": [3, 3], "stride": [2, 2], "padding": [0, 0, 0, 0], "ceil_mode": 1}
    nodes = [
        {"op": "conv2d", "inputs": [0], "tensors": [c0, c0b], "attrs": conv([1, 1], [1, 1, 1, 1], [1, 1], 1)},
        {"op": "relu", "inputs": [1]},                                                  # 2: [8, 12, 12]
        {"op": "max_pool2d", "inputs": [2], "attrs": pool},                             # 3: [8, 6, 6]
        {"op": "conv2d", "inputs": [3], "tensors": [dw],                                # 4: [8, 6, 6]
         "attrs": conv([1, 1], [2, 1, 2, 3], [2, 2], 8)},
        {"op": "add", "inputs": [3, 4]},                                                # 5: [8, 6, 6]
        {"op": "avg_pool2d", "inputs": [5],                                             # 6: [8, 3, 3]
         "attrs": {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1, 1, 1], "ceil_mode": 0,
                   "count_include_pad": 0}},
        {"op": "conv2d", "inputs": [6], "tensors": [pw], "attrs": conv([1, 1], [0, 0, 0, 0], [1, 1], 1)},
        {"op": "concat", "inputs": [6, 7], "attrs": {"axis": 0}},                       # 8: [14, 3, 3]
        {"op": "global_avg_pool", "inputs": [8]},                                       # 9: [14, 1, 1]
        {"op": "flatten", "inputs": [9]},                                               # 10: [14]
        {"op": "linear", "inputs": [10], "tensors": [fc, fcb]},                         # 11: [10]
        {"op": "clamp", "inputs": [11], "attrs": {"min": -0.8, "max": 1.0}},           # 12: [10]
        # a second branch: the strided grouped conv of value 3, reshaped, joined on the last axis
        {"op": "conv2d", "inputs": [3], "tensors": [sc], "attrs": conv([2, 2], [0, 0, 1, 1], [1, 1], 2)},
        {"op": "reshape", "inputs": [13], "attrs": {"shape": [6, 9]}},                  # 14: [6, 9], unread
        {"op": "reshape", "inputs": [12], "attrs": {"shape": [1, 10]}},                 # 15: [1, 10]
        {"op": "global_avg_pool", "inputs": [13]},                                      # 16: [6, 1, 1]
        {"op": "reshape", "inputs": [16], "attrs": {"shape": [1, 6]}},                  # 17: [1, 6]
        {"op": "concat", "inputs": [15, 17], "attrs": {"axis": 1}},                     # 18: [1, 16]
        {"op": "reshape", "inputs": [18], "attrs": {"shape": [16]}},                    # 19: [16]
    ]
    meta = {"producer": "pyruntime golden-file generator", "format_version": 2, "note": "do not regenerate"}
    return {"input_shape": [3, 12, 12], "nodes": nodes, "tensors": tensors, "metadata": json.dumps(meta)}


def int8_tensor(rng, rows: int, cols: int, name: str, density: float | None = None, skew: bool = False) -> dict:
    q = (np.clip(np.round(rng.standard_normal((rows, cols)) * 5), -127, 127) if skew
         else rng.integers(-127, 128, size=(rows, cols))).astype(np.int64)
    scales = (rng.random(rows) * 0.02 + 0.001).astype(np.float32)
    scales[1] = 0.0  # a channel of zeros
    if density is None:
        return {"name": name, "encoding": "int8", "shape": [rows, cols], "qvalues": q.ravel(), "scales": scales}
    q = np.where(rng.random((rows, cols)) < density, q, 0)
    rowptr, colidx = csr_index(q != 0)
    return {"name": name, "encoding": "csr+int8", "shape": [rows, cols], "rowptr": rowptr, "colidx": colidx,
            "qvalues": q[q != 0], "scales": scales}


def build_v3() -> dict:
    rng = np.random.default_rng(20261201)
    t = [
        int8_tensor(rng, 48, 30, "fc0.weight", skew=True),                 # 0: int8, Huffman-coded values
        {"name": "fc0.bias", "encoding": "dense", "shape": [48], "values": rng.standard_normal(48).astype(np.float32)},
        int8_tensor(rng, 24, 48, "q1.weight", density=0.4),                # 2: csr+int8
        {"name": "q1.bias", "encoding": "dense", "shape": [24], "values": rng.standard_normal(24).astype(np.float32)},
        int8_tensor(rng, 16, 24, "q2.weight"),                              # 4: int8, packed values
        {"name": "fc3.weight", "encoding": "dense", "shape": [10, 16],
         "values": (rng.standard_normal(160) * 0.3).astype(np.float32)},
    ]
    nodes = [
        {"op": "flatten", "inputs": [0]},                                            # 1: [30]
        {"op": "linear", "inputs": [1], "tensors": [0, 1]},                          # 2: dynamic int8
        {"op": "relu", "inputs": [2]},                                               # 3
        {"op": "qlinear", "inputs": [3], "tensors": [2, 3],
         "attrs": {"input_scale": 0.02, "output_scale": 0.05, "min": 0.0, "max": float("inf")}},  # 4: i8
        {"op": "relu", "inputs": [4]},                                               # 5: i8
        {"op": "qlinear", "inputs": [5], "tensors": [4],
         "attrs": {"input_scale": 0.05, "output_scale": 0.0, "min": -2.0, "max": 2.0}},            # 6: f32
        {"op": "linear", "inputs": [6], "tensors": [5]},                             # 7
        {"op": "softmax", "inputs": [7]},                                            # 8
    ]
    meta = {"golden": "format version 3", "note": "do not regenerate: the committed bytes are the contract"}
    return {"input_shape": [5, 6], "nodes": nodes, "tensors": t, "metadata": json.dumps(meta)}


def build_v5() -> dict:
    rng = np.random.default_rng(20261202)

    def dense(shape, name, scale=0.3):
        return {"name": name, "encoding": "dense", "shape": list(shape),
                "values": (rng.standard_normal(int(np.prod(shape))) * scale).astype(np.float32)}

    def const(v, name):
        return {"name": name, "encoding": "dense", "shape": [1], "values": np.array([v], np.float32)}

    def n(op, inputs, tensors=(), **attrs):
        return {"op": op, "inputs": list(inputs), "tensors": list(tensors), **({"attrs": attrs} if attrs else {})}

    mask = rng.random((11, 8)) < 0.5
    rowptr, colidx = csr_index(mask)
    t = [
        {"name": "emb.weight", "encoding": "csr+codebook", "shape": [11, 8], "rowptr": rowptr, "colidx": colidx,
         "centroids": np.array([-0.5, -0.2, 0.2, 0.5], np.float32),
         "indices": rng.integers(0, 4, colidx.size).astype(np.uint8), "index_bits": 2},   # 0
        dense((6, 8), "pos"),                                                              # 1
        dense((8,), "ln.weight"), dense((8,), "ln.bias"),                                  # 2, 3
        {"name": "qk.weight", "encoding": "codebook", "shape": [16, 8],
         "centroids": np.array([-0.4, -0.1, 0.1, 0.4], np.float32),
         "indices": rng.integers(0, 4, 128).astype(np.uint8), "index_bits": 2},            # 4
        dense((8, 8), "v.weight"), dense((8,), "v.bias"),                                  # 5, 6
        const(2.0, "sqrt_d"), const(1.0, "one"), const(1e4, "big"),                        # 7, 8, 9
    ]
    nodes = [
        n("embedding", [0], [0]),                          # 3: [6, 8]
        n("add", [3], [1]),                                # 4: + positions
        n("layer_norm", [4], [2, 3], eps=1e-5),            # 5
        n("linear", [5], [4]),                             # 6: [6, 16] q|k
        n("slice", [6], axis=1, start=0, end=8, step=1),   # 7: q
        n("slice", [6], axis=1, start=8, end=16, step=1),  # 8: k
        n("reshape", [7], shape=[6, 2, 4]),                # 9
        n("transpose", [9], perm=[1, 0, 2, 0]),            # 10: [2, 6, 4]
        n("reshape", [8], shape=[6, 2, 4]),                # 11
        n("transpose", [11], perm=[1, 2, 0, 0]),           # 12: [2, 4, 6]
        n("matmul", [10, 12]),                             # 13: [2, 6, 6]
        n("div", [13], [7]),                               # 14
        n("reshape", [1], shape=[1, 1, 6]),                # 15: the mask
        n("sub", [15], [8]),                               # 16
        n("mul", [16], [9]),                               # 17
        n("add", [14, 17]),                                # 18: broadcast
        n("softmax_axis", [18], axis=2),                   # 19
        n("linear", [5], [5, 6]),                          # 20: v
        n("reshape", [20], shape=[6, 2, 4]),               # 21
        n("transpose", [21], perm=[1, 0, 2, 0]),           # 22
        n("matmul", [19, 22]),                             # 23: [2, 6, 4]
        n("transpose", [23], perm=[1, 0, 2, 0]),           # 24
        n("reshape", [24], shape=[6, 8]),                  # 25
        n("gelu", [25], approximate=1),                    # 26
        n("silu", [26]),                                   # 27
        n("slice", [27], axis=0, start=0, end=6, step=5),  # 28: tokens 0 and 5
        n("tanh", [28]),                                   # 29
        n("upsample_nearest", [2], scale=[2, 1]),          # 30: [2, 8, 4]
        n("adaptive_avg_pool2d", [30], output_size=[3, 3]),  # 31
        n("leaky_relu", [31], slope=0.1),                  # 32
        n("global_avg_pool", [32]),                        # 33: [2, 1, 1]
        n("sigmoid", [33]),                                # 34
        n("mul", [32, 34]),                                # 35: the gated image
    ]
    meta = {"golden": "format version 5", "note": "do not regenerate: the committed bytes are the contract"}
    return {"inputs": [{"shape": [6], "type": "i32"}, {"shape": [6], "type": "f32"}, {"shape": [2, 4, 4], "type": "f32"}],
            "outputs": [27, 29, 35], "nodes": nodes, "tensors": t, "metadata": json.dumps(meta)}


def write_v5() -> None:
    """Version 5: three inputs and three outputs, kept as input0.. and output0.. in the expected file."""
    import pyruntime

    path, expected = HERE / "golden_v5.pyrt", HERE / "golden_v5_expected.npz"
    for p in (path, expected):
        if p.exists():
            raise SystemExit(f"{p} exists: golden files are never regenerated")
    model = build_v5()
    data = _core.write_model(model)
    assert _core.read_model(data)["version"] == 5
    rng = np.random.default_rng(10)
    ids = rng.integers(0, 11, (4, 6)).astype(np.int32)
    mask = np.ones((4, 6), np.float32)
    mask[1, 4:] = 0.0
    image = rng.standard_normal((4, 2, 4, 4)).astype(np.float32)
    ys = pyruntime.load(data).run(ids, mask, image)
    path.write_bytes(data)
    weights = {f"tensor:{t['name']}": dense_matrix(t) for t in model["tensors"]}
    outs = {f"output{k}": y for k, y in enumerate(ys)}
    np.savez(expected, input0=ids, input1=mask, input2=image, **outs, **weights)
    print(f"{path.name}: {len(data)} bytes")


def write(version: int) -> None:
    if version == 5:
        return write_v5()
    import pyruntime

    path, expected = HERE / f"golden_v{version}.pyrt", HERE / f"golden_v{version}_expected.npz"
    for p in (path, expected):
        if p.exists():
            raise SystemExit(f"{p} exists: golden files are never regenerated")
    model = {1: build, 2: build_v2, 3: build_v3}[version]()
    data = _core.write_model(model)
    assert _core.read_model(data)["version"] == version
    if version == 1:
        x = np.random.default_rng(7).standard_normal((8, 2, 4, 4)).astype(np.float32)
    elif version == 2:
        x = np.random.default_rng(8).standard_normal((5, 3, 12, 12)).astype(np.float32)
    else:
        x = (np.random.default_rng(9).standard_normal((7, 5, 6)) * 2).astype(np.float32)
        x[3] = 0.0  # a sample of zeros: the dynamic layer gives its bias
    y = pyruntime.load(data).run(x)
    path.write_bytes(data)
    weights = {f"tensor:{t['name']}": dense_matrix(t) for t in model["tensors"] if t["encoding"] not in ("int8", "csr+int8")}
    for t in model["tensors"]:
        if t["encoding"] in ("int8", "csr+int8"):
            q = np.zeros(t["shape"], np.int8)
            if t["encoding"] == "int8":
                q[:] = np.asarray(t["qvalues"]).reshape(t["shape"])
            else:
                rows = np.repeat(np.arange(t["shape"][0]), np.diff(np.asarray(t["rowptr"], np.int64)))
                q[rows, np.asarray(t["colidx"], np.int64)] = t["qvalues"]
            weights[f"int8:{t['name']}"] = q
            weights[f"scales:{t['name']}"] = np.asarray(t["scales"], np.float32)
    np.savez(expected, input=x, output=y, **weights)
    print(f"{path.name}: {len(data)} bytes")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="write one golden file (never overwrites)")
    ap.add_argument("version", type=int, choices=[1, 2, 3, 5])
    write(ap.parse_args().version)


if __name__ == "__main__":
    main()
