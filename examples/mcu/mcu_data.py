#!/usr/bin/env python3
"""The host side of the microcontroller example (examples/mcu): the test images for the firmware, and the
check of the firmware's predictions against the host runtime's.

    python mcu_data.py images DATA_DIR images.h [--count 100]
        writes the first COUNT MNIST test images (uint8, 28x28) and their labels as a C header
    python mcu_data.py compare MODEL DATA_DIR qemu.log [--count 100] [--exact]
        runs MODEL in pyruntime (pyruntime.load(MODEL).run) on the same images, normalised as
        examples/lenet5.py feeds the model (pyruntime.datasets.load_mnist), reads the firmware's
        "image <i>: predicted <d> label <l>" lines from qemu.log and compares every prediction; with
        --exact also every output bit for bit ("bits <i> <h>", h: FNV-1a of the output floats'); exit 0 only if
        all COUNT agree
    python mcu_data.py int8 MODEL DATA_DIR OUT [--calibration 256] [--optimize speed|size]
        the same trained weights as int8: MODEL's layers decoded to float (codebooks, pruning and all), put
        back into torch, and converted with static int8 scales calibrated on the first training images
        (pyruntime.convert.from_torch(..., quantize="static")); a final softmax is left out, so the output
        is the last layer's own (f32) and the firmware can be compared with the host bit for bit
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

try:
    import pyruntime
except ImportError:  # a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import pyruntime

from pyruntime.datasets import load_mnist, mnist_dir

LINE = re.compile(r"^image (\d+): predicted (\d+) label (\d+)$", re.MULTILINE)
BITS = re.compile(r"^bits (\d+) ([0-9a-f]{8})$", re.MULTILINE)


def fnv1a(scores: np.ndarray) -> str:
    """FNV-1a (32-bit) of the float32 output's bytes, as main.c prints it."""
    h = 0x811C9DC5
    for b in np.ascontiguousarray(scores, np.float32).tobytes():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


def _data(directory: str):
    d = mnist_dir(directory)
    if d is None:
        sys.exit(f"mcu_data.py: {directory} does not hold the four MNIST idx files")
    return d


def write_images(data_dir: str, out: str, count: int) -> None:
    test = load_mnist(_data(data_dir), normalize=False).test  # x / 255 in float32: exact, so x * 255 is the pixel
    pixels = np.rint(test.x[:count] * 255).astype(np.uint8)
    labels = test.y[:count].astype(np.uint8)
    lines = [f"/* images.h: the first {len(labels)} MNIST test images (uint8, 28x28, row-major) and their labels,",
             " * written by examples/mcu/mcu_data.py. */",
             "#ifndef MCU_IMAGES_H_", "#define MCU_IMAGES_H_", "", "#include <stdint.h>", "",
             f"#define MCU_IMAGE_COUNT {len(labels)}u", "",
             f"static const uint8_t mcu_labels[{len(labels)}] = {{{','.join(map(str, labels))}}};", "",
             f"static const uint8_t mcu_images[{len(labels)}][784] = {{"]
    for img in pixels.reshape(len(labels), -1):
        lines.append("  {" + ",".join(map(str, img)) + "},")
    lines += ["};", "", "#endif /* MCU_IMAGES_H_ */", ""]
    Path(out).write_text("\n".join(lines))
    print(f"wrote {out}: {len(labels)} images")


def compare(model_path: str, data_dir: str, log: str, count: int, exact: bool = False) -> int:
    test = load_mnist(_data(data_dir)).test  # (x / 255 - 0.1307) / 0.3081, float32: what lenet5.py evaluates
    x, y = np.ascontiguousarray(test.x[:count, None]), test.y[:count]
    scores = pyruntime.load(model_path).run(x)
    host = scores.argmax(axis=1)
    text = Path(log).read_text(errors="replace")
    device = {int(i): (int(p), int(lab)) for i, p, lab in LINE.findall(text)}
    bits = {int(i): h for i, h in BITS.findall(text)}
    missing = [i for i in range(count) if i not in device]
    if missing:
        print(f"compare: the firmware printed no prediction for {len(missing)} of {count} images "
              f"(first: image {missing[0]})")
        return 1
    wrong_label = [i for i in range(count) if device[i][1] != y[i]]
    differ = [i for i in range(count) if device[i][0] != host[i]]
    for i in differ[:10]:
        print(f"compare: image {i}: firmware predicts {device[i][0]}, host runtime {host[i]} (host scores: "
              f"{scores[i, host[i]]:.7g} for {host[i]}, {scores[i, device[i][0]]:.7g} for {device[i][0]})")
    if wrong_label:
        print(f"compare: the firmware's labels differ from the MNIST file at {len(wrong_label)} images")
    host_correct = int((host == y).sum())
    other_bits = [i for i in range(count) if bits.get(i) != fnv1a(scores[i])]
    if exact and other_bits:
        print(f"compare: the outputs of {len(other_bits)} of {count} images differ from the host runtime's in some "
              f"bit (first: image {other_bits[0]}): MISMATCH")
        return 1
    if differ or wrong_label:
        print(f"compare: {count - len(differ)} of {count} predictions match the host runtime: MISMATCH")
        return 1
    same = ("every output bit for bit" if not other_bits else
            f"{count - len(other_bits)} of {count} outputs bit for bit (a C library's expf may round otherwise)")
    print(f"compare: all {count} predictions match the host runtime, {same} (host: {host_correct} of {count} correct)")
    return 0


def dense_weights(t: dict) -> np.ndarray:
    """A tensor of pyruntime._core.read_model as the float array it stands for."""
    shape = tuple(t["shape"])
    enc = t["encoding"]
    if enc == "dense":
        return np.asarray(t["values"], np.float32).reshape(shape)
    rows, cols = shape[0], int(np.prod(shape[1:]))
    if enc == "codebook":
        return np.asarray(t["centroids"], np.float32)[t["indices"]].reshape(shape)
    if enc not in ("csr", "csr+codebook"):
        sys.exit(f"mcu_data.py int8: tensor '{t['name']}' has encoding {enc}, which this script does not decode")
    values = t["values"] if enc == "csr" else np.asarray(t["centroids"], np.float32)[t["indices"]]
    w = np.zeros((rows, cols), np.float32)
    rowptr = np.asarray(t["rowptr"], np.int64)
    for r in range(rows):
        w[r, t["colidx"][rowptr[r]:rowptr[r + 1]]] = values[rowptr[r]:rowptr[r + 1]]
    return w.reshape(shape)


def to_int8(model_path: str, data_dir: str, out: str, calibration: int, optimize: str) -> None:
    """MODEL (a chain of conv2d, pools, flatten, linear, relu, softmax) as a torch Sequential with its decoded
    weights, converted to static int8; the final softmax dropped. optimize="speed" keeps a layer dense (int8)
    where the converter's cost model finds it faster than csr+int8 (LeNet-5's conv1 and fc2: the firmware's
    SMLAD path), "size" takes the smaller file."""
    import torch
    from torch import nn

    from pyruntime import _core
    from pyruntime.convert import from_torch

    d = _core.read_model(Path(model_path).read_bytes())
    layers = []
    for k, n in enumerate(d["nodes"]):
        if n["inputs"] != [k]:
            sys.exit("mcu_data.py int8: the model is not a chain of layers")
        op, a, ts = n["op"], n.get("attrs", {}), [d["tensors"][i] for i in n["tensors"]]
        if op in ("conv2d", "linear"):
            w = torch.from_numpy(dense_weights(ts[0]))
            b = torch.from_numpy(dense_weights(ts[1])) if len(ts) > 1 else None
            if op == "linear":
                m = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
            else:
                top, left, bottom, right = a["padding"]
                if (top, left) != (bottom, right):
                    sys.exit("mcu_data.py int8: asymmetric padding")
                m = nn.Conv2d(w.shape[1] * a["groups"], w.shape[0], tuple(w.shape[2:]), stride=tuple(a["stride"]),
                              padding=(top, left), dilation=tuple(a["dilation"]), groups=a["groups"],
                              bias=b is not None)
            with torch.no_grad():
                m.weight.copy_(w)
                if b is not None:
                    m.bias.copy_(b)
            layers.append(m)
        elif op == "max_pool2d":
            layers.append(nn.MaxPool2d(tuple(a["kernel"]), tuple(a["stride"]), ceil_mode=bool(a["ceil_mode"])))
            if any(a["padding"]):
                sys.exit("mcu_data.py int8: a padded pool")
        elif op in ("flatten", "relu"):
            layers.append(nn.Flatten() if op == "flatten" else nn.ReLU())
        elif op == "softmax" and k == len(d["nodes"]) - 1:
            pass  # left out: the logits give the same predictions and compare bit for bit
        else:
            sys.exit(f"mcu_data.py int8: op {op} is not handled here")
    net = nn.Sequential(*layers).eval()
    train = load_mnist(_data(data_dir)).train
    x = torch.from_numpy(np.ascontiguousarray(train.x[:calibration, None]))
    cm = from_torch(net, x[:1], quantize="static", calibration=x, optimize=optimize,
                    metadata={**json.loads(d["metadata"] or "{}"), "int8_from": Path(model_path).name})
    cm.save(out)
    encodings = ", ".join(f"{r.name} {r.encoding}" for r in cm.layers)
    print(f"wrote {out}: {cm.file_bytes} bytes, static int8 from {Path(model_path).name} "
          f"(calibrated on {calibration} training images; {encodings})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("images", help="write the images header")
    i.add_argument("data")
    i.add_argument("out")
    i.add_argument("--count", type=int, default=100)
    c = sub.add_parser("compare", help="compare the firmware's predictions with the host runtime's")
    c.add_argument("model")
    c.add_argument("data")
    c.add_argument("log")
    c.add_argument("--count", type=int, default=100)
    c.add_argument("--exact", action="store_true", help="also require every output bit for bit")
    q = sub.add_parser("int8", help="the model's weights as a static int8 model")
    q.add_argument("model")
    q.add_argument("data")
    q.add_argument("out")
    q.add_argument("--calibration", type=int, default=256)
    q.add_argument("--optimize", choices=("speed", "size"), default="speed")
    args = p.parse_args(argv)
    if args.cmd == "images":
        write_images(args.data, args.out, args.count)
        return 0
    if args.cmd == "int8":
        to_int8(args.model, args.data, args.out, args.calibration, args.optimize)
        return 0
    return compare(args.model, args.data, args.log, args.count, args.exact)


if __name__ == "__main__":
    sys.exit(main())
