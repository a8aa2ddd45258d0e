"""Small datasets for examples, tests and demos. Nothing is downloaded: the caller says where data is.

- :func:`load_mnist` reads the four MNIST idx files (``.gz`` or not, ``-idx3-ubyte`` or ``.idx3-ubyte``
  names, in the directory or its ``raw`` / ``MNIST/raw`` folder) from a directory, e.g. the one in the
  ``PYRUNTIME_MNIST`` environment variable (:func:`mnist_dir`).
- :func:`load_digits` returns scikit-learn's bundled 8x8 digits (1797 images; ships with sklearn).

Images come back as float32 ``(n, rows, cols)`` normalised as ``(x/255 - mean) / std`` (MNIST:
mean 0.1307, std 0.3081) unless ``normalize=False`` (then ``x/255`` in [0, 1]); labels as int64.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
MNIST_ENV = "PYRUNTIME_MNIST"

_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class Split(NamedTuple):
    x: np.ndarray
    y: np.ndarray


class Dataset(NamedTuple):
    train: Split
    test: Split


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads one idx file (optionally gzip-compressed): big-endian magic ``0 0 type rank``, dims, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an idx file (magic {data[:4].hex()})")
    rank = data[3]
    if len(data) < 4 + 4 * rank:
        raise ValueError(f"{path}: truncated idx header")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    dtype = np.dtype(_IDX_TYPES[data[2]])
    count = int(np.prod(dims)) if dims else 1
    body = data[4 + 4 * rank:]
    if len(body) != count * dtype.itemsize:
        raise ValueError(f"{path}: {len(body)} data bytes, dims {dims} need {count * dtype.itemsize}")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


MNIST_SOURCES = ("the four files of https://yann.lecun.com/exdb/mnist/ (or a mirror, e.g. "
                 "https://ossci-datasets.s3.amazonaws.com/mnist/), .gz or unpacked")


def _find(directory: Path, stem: str) -> Path:
    """The idx file ``stem`` in ``directory`` or in the ``raw`` / ``MNIST/raw`` folders that torchvision and
    others create, under any of its common names: ``t10k-images-idx3-ubyte`` or ``t10k-images.idx3-ubyte``,
    each with or without ``.gz``."""
    names = [n + gz for n in (stem, stem.replace("-idx", ".idx")) for gz in ("", ".gz")]
    for folder in (directory, directory / "raw", directory / "MNIST" / "raw"):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(f"MNIST file {stem}[.gz] not found in {directory} (expected {MNIST_SOURCES})")


def mnist_dir(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The MNIST directory: ``path`` if given, else ``$PYRUNTIME_MNIST``; None if neither holds the files."""
    candidate = path if path is not None else os.environ.get(MNIST_ENV)
    if not candidate:
        return None
    d = Path(candidate)
    try:
        for stem in _MNIST_FILES.values():
            _find(d, stem)
    except FileNotFoundError:
        return None
    return d


def load_mnist(directory: str | os.PathLike[str], *, normalize: bool = True) -> Dataset:
    """MNIST from ``directory`` (the four idx files, ``.gz`` or plain): 60000 train, 10000 test images."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"MNIST directory {d} does not exist")
    raw = {k: read_idx(_find(d, stem)) for k, stem in _MNIST_FILES.items()}
    for part in ("train", "test"):
        x, y = raw[f"{part}_images"], raw[f"{part}_labels"]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"MNIST {part}: images {x.shape} and labels {y.shape} do not match")

    def prep(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32) / np.float32(255)
        return (x - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD) if normalize else x

    return Dataset(Split(prep(raw["train_images"]), raw["train_labels"].astype(np.int64)),
                   Split(prep(raw["test_images"]), raw["test_labels"].astype(np.int64)))


def load_digits(*, normalize: bool = True, test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (bundled with sklearn, no download), split train/test by a fixed seed.

    Pixels are 0..16; they are scaled to [0, 1] and, with ``normalize``, standardised by the training
    mean and std.
    """
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError as e:  # pragma: no cover
        raise ImportError("load_digits needs scikit-learn (pip install scikit-learn)") from e
    bunch = _sk_digits()
    x = (bunch.images.astype(np.float32) / np.float32(16)).astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = round(test_fraction * len(y))
    test, train = order[:n_test], order[n_test:]
    xtr, xte = x[train], x[test]
    if normalize:
        mean, std = xtr.mean(), xtr.std()
        xtr, xte = (xtr - mean) / std, (xte - mean) / std
    return Dataset(Split(xtr.astype(np.float32), y[train]), Split(xte.astype(np.float32), y[test]))
