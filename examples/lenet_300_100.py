#!/usr/bin/env python3
"""LeNet-300-100 on MNIST through the whole Deep Compression pipeline, run by pyruntime.

    python examples/lenet_300_100.py --data /path/to/mnist      # or PYRUNTIME_MNIST=/path/to/mnist
    python examples/lenet_300_100.py --quick                     # a shorter schedule (under a minute)

Steps (Han et al. 2016, sec. 2-4; the paper: 1070 KB -> 27 KB, 40x, at 98.4% top-1):
  1. train the dense 784-300-100-10 MLP (Adam, random 2-pixel shifts),
  2. prune by magnitude with retraining, gradually (Zhu & Gupta's cubic schedule) to per-layer
     densities of 4% / 7% / 25% (Deep Compression: 8% / 9% / 26%),
  3. share the surviving weights of each layer among 16 k-means centroids (4 bits, linear init; the
     paper used 6 bits) and fine-tune the centroids with the summed ("shared") gradient,
  4. convert with pyruntime.convert.from_torch: each layer is stored in its smallest encoding
     (csr+codebook here: relative column gaps and centroid indices, both Huffman-coded),
  5. load the .pyrt in the runtime and measure accuracy on the 10k test images through it.

The data directory holds the four MNIST idx files (.gz or not); nothing is downloaded.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    import pyruntime
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import pyruntime

from pyruntime.datasets import MNIST_ENV, load_mnist, mnist_dir


@dataclass(frozen=True)
class Schedule:
    dense_epochs: float
    prune_epochs: float
    sparsity: dict[str, float]   # per Linear, by module path in the Sequential below
    bits: int
    centroid_epochs: float


FULL = Schedule(dense_epochs=20, prune_epochs=30, sparsity={"1": 0.96, "3": 0.93, "5": 0.75}, bits=4,
                centroid_epochs=2)
QUICK = Schedule(dense_epochs=5, prune_epochs=8, sparsity={"1": 0.94, "3": 0.91, "5": 0.70}, bits=5,
                 centroid_epochs=0.5)


def build_net():
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def runtime_accuracy(model: pyruntime.Model, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    correct = 0
    for i in range(0, len(y), batch):
        correct += int((model.run(x[i:i + batch]).argmax(axis=1) == y[i:i + batch]).sum())
    return correct / len(y)


def run(data_dir: str | os.PathLike[str], *, quick: bool = False, out: str | None = None, seed: int = 0,
        threads: int | None = 1, schedule: Schedule | None = None, log=print) -> dict[str, Any]:
    """Runs the pipeline (``schedule``: FULL, or QUICK with ``quick``, unless given); returns the result row
    (sizes in bytes, accuracies in [0, 1], seconds)."""
    import torch
    from torch import nn

    from pyruntime.convert import finetune as ft
    from pyruntime.convert import from_torch

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    sched = schedule or (QUICK if quick else FULL)
    data = load_mnist(data_dir)
    train = (torch.from_numpy(data.train.x), torch.from_numpy(data.train.y))
    test = (torch.from_numpy(data.test.x), torch.from_numpy(data.test.y))
    example = train[0][:1]

    torch.manual_seed(seed)
    net = build_net()
    stamp = (lambda msg: log(f"[{time.perf_counter() - t0:5.0f} s] {msg}")) if log else None
    augment = ft.shift_augment(2)

    # 1. dense baseline, measured through the runtime from its lossless (fp32, dense) conversion
    ft.train(net, train, epochs=sched.dense_epochs, lr=1e-3, augment=augment, seed=seed, log=stamp)
    dense = from_torch(nn.Sequential(*net, nn.Softmax(dim=1)), example)
    dense_acc = runtime_accuracy(dense.load(), data.test.x, data.test.y)
    if stamp:
        stamp(f"dense: {dense.file_bytes} B file, accuracy {dense_acc:.4f} (through pyruntime)")

    # 2-3. prune with retraining, share weights, fine-tune centroids
    res = ft.compress(net, train, test, dense_epochs=0, sparsity=sched.sparsity, prune_epochs=sched.prune_epochs,
                      bits=sched.bits, centroid_epochs=sched.centroid_epochs, retrain_lr=1e-3, centroid_lr=1e-4,
                      augment=augment, seed=seed, log=stamp)

    # 4. convert (the weights are already shared: their values become the codebooks as they are)
    export = nn.Sequential(*net, nn.Softmax(dim=1)).eval()
    cm = from_torch(export, example, bits=sched.bits, metadata={"model": "LeNet-300-100", "dataset": "MNIST"})
    if out:
        cm.save(out)
    if log:
        log(cm.report())

    # 5. accuracy through the runtime, and parity with torch on the same weights
    model = pyruntime.load(out) if out else cm.load()
    acc = runtime_accuracy(model, data.test.x, data.test.y)
    with torch.no_grad():
        ref = export(test[0][:500]).numpy()
    parity = float(np.abs(model.run(data.test.x[:500]) - ref).max())
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
        "seconds": time.perf_counter() - t0,
        "mode": "quick" if quick else "full",
    }
    if log:
        log(format_row(row))
    return row


def format_row(row: dict[str, Any]) -> str:
    head = f"{'model':<16} {'dense KB':>9} {'file KB':>8} {'ratio':>6} {'dense acc':>9} {'compr. acc':>10} {'time':>6}"
    line = (f"{'LeNet-300-100':<16} {row['dense_bytes'] / 1000:>9.1f} {row['file_bytes'] / 1000:>8.1f} "
            f"{row['ratio']:>5.1f}x {100 * row['dense_acc']:>8.2f}% {100 * row['compressed_acc']:>9.2f}% "
            f"{row['seconds']:>5.0f}s")
    paper = f"{'paper (Han 2016)':<16} {1070.0:>9.1f} {27.0:>8.1f} {40.0:>5.1f}x {98.36:>8.2f}% {98.42:>9.2f}%"
    return f"{head}\n{line}\n{paper}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help=f"MNIST directory (default: ${MNIST_ENV})")
    p.add_argument("--quick", action="store_true", help="short schedule (well under a minute on one core)")
    p.add_argument("--out", default="lenet_300_100.pyrt", help="model file to write ('' for none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: at batch 128 these matrices are too small to gain from more, "
                        "and on a busy or shared machine OpenMP barriers make 2 threads several times slower)")
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
