#!/usr/bin/env python3
"""A binarized MLP (BinaryNet) on MNIST, trained in PyTorch and run by pyruntime with XNOR and popcount.

    python examples/binary_mnist.py --data /path/to/mnist      # or PYRUNTIME_MNIST=/path/to/mnist
    python examples/binary_mnist.py --quick                     # a short run that checks the conversion

The network (Courbariaux et al., *BinaryNet*, 2016): pixels in [0, 1] binarized at 0.5
(``torch.where(x * 2 - 1 >= 0, 1.0, -1.0)``, held exactly by the runtime's sign op), then
784 -> H -> H -> H -> 10 binary linear layers (``pyruntime.convert.BinaryLinear``: +-1 weights), a batch norm
after each, and ``pyruntime.convert.SignSTE`` between them (straight-through gradients); Adam, weights clipped
to [-1, 1] after each step (BinaryNet's rule).

``from_torch`` turns each hidden block (binary layer, batch norm, sign) into one ``blinear`` layer whose
+-1 outputs come from integer popcount thresholds, exact against torch; the last layer's batch norm folds
into its per-row scales and bias. The example reports torch's accuracy and the runtime's on the 10,000 test
images, how often their predictions agree, the hidden-layer bits that differ (none, when the thresholds
are exact), and the file against the same network stored as fp32 (``binary=False``).

The data directory holds the four MNIST idx files (.gz or not); nothing is downloaded.
"""
from __future__ import annotations

import argparse
import itertools
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

SCHEDULES = {"quick": {"epochs": 1, "hidden": 256, "train": 10000},
             "full": {"epochs": 8, "hidden": 1024, "train": 60000}}


def build_net(hidden: int = 1024, layers: int = 3) -> Any:
    import torch
    from torch import nn

    from pyruntime.convert import BinaryLinear, SignSTE

    class BinaryMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            sizes = [784] + [hidden] * layers
            self.hidden = nn.Sequential(*[m for a, b in itertools.pairwise(sizes)
                                          for m in (BinaryLinear(a, b, bias=False), nn.BatchNorm1d(b), SignSTE())])
            self.out = BinaryLinear(hidden, 10, bias=False)
            self.bn = nn.BatchNorm1d(10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.where(x.flatten(1) * 2 - 1 >= 0, 1.0, -1.0)  # [0, 1] pixels binarized at 0.5
            return self.bn(self.out(self.hidden(x)))

    return BinaryMLP()


def train(net: Any, x: Any, y: Any, *, epochs: int, seed: int, batch: int = 100, lr: float = 3e-3,
          log: Any = None) -> None:
    """Adam with a cosine-decayed learning rate; binary weights clipped to [-1, 1] after each step."""
    import torch
    import torch.nn.functional as F

    from pyruntime.convert import BinaryLinear

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * (len(x) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    binary = [m for m in net.modules() if isinstance(m, BinaryLinear)]
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x) - batch + 1, batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            for m in binary:
                m.clip_weights_()
            total += loss.item()
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {total / (len(x) // batch):.4f}")
    net.eval()


def run(data_dir: str | os.PathLike[str], *, quick: bool = False, seed: int = 0, threads: int = 1,
        epochs: int | None = None, hidden: int | None = None, log: Any = print,
        measure_speed: bool = True) -> dict[str, Any]:
    """Trains, converts and measures (the speed too, unless measure_speed is false); returns the figures."""
    import torch

    from pyruntime.convert import from_torch

    torch.set_num_threads(threads)
    sched = SCHEDULES["quick" if quick else "full"]
    epochs = sched["epochs"] if epochs is None else epochs
    hidden = sched["hidden"] if hidden is None else hidden
    t0 = time.perf_counter()
    stamp = (lambda msg: log(f"[{time.perf_counter() - t0:5.0f} s] {msg}")) if log else None
    data = load_mnist(data_dir, normalize=False)  # [0, 1] pixels
    n = sched["train"]
    xtr, ytr = torch.from_numpy(data.train.x[:n]), torch.from_numpy(data.train.y[:n])
    torch.manual_seed(seed)
    net = build_net(hidden)
    train(net, xtr, ytr, epochs=epochs, seed=seed, log=stamp)
    train_s = time.perf_counter() - t0

    test_x, test_y = data.test.x, data.test.y
    with torch.no_grad():
        tx = torch.from_numpy(test_x)
        logits = net(tx).numpy()
        bits = [net.hidden[: 3 * (i + 1)](torch.where(tx.flatten(1) * 2 - 1 >= 0, 1.0, -1.0)).numpy()
                for i in range(len(net.hidden) // 3)]
    cm = from_torch(net, tx[:1])
    model = cm.load()
    got = model.run(test_x)
    fp32 = from_torch(net, tx[:1], binary=False)  # the same network with fp32 weights
    # the hidden layers' bits by the converter's reference of the runtime's arithmetic (FORMAT.md 2.6)
    values = cm.run_numpy(test_x, all_values=True)
    hidden_values = [values[i + 1] for i, nd in enumerate(cm.to_dict()["nodes"])
                     if nd["op"] == "blinear" and nd["attrs"]["output"] == 1]
    bit_diffs = sum(int((h != b).sum()) for h, b in zip(hidden_values, bits, strict=True))
    binary_layers = [r for r in cm.layers if r.encoding == "binary"]
    result = {
        "epochs": epochs, "hidden": hidden, "train_images": n, "train_seconds": train_s,
        "torch_accuracy": float((logits.argmax(1) == test_y).mean()),
        "runtime_accuracy": float((got.argmax(1) == test_y).mean()),
        "fp32_runtime_accuracy": float((fp32.load().run(test_x).argmax(1) == test_y).mean()),
        "agreement": float((got.argmax(1) == logits.argmax(1)).mean()),
        "max_abs_diff": float(np.abs(got - logits).max()),
        "hidden_bits_differing": bit_diffs,
        "hidden_bits": int(sum(b.size for b in bits)),
        "file_bytes": cm.file_bytes, "fp32_file_bytes": fp32.file_bytes,
        "binary_layer_bytes": sum(r.file_bytes for r in binary_layers),
        "binary_layer_fp32_bytes": sum(r.dense_bytes for r in binary_layers),
        "layers": [(r.name, r.encoding, "x".join(map(str, r.shape)), r.file_bytes, r.why) for r in cm.layers],
        "speed": speed(net, cm, fp32, test_x) if measure_speed else None,
        "seconds": time.perf_counter() - t0,
    }
    if stamp:
        stamp(f"converted: {cm.file_bytes:,} B against {fp32.file_bytes:,} B in fp32")
    return result


def deployed(net: Any) -> Any:
    """The trained network as torch would deploy it: each BinaryLinear an nn.Linear holding its +-alpha weight
    (computed once, not re-binarized at every call)."""
    import copy

    import torch
    from torch import nn

    from pyruntime.convert import BinaryLinear

    out = copy.deepcopy(net).eval()
    for name, mod in list(out.named_modules()):
        if isinstance(mod, BinaryLinear):
            signs, alpha = mod.binary_weight()
            lin = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None)
            with torch.no_grad():
                lin.weight.copy_(signs * alpha[:, None] if alpha is not None else signs)
                if mod.bias is not None:
                    lin.bias.copy_(mod.bias)
            parent = out.get_submodule(name.rpartition(".")[0]) if "." in name else out
            setattr(parent, name.rpartition(".")[2], lin)
    return out


def speed(net: Any, cm: Any, fp32: Any, test_x: np.ndarray) -> dict[str, dict[int, float]]:
    """Microseconds per image on one thread, at batch 1 and 256: torch (the trained network deployed with its
    +-1 weights as nn.Linear, eval), the fp32 file and the binary file through the runtime."""
    import torch

    trained, net = net.eval(), deployed(net)
    with torch.no_grad():
        probe = torch.from_numpy(np.ascontiguousarray(test_x[:64]))
        assert torch.allclose(net(probe), trained(probe), atol=1e-4), "the deployed copy computes what was trained"

    from pyruntime._timing import time_call

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    binary, dense = pyruntime.load(cm.to_bytes(), threads=1), pyruntime.load(fp32.to_bytes(), threads=1)
    out: dict[str, dict[int, float]] = {"torch-fp32": {}, "pyruntime-fp32": {}, "pyruntime-binary": {}}
    try:
        for batch in (1, 256):
            x = np.ascontiguousarray(test_x[:batch])
            tx = torch.from_numpy(x)
            with torch.no_grad():
                out["torch-fp32"][batch] = time_call(lambda tx=tx: net(tx)) / batch * 1e6
            out["pyruntime-fp32"][batch] = time_call(lambda x=x: dense.run(x)) / batch * 1e6
            out["pyruntime-binary"][batch] = time_call(lambda x=x: binary.run(x)) / batch * 1e6
    finally:
        torch.set_num_threads(previous)
    return out


def format_result(r: dict[str, Any]) -> str:
    from pyruntime._report import format_table

    rows = [
        ["fp32 (torch, the trained network)", f"{r['fp32_file_bytes']:,}", f"{100 * r['torch_accuracy']:.2f}%"],
        ["binary (pyruntime: XNOR + popcount)", f"{r['file_bytes']:,}", f"{100 * r['runtime_accuracy']:.2f}%"],
    ]
    out = format_table(["model", "file bytes", "top-1"], rows)
    out += (f"\n\nfile {r['fp32_file_bytes'] / r['file_bytes']:.1f}x smaller; the binary layers "
            f"{r['binary_layer_fp32_bytes'] / r['binary_layer_bytes']:.1f}x smaller than as fp32 weights and biases"
            f"\npredictions agree with torch on {100 * r['agreement']:.2f}% of the test images; hidden bits that differ: "
            f"{r['hidden_bits_differing']} of {r['hidden_bits']:,}; largest output difference {r['max_abs_diff']:.2g}"
            f"\n(784-{r['hidden']}-{r['hidden']}-{r['hidden']}-10, {r['epochs']} epochs on {r['train_images']} images, "
            f"training {r['train_seconds']:.0f} s; the fp32 file through the runtime: "
            f"{100 * r['fp32_runtime_accuracy']:.2f}%)")
    s = r["speed"]
    if s is None:
        return out
    rows = [[name, f"{t[1]:.1f}", f"{t[256]:.2f}", f"{s['torch-fp32'][1] / t[1]:.1f}x",
             f"{s['torch-fp32'][256] / t[256]:.1f}x"] for name, t in s.items()]
    out += "\n\nspeed, one thread (us per image):\n" + format_table(
        ["", "batch 1", "batch 256", "vs torch, batch 1", "vs torch, batch 256"], rows)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get(MNIST_ENV), help=f"MNIST directory (default: ${MNIST_ENV})")
    ap.add_argument("--quick", action="store_true", help="a short run (1 epoch, hidden 256, 10,000 images)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=None, help="hidden layer width (default 1024; --quick 256)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training (default 1: on a busy 2-core "
                    "machine 2 threads were 15x slower)")
    args = ap.parse_args(argv)
    if not args.data or mnist_dir(args.data) is None:
        print(f"give the MNIST directory with --data or ${MNIST_ENV}", file=sys.stderr)
        return 2
    result = run(args.data, quick=args.quick, seed=args.seed, threads=args.threads, epochs=args.epochs,
                 hidden=args.hidden)
    print(format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
