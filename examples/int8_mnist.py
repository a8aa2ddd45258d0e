#!/usr/bin/env python3
"""LeNet-300-100 and LeNet-5 on MNIST in int8, dense and pruned, dynamic and static, run by pyruntime.

    python examples/int8_mnist.py --data /path/to/mnist      # or PYRUNTIME_MNIST=/path/to/mnist
    python examples/int8_mnist.py --quick                     # a shorter schedule

Steps:
  1. train the dense 784-300-100-10 MLP (Adam, random 2-pixel shifts) and measure it through the runtime
     (a lossless fp32 conversion);
  2. convert it to int8 with pyruntime.convert.from_torch(quantize=...): per-channel symmetric int8
     weights, activations quantized per sample at run time ("dynamic") or with scales calibrated on 2,000
     training images ("static": the layers then pass int8 to one another, relu fused);
  3. prune it to 10% of its weights by magnitude with retraining (masks kept) and convert that to int8
     too (csr+int8: the survivors quantized, the structure as in the csr encoding);
  4. measure each file's top-1 accuracy on the 10,000 test images through the runtime, and the RMS error
     of each layer's int8 weights;
  5. train Caffe's LeNet-5 and convert it: every layer int8 with dynamic scales, and every layer static
     (its convolutions qconv2d: int8 from the first convolution through the max pools to the last layer).

The data directory holds the four MNIST idx files (.gz or not); nothing is downloaded.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

try:
    import pyruntime
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import pyruntime

from pyruntime.datasets import MNIST_ENV, load_mnist, mnist_dir

DENSE_EPOCHS = {"quick": 3, "full": 15}
LENET5_EPOCHS = {"quick": 1, "full": 8}
PRUNE_EPOCHS = {"quick": 3, "full": 10}
SPARSITY = 0.9
CALIBRATION = 2000


def build_net():
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def accuracy(model: pyruntime.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.run(x).argmax(axis=1) == y).mean())


def run(data_dir: str | os.PathLike[str], *, quick: bool = False, seed: int = 0, threads: int = 1,
        lenet5: bool = True, log=print) -> dict[str, Any]:
    """Returns {"rows": [one dict per file: name, file_bytes, accuracy, layers], "seconds": ...}."""
    import torch

    from pyruntime.convert import finetune as ft
    from pyruntime.convert import from_torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    mode = "quick" if quick else "full"
    data = load_mnist(data_dir)
    train = (torch.from_numpy(data.train.x), torch.from_numpy(data.train.y))
    example = train[0][:1]
    calib = data.train.x[np.random.default_rng(seed).choice(len(data.train.x), CALIBRATION, replace=False)]
    stamp = (lambda msg: log(f"[{time.perf_counter() - t0:5.0f} s] {msg}")) if log else None

    torch.manual_seed(seed)
    net = build_net()
    ft.train(net, train, epochs=DENSE_EPOCHS[mode], lr=1e-3, augment=ft.shift_augment(2), seed=seed, log=stamp)
    net.eval()
    rows = []

    def convert(group: str, how: str, **kw: Any) -> None:
        cm = from_torch(net, example, **kw)
        m = cm.load()
        name = f"{group} {how}".strip()
        rows.append({"name": name, "group": group, "file_bytes": cm.file_bytes,
                     "accuracy": accuracy(m, data.test.x, data.test.y),
                     "layers": [(r.name, r.encoding, r.quantize, r.weight_error) for r in cm.layers]})
        if stamp:
            stamp(f"{name}: {cm.file_bytes} B, accuracy {rows[-1]['accuracy']:.4f}")

    convert("dense", "fp32")
    convert("dense", "int8 dynamic", quantize="dynamic")
    convert("dense", "int8 static", quantize="static", calibration=calib)

    masks = ft.magnitude_masks(net, SPARSITY)
    ft.train(net, train, epochs=PRUNE_EPOCHS[mode], lr=3e-4, masks=masks, augment=ft.shift_augment(2), seed=seed,
             log=stamp)
    net.eval()
    pruned = f"pruned {SPARSITY:.0%}"
    convert(pruned, "fp32")
    convert(pruned, "int8 dynamic", quantize="dynamic")
    convert(pruned, "int8 static", quantize="static", calibration=calib)
    if lenet5:
        from collections import OrderedDict

        from torch import nn

        torch.manual_seed(seed)
        net = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(1, 20, 5)), ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(20, 50, 5)), ("pool2", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()), ("fc1", nn.Linear(800, 500)), ("relu1", nn.ReLU()), ("fc2", nn.Linear(500, 10)),
        ]))
        images = (torch.from_numpy(data.train.x.reshape(-1, 1, 28, 28)), train[1])
        ft.train(net, images, epochs=LENET5_EPOCHS[mode], lr=1e-3, seed=seed, log=stamp)
        net.eval()
        example = images[0][:1]
        test_x = data.test.x.reshape(-1, 1, 28, 28)
        calib5 = calib.reshape(-1, 1, 28, 28)

        def convert5(how: str, **kw: Any) -> None:
            cm = from_torch(net, example, **kw)
            rows.append({"name": f"LeNet-5 {how}", "group": "LeNet-5", "file_bytes": cm.file_bytes,
                         "accuracy": accuracy(cm.load(), test_x, data.test.y),
                         "layers": [(r.name, r.encoding, r.quantize, r.weight_error) for r in cm.layers]})
            if stamp:
                stamp(f"LeNet-5 {how}: {cm.file_bytes} B, accuracy {rows[-1]['accuracy']:.4f}")

        convert5("fp32")
        convert5("int8 dynamic", quantize="dynamic")
        convert5("int8 static", quantize="static", calibration=calib5)
    return {"rows": rows, "seconds": time.perf_counter() - t0, "mode": mode}


def format_rows(result: dict[str, Any]) -> str:
    from pyruntime._report import format_table

    rows = result["rows"]
    base = {r["group"]: r["accuracy"] for r in rows if r["name"].endswith("fp32")}
    table = []
    for r in rows:
        delta = 100 * (r["accuracy"] - base[r["group"]])
        errs = " ".join(f"{e * 100:.2f}%" for _, _, q, e in r["layers"] if q)
        table.append([r["name"], f"{r['file_bytes']:,}", f"{100 * r['accuracy']:.2f}%", f"{delta:+.2f}", errs or "-"])
    return format_table(["model", "file bytes", "top-1", "vs fp32 (points)", "int8 weight error per layer"], table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get(MNIST_ENV), help=f"MNIST directory (default: ${MNIST_ENV})")
    ap.add_argument("--quick", action="store_true", help="a shorter training schedule")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training")
    args = ap.parse_args(argv)
    if not args.data or mnist_dir(args.data) is None:
        print(f"give the MNIST directory with --data or ${MNIST_ENV}", file=sys.stderr)
        return 2
    result = run(args.data, quick=args.quick, seed=args.seed, threads=args.threads)
    print(format_rows(result))
    print(f"({result['mode']} schedule, {result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
