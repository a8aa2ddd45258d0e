#!/usr/bin/env python3
"""LeNet-5 on MNIST through the whole Deep Compression pipeline, run by pyruntime.

    python examples/lenet5.py --data /path/to/mnist      # or PYRUNTIME_MNIST=/path/to/mnist
    python examples/lenet5.py --quick                     # a shorter schedule (1-2 minutes)

The network is Caffe's LeNet-5, the one of Deep Compression's Table 1 (conv1 20@5x5, max-pool 2,
conv2 50@5x5, max-pool 2, fc1 800->500, ReLU, fc2 500->10: 431K weights, 1720 KB as fp32; no ReLU
after the convolutions, as in Caffe's lenet_train_test.prototxt). The paper: 1720 KB -> 44 KB, 39x,
top-1 error 0.80% -> 0.74%, keeping 66% / 12% / 8% / 19% of the weights of conv1 / conv2 / fc1 / fc2
and sharing them with 8-bit (conv) and 5-bit (fc) codebooks.

Steps (Han et al. 2016, sec. 2-4):
  1. train the dense net (Adam, cosine decay, random 2-pixel shifts),
  2. prune by magnitude with retraining, gradually (Zhu & Gupta's cubic schedule), to per-layer
     densities of 66% / 12% / 2% / 19% (the paper's, but fc1 at 2% instead of 8%),
  3. share each layer's surviving weights among k-means centroids (linear init; 3 bits = at most 8
     values per layer, conv and fc alike: the paper used 8 and 5) and fine-tune the centroids with the
     summed ("shared") gradient,
  4. convert with pyruntime.convert.from_torch: each layer is stored in its smallest encoding,
  5. load the .pyrt in the runtime and measure accuracy on the 10k test images through it.

Training uses channels-last tensors (about 1.7x faster convolutions and pooling on CPU); the converted
model takes (n, 1, 28, 28) float32 images. The data directory holds the four MNIST idx files (.gz or
not); nothing is downloaded.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    import pyruntime
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import pyruntime

from pyruntime.datasets import MNIST_ENV, load_mnist, mnist_dir

LAYERS = ("conv1", "conv2", "fc1", "fc2")
#: Deep Compression, Table 1 and 2 (LeNet-5): weights kept per layer, bits per layer, the row
PAPER = {"dense_kb": 1720.0, "file_kb": 44.0, "ratio": 39.0, "dense_acc": 0.9920, "compressed_acc": 0.9926,
         "density": {"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19},
         "bits": {"conv1": 8, "conv2": 8, "fc1": 5, "fc2": 5}}


@dataclass(frozen=True)
class Schedule:
    dense_epochs: float
    prune_epochs: float
    density: dict[str, float]    # fraction of the weights kept, per layer (sparsity = 1 - density)
    bits: dict[str, int]         # codebook bits per layer
    centroid_epochs: float
    dense_lr: float = 1e-3
    retrain_lr: float = 2e-3
    centroid_lr: float = 1e-4
    train_limit: int | None = None   # train on the first N training images only (None: all 60k)
    test_limit: int | None = None    # evaluate on the first N test images only (None: all 10k)
    shift: int = 2                   # random shifts of up to this many pixels while training (0: none)
    batch_size: int = 128


FULL = Schedule(dense_epochs=3, prune_epochs=8, density={"conv1": 0.66, "conv2": 0.12, "fc1": 0.02, "fc2": 0.19},
                bits={"conv1": 3, "conv2": 3, "fc1": 3, "fc2": 3}, centroid_epochs=1)
QUICK = Schedule(dense_epochs=1, prune_epochs=3, density={"conv1": 0.66, "conv2": 0.12, "fc1": 0.03, "fc2": 0.19},
                 bits={"conv1": 4, "conv2": 4, "fc1": 4, "fc2": 4}, centroid_epochs=0.25)


def build_net():
    """Caffe's LeNet-5 (Deep Compression's), layers named as in the paper."""
    from torch import nn

    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 20, 5)), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(20, 50, 5)), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(800, 500)), ("relu1", nn.ReLU()), ("fc2", nn.Linear(500, 10)),
    ]))


def with_softmax(net):
    """A copy of ``net`` followed by a softmax (the exported model outputs probabilities), layer names kept,
    in eval mode and the default memory format (``net`` itself stays channels-last)."""
    import copy

    import torch
    from torch import nn

    layers = copy.deepcopy(OrderedDict(net.named_children()))
    return nn.Sequential(OrderedDict([*layers.items(), ("prob", nn.Softmax(dim=1))])).to(
        memory_format=torch.contiguous_format).eval()


def runtime_accuracy(model: pyruntime.Model, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    correct = 0
    for i in range(0, len(y), batch):
        correct += int((model.run(x[i:i + batch]).argmax(axis=1) == y[i:i + batch]).sum())
    return correct / len(y)


def run(data_dir: str | os.PathLike[str], *, quick: bool = False, out: str | None = None, seed: int = 0,
        threads: int | None = 1, schedule: Schedule | None = None, log=print) -> dict[str, Any]:
    """Runs the pipeline (``schedule``: FULL, or QUICK with ``quick``, unless given); returns the result row
    (sizes in bytes, accuracies in [0, 1], seconds, per-layer density and bits)."""
    import torch

    from pyruntime.convert import finetune as ft
    from pyruntime.convert import from_torch

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    sched = schedule or (QUICK if quick else FULL)
    data = load_mnist(data_dir)
    xtr, ytr = data.train.x[:sched.train_limit, None], data.train.y[:sched.train_limit]
    xte, yte = np.ascontiguousarray(data.test.x[:sched.test_limit, None]), data.test.y[:sched.test_limit]
    train = (torch.from_numpy(xtr), torch.from_numpy(ytr))
    test = (torch.from_numpy(xte), torch.from_numpy(yte))
    example = test[0][:1]

    torch.manual_seed(seed)
    net = build_net().to(memory_format=torch.channels_last)
    stamp = (lambda msg: log(f"[{time.perf_counter() - t0:5.0f} s] {msg}")) if log else None
    augment = ft.shift_augment(sched.shift) if sched.shift else None

    # 1. dense baseline, measured through the runtime from its lossless (fp32, dense) conversion
    ft.train(net, train, epochs=sched.dense_epochs, lr=sched.dense_lr, batch_size=sched.batch_size,
             augment=augment, seed=seed, log=stamp)
    t_dense = time.perf_counter() - t0
    dense = from_torch(with_softmax(net), example)
    dense_acc = runtime_accuracy(dense.load(), xte, yte)
    if stamp:
        stamp(f"dense: {dense.file_bytes} B file, accuracy {dense_acc:.4f} (through pyruntime)")

    # 2-3. prune with retraining, share weights, fine-tune centroids
    sparsity = {name: 1.0 - d for name, d in sched.density.items()}
    res = ft.compress(net, train, test, dense_epochs=0, sparsity=sparsity, prune_epochs=sched.prune_epochs,
                      bits=dict(sched.bits), centroid_epochs=sched.centroid_epochs, retrain_lr=sched.retrain_lr,
                      centroid_lr=sched.centroid_lr, batch_size=sched.batch_size, augment=augment, seed=seed,
                      log=stamp)

    # 4. convert (the weights are already shared: their values become the codebooks as they are)
    t4 = time.perf_counter()
    export = with_softmax(net)
    cm = from_torch(export, example, bits=dict(sched.bits), metadata={"model": "LeNet-5", "dataset": "MNIST"})
    if out:
        cm.save(out)
    if log:
        log(cm.report())

    # 5. accuracy through the runtime, and parity with torch on the same weights
    model = pyruntime.load(out) if out else cm.load()
    acc = runtime_accuracy(model, xte, yte)
    with torch.no_grad():
        ref = export(test[0][:500]).numpy()
    parity = float(np.abs(model.run(xte[:500]) - ref).max())
    layers = {r.name: r for r in cm.layers}
    row = {
        "dense_bytes": cm.dense_bytes,
        "file_bytes": cm.file_bytes,
        "ratio": cm.ratio,
        "dense_acc": dense_acc,
        "pruned_acc": res.pruned_acc,
        "shared_acc_before_finetune": res.shared_acc,
        "torch_compressed_acc": res.finetuned_acc,
        "compressed_acc": acc,
        "parity_max_abs_diff": parity,
        "nonzeros": sum(r.nonzeros for r in cm.layers),
        "density": {n: layers[n].density for n in LAYERS},
        "bits": {n: sched.bits.get(n) for n in LAYERS},
        "centroids": {n: len(res.books[n][0]) for n in LAYERS if n in res.books},
        "encoding": {n: layers[n].encoding for n in LAYERS},
        "layer_bytes": {n: layers[n].file_bytes for n in LAYERS},
        "seconds": time.perf_counter() - t0,
        "stage_seconds": {"load_and_dense": t_dense, "prune": res.seconds["prune"], "share": res.seconds["share"],
                          "convert_and_runtime": time.perf_counter() - t4},
        "seed": seed,
        "mode": "custom" if schedule else "quick" if quick else "full",
        "test_images": len(yte),
    }
    if log:
        log(format_row(row))
    return row


def format_row(row: dict[str, Any]) -> str:
    head = (f"{'model':<16} {'dense KB':>9} {'file KB':>8} {'ratio':>6} {'dense acc':>9} {'compr. acc':>10} "
            f"{'time':>6}   weights kept (bits) conv1 / conv2 / fc1 / fc2")

    def kept(r: dict[str, Any]) -> str:
        return " / ".join(f"{100 * r['density'][n]:.0f}% ({r['bits'][n]})" for n in LAYERS)

    line = (f"{'LeNet-5':<16} {row['dense_bytes'] / 1000:>9.1f} {row['file_bytes'] / 1000:>8.1f} "
            f"{row['ratio']:>5.1f}x {100 * row['dense_acc']:>8.2f}% {100 * row['compressed_acc']:>9.2f}% "
            f"{row['seconds']:>5.0f}s   {kept(row)}")
    paper = (f"{'paper (Han 2016)':<16} {PAPER['dense_kb']:>9.1f} {PAPER['file_kb']:>8.1f} {PAPER['ratio']:>5.1f}x "
             f"{100 * PAPER['dense_acc']:>8.2f}% {100 * PAPER['compressed_acc']:>9.2f}% {'':>6}   {kept(PAPER)}")
    return f"{head}\n{line}\n{paper}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help=f"MNIST directory (default: ${MNIST_ENV})")
    p.add_argument("--quick", action="store_true", help="short schedule (1-2 minutes on one core)")
    p.add_argument("--out", default="lenet5.pyrt", help="model file to write ('' for none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: at batch 128 these layers are too small to gain much from more, "
                        "and on a busy or shared machine OpenMP barriers make 2 threads slower)")
    p.add_argument("--json", help="also write the result row to this JSON file")
    args = p.parse_args(argv)
    d = mnist_dir(args.data)
    if d is None:
        where = args.data or (f"${MNIST_ENV}={os.environ[MNIST_ENV]}" if os.environ.get(MNIST_ENV) else None)
        p.error(f"MNIST not found ({where or f'give --data or set {MNIST_ENV}'}): need the four idx files "
                "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
                "t10k-labels-idx1-ubyte[.gz]")
    row = run(d, quick=args.quick, out=args.out or None, seed=args.seed, threads=args.threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(row, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
