"""examples/mcu: the LeNet-5 firmware on QEMU's Cortex-M4F board predicts what the host runtime predicts.

Runs examples/mcu/run.sh (build with arm-none-eabi-gcc, run under qemu-system-arm -M mps2-an386, compare
all 100 predictions with pyruntime.load(model).run) on a LeNet-5 this test trains itself in seconds: the
example's own model (examples/lenet5.py --quick) takes about 2.5 minutes, and the point here is that
firmware and host agree, not accuracy. The model is pruned and weight-shared as the example's is (from_torch
with per-layer sparsity and 4-bit codebooks), so the firmware decodes the same encodings (csr+codebook, codebook, dense biases). Needs torch, the
MNIST idx files ($PYRUNTIME_MNIST, or ../shared/data/mnist next to the repository), arm-none-eabi-gcc with
newlib, and qemu-system-arm; skips with the reason otherwise.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pyruntime.datasets import MNIST_ENV, load_mnist, mnist_dir

REPO = Path(__file__).resolve().parents[2]
RUN_SH = REPO / "examples" / "mcu" / "run.sh"


def _mnist() -> Path:
    env = os.environ.get(MNIST_ENV)
    d = mnist_dir(env) if env else mnist_dir(REPO.parent / "shared" / "data" / "mnist")
    if d is None:
        pytest.skip(f"${MNIST_ENV}={env} does not hold the four MNIST idx files" if env else
                    f"MNIST not found: set ${MNIST_ENV} (also looked in {REPO.parent / 'shared' / 'data' / 'mnist'})")
    return d


def _tools() -> None:
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm", "make"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)")
    specs = subprocess.run(["arm-none-eabi-gcc", "-print-file-name=nano.specs"], check=False, capture_output=True,
                           text=True)
    if not Path(specs.stdout.strip()).is_file():
        pytest.skip("newlib for arm-none-eabi is missing (Debian: libnewlib-arm-none-eabi)")


def _lenet5():
    spec = importlib.util.spec_from_file_location("lenet5_example", REPO / "examples" / "lenet5.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _small_lenet5(data: Path, out: Path) -> None:
    """LeNet-5 trained for ~10 seconds (one pass over 6000 images), pruned and shared as the example's is."""
    torch = pytest.importorskip("torch")
    from pyruntime.convert import from_torch

    lenet5 = _lenet5()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    train = load_mnist(data).train
    x, y = torch.from_numpy(train.x[:6000, None]), torch.from_numpy(train.y[:6000])
    net = lenet5.build_net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for i in range(0, len(y), 64):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[i:i + 64]), y[i:i + 64]).backward()
        opt.step()
    # pruned once, without the example's retraining: so less than its 66% / 12% / 3% / 19%
    density = {"conv1": 0.66, "conv2": 0.3, "fc1": 0.1, "fc2": 0.5}
    cm = from_torch(lenet5.with_softmax(net), x[:1], sparsity={n: 1.0 - d for n, d in density.items()},
                    bits=dict(lenet5.QUICK.bits))
    cm.save(out)


def test_firmware_predictions_match_the_host_runtime(tmp_path):
    data = _mnist()
    _tools()
    model = tmp_path / "lenet5_small.pyrt"
    _small_lenet5(data, model)
    env = dict(os.environ, MCU_BUILD=str(tmp_path / "build"), PYTHON=sys.executable, MCU_QEMU_TIMEOUT="240")
    r = subprocess.run(["bash", str(RUN_SH), str(data), str(model)], check=False, capture_output=True, text=True,
                       env=env, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "compare: all 100 predictions match the host runtime" in out, out[-4000:]
    assert "run.sh: OK: all 100 predictions of the firmware match the host runtime" in out
    # every image printed once, in order, with the MNIST label
    log = (tmp_path / "build" / "qemu.log").read_text()
    lines = re.findall(r"^image (\d+): predicted (\d) label (\d)$", log, re.MULTILINE)
    assert [int(i) for i, _, _ in lines] == list(range(100))
    labels = load_mnist(data).test.y[:100]
    assert [int(lab) for _, _, lab in lines] == labels.tolist()
    # a trained model, not a constant one: the test would not notice a firmware that ignores its input
    predicted = np.array([int(p) for _, p, _ in lines])
    assert len(set(predicted.tolist())) >= 8 and (predicted == labels).mean() > 0.6
    # the figures are printed, and the model array is the file
    assert re.search(rf"model array {model.stat().st_size} \(the \.pyrt file\)", out), out[-2000:]
    assert re.search(r"instructions per inference: [\d,]+", out)
