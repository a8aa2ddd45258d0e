"""LeNet-5 (Caffe's, Deep Compression's) on MNIST, end to end with examples/lenet5.py on a small schedule:
train on a subset, prune conv and fc layers, share weights, convert, run in pyruntime. Needs torch and the
MNIST idx files ($PYRUNTIME_MNIST, or ../shared/data/mnist next to the repository); skips with the reason
otherwise. About 30 s on one core."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model_data import load_example, mnist_data_dir

import pyruntime
from pyruntime.datasets import load_mnist

REPO = Path(__file__).resolve().parents[2]


def test_lenet5_small_schedule(tmp_path):
    data = mnist_data_dir()
    ex = load_example("lenet5")
    # the paper's layer densities with 4-bit codebooks, on a short schedule: 20k training images (batches of
    # 64, no shifts), accuracy on the first 2k test images (harder than the rest: the full run scores about
    # 0.2 points less on them than on all 10k). Seeds 0, 1, 2 gave 97.85%, 98.05%, 98.05%.
    density = {"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19}
    bits = {"conv1": 4, "conv2": 4, "fc1": 4, "fc2": 4}
    sched = ex.Schedule(dense_epochs=1.5, prune_epochs=2.5, density=density, bits=bits, centroid_epochs=0.3,
                        dense_lr=2e-3, retrain_lr=2e-3, batch_size=64, train_limit=20000, test_limit=2000, shift=0)
    out = tmp_path / "lenet5.pyrt"
    row = ex.run(data, out=str(out), threads=1, schedule=sched, log=None)

    assert row["dense_bytes"] == 4 * 431_080  # Caffe's LeNet-5: 430 500 weights + 580 biases
    assert row["file_bytes"] == out.stat().st_size
    assert row["file_bytes"] < 46_000 and row["ratio"] >= 37.5, row  # the paper: 44 KB, 39x (8 / 5 bits)
    assert row["compressed_acc"] >= 0.97, row
    assert row["compressed_acc"] == pytest.approx(row["torch_compressed_acc"], abs=1e-9)  # runtime == torch
    assert row["parity_max_abs_diff"] <= 1e-5, row
    for name, d in density.items():
        assert row["density"][name] == pytest.approx(d, abs=0.002), (name, row["density"])
        assert row["centroids"][name] <= 2 ** bits[name]

    # the file alone: the four weighted layers pruned and shared, and it reproduces the accuracy
    model = pyruntime.load(out)
    layers = {layer["layer"]: layer for layer in model.summary()}
    assert set(layers) == {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"}, layers
    assert all("codebook" in layer["encoding"] for layer in layers.values()), layers
    test = load_mnist(data).test
    probs = model.run(np.ascontiguousarray(test.x[:2000, None]))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert float((probs.argmax(axis=1) == test.y[:2000]).mean()) == pytest.approx(row["compressed_acc"], abs=1e-9)
