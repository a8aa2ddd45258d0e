"""LeNet-300-100 on MNIST, end to end (examples/lenet_300_100.py --quick): train, prune, share, convert,
run in pyruntime. Needs torch and the MNIST idx files ($PYRUNTIME_MNIST, or ../shared/data/mnist next to
the repository); skips with the reason otherwise. Takes about a minute on 2 cores."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyruntime
from pyruntime.datasets import MNIST_ENV, mnist_dir

REPO = Path(__file__).resolve().parents[2]


def _data_dir() -> Path:
    env = os.environ.get(MNIST_ENV)
    if env:
        d = mnist_dir(env)
        if d is None:
            pytest.skip(f"${MNIST_ENV}={env} does not hold the four MNIST idx files")
        return d
    d = mnist_dir(REPO.parent / "shared" / "data" / "mnist")
    if d is None:
        pytest.skip(f"MNIST not found: set ${MNIST_ENV} to a directory with the four idx files "
                    f"(also looked in {REPO.parent / 'shared' / 'data' / 'mnist'})")
    return d


def _example():
    spec = importlib.util.spec_from_file_location("lenet_300_100", REPO / "examples" / "lenet_300_100.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is created
    spec.loader.exec_module(mod)
    return mod


def test_lenet_300_100_quick(tmp_path):
    data = _data_dir()
    out = tmp_path / "lenet.pyrt"
    row = _example().run(data, quick=True, out=str(out), threads=1, log=None)
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
