"""Shared by the model tests (``import model_data``): where the MNIST files are (skipping with the reason
when they are absent), and how to import an example script (examples/ is not a package)."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pyruntime.datasets import MNIST_ENV, mnist_dir

REPO = Path(__file__).resolve().parents[2]


def mnist_data_dir() -> Path:
    """$PYRUNTIME_MNIST, else ../shared/data/mnist next to the repository; skips the test if neither holds
    the four idx files."""
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


def load_example(name: str) -> ModuleType:
    """examples/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is created
    spec.loader.exec_module(mod)
    return mod
