"""LeNet-300-100 on MNIST, end to end (examples/lenet_300_100.py --quick): train, prune, share, convert,
run in pyruntime. Needs torch and the MNIST idx files ($PYRUNTIME_MNIST, or ../shared/data/mnist next to
the repository); skips with the reason otherwise. Takes about a minute on 2 cores."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model_data import load_example, mnist_data_dir

import pyruntime

REPO = Path(__file__).resolve().parents[2]


def test_lenet_300_100_quick(tmp_path):
    data = mnist_data_dir()
    out = tmp_path / "lenet.pyrt"
    row = load_example("lenet_300_100").run(data, quick=True, out=str(out), threads=1, log=None)
    assert row["compressed_acc"] >= 0.97, row
    assert row["ratio"] >= 30, row
    assert row["file_bytes"] == out.stat().st_size
    assert row["parity_max_abs_diff"] <= 1e-5
    # the file on disk alone reproduces the measured accuracy
    from pyruntime.datasets import load_mnist

    test = load_mnist(data).test
    model = pyruntime.load(out)
    probs = model.run(test.x[:2000])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert {layer["encoding"] for layer in model.summary()} <= {"csr+codebook", "codebook"}
    assert float((probs.argmax(axis=1) == test.y[:2000]).mean()) >= 0.96
