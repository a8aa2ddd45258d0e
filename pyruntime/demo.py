"""``pyruntime demo``: the whole pipeline in under a minute, offline.

Trains a 64-256-128-10 MLP (numpy, Adam) on the handwritten digits that scikit-learn ships, prunes it
iteratively with masked retraining, shares the surviving weights through k-means, writes a .pyrt file,
loads it in the C++ runtime and compares size, accuracy and batch-1 latency with the dense network.
"""
from __future__ import annotations

import itertools
import os
import tempfile
import time
from typing import Any

import numpy as np

from ._report import format_table
from ._timing import time_call

HIDDEN = (256, 128)
SPARSITY_SCHEDULE = (0.5, 0.75, 0.85, 0.92)
BITS = 4
RETRAIN_EPOCHS = 20


def load_digits_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise RuntimeError("pyruntime demo needs scikit-learn for its dataset: pip install 'pyruntime[demo]'") from e
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = len(x) // 4
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


class MLP:
    """A ReLU MLP trained with Adam on cross-entropy; masks keep pruned weights at zero."""

    def __init__(self, sizes: tuple[int, ...], rng: np.random.Generator) -> None:
        self.w = [(rng.standard_normal((o, i)) * np.sqrt(2.0 / i)).astype(np.float32) for i, o in itertools.pairwise(sizes)]
        self.b = [np.zeros(o, np.float32) for o in sizes[1:]]
        self.masks = [np.ones_like(w) for w in self.w]
        self.codebooks: list[tuple[np.ndarray, np.ndarray]] = []  # (centroids, indices) once shared
        self._adam = [(np.zeros_like(p), np.zeros_like(p)) for p in self.w + self.b]
        self._step = 0

    def logits(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        acts = [x]
        for k, (w, b) in enumerate(zip(self.w, self.b)):
            z = acts[-1] @ w.T + b
            acts.append(np.maximum(z, 0) if k < len(self.w) - 1 else z)
        return acts[-1], acts

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.logits(x)[0].argmax(1) == y).mean())

    def train(self, x: np.ndarray, y: np.ndarray, epochs: int, rng: np.random.Generator, lr: float = 1e-3,
              batch: int = 32) -> None:
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for s in range(0, len(x), batch):
                idx = order[s:s + batch]
                self._sgd_step(x[idx], y[idx], lr)

    def _sgd_step(self, x: np.ndarray, y: np.ndarray, lr: float) -> None:
        out, acts = self.logits(x)
        p = np.exp(out - out.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = p
        g[np.arange(len(y)), y] -= 1
        g /= len(y)
        grads_w, grads_b = [], []
        for k in range(len(self.w) - 1, -1, -1):
            grads_w.append(g.T @ acts[k])
            grads_b.append(g.sum(0))
            if k:
                g = (g @ self.w[k]) * (acts[k] > 0)
        grads = grads_w[::-1] + grads_b[::-1]
        self._step += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for i, (param, grad) in enumerate(zip(self.w + self.b, grads)):
            m, v = self._adam[i]
            m *= b1
            m += (1 - b1) * grad
            v *= b2
            v += (1 - b2) * grad * grad
            mh = m / (1 - b1 ** self._step)
            vh = v / (1 - b2 ** self._step)
            param -= (lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)
        for w, mask in zip(self.w, self.masks):
            w *= mask
        if self.codebooks:
            self._tie_to_centroids()

    def share(self, bits: int) -> None:
        """k-means weight sharing of the surviving weights (linear init); training then keeps them tied."""
        from .convert import kmeans_share

        self.codebooks = [kmeans_share(w, bits, mask=m.astype(bool)) for w, m in zip(self.w, self.masks)]
        self._tie_to_centroids()

    def _tie_to_centroids(self) -> None:
        # Each centroid moves by the mean update of its weights (Deep Compression's shared gradient,
        # through Adam): centroid = mean of the cluster, then every weight = its centroid.
        for k, (w, mask) in enumerate(zip(self.w, self.masks)):
            centroids, indices = self.codebooks[k]
            alive = mask.astype(bool)
            idx = indices[alive].astype(np.int64)
            sums = np.bincount(idx, weights=w[alive], minlength=len(centroids))
            counts = np.bincount(idx, minlength=len(centroids))
            centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids).astype(np.float32)
            self.codebooks[k] = (centroids, indices)
            w[alive] = centroids[idx]

    def prune_to(self, sparsity: float) -> None:
        from .convert import prune_magnitude

        for k, w in enumerate(self.w):
            self.w[k] = prune_magnitude(w, sparsity).astype(np.float32)
            self.masks[k] = (self.w[k] != 0).astype(np.float32)

    def layers(self) -> list[tuple]:
        out: list[tuple] = []
        for k, (w, b) in enumerate(zip(self.w, self.b)):
            out.append(("linear", w, b))
            out.append(("relu",) if k < len(self.w) - 1 else ("softmax",))
        return out

    def dense_forward(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x)[0]
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


def run_demo(seed: int = 0, out_path: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Trains, compresses, writes, loads and runs the digits MLP; returns the figures as a dict.

    numpy's BLAS runs on one thread here (threadpoolctl, which scikit-learn brings): a BLAS sum split across
    threads rounds differently with the thread count, and a BLAS that starts a thread per core on a busy
    machine ran the training ten times slower. The same seed then gives the same file on any core count."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        return _run_demo(seed, out_path, quiet)
    with threadpool_limits(limits=1, user_api="blas"):
        return _run_demo(seed, out_path, quiet)


def _run_demo(seed: int, out_path: str | None, quiet: bool) -> dict[str, Any]:
    import pyruntime

    from .convert import from_numpy

    def say(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)

    t_start = time.perf_counter()
    rng = np.random.default_rng(seed)
    xtr, ytr, xte, yte = load_digits_split(seed)
    say(f"digits (scikit-learn): {len(xtr)} train / {len(xte)} test images of 8x8 pixels")

    net = MLP((xtr.shape[1], *HIDDEN, 10), rng)
    net.train(xtr, ytr, epochs=40, rng=rng)
    dense_acc = net.accuracy(xte, yte)
    dense_weights = [w.copy() for w in net.w]
    dense_biases = [b.copy() for b in net.b]
    say(f"[1/4] trained dense MLP 64-{HIDDEN[0]}-{HIDDEN[1]}-10: test accuracy {dense_acc:.4f}")

    for sparsity in SPARSITY_SCHEDULE:
        net.prune_to(sparsity)
        net.train(xtr, ytr, epochs=RETRAIN_EPOCHS, rng=rng, lr=5e-4)
    pruned_acc = net.accuracy(xte, yte)
    say(f"[2/4] pruned to {SPARSITY_SCHEDULE[-1]:.0%} sparsity with retraining: accuracy {pruned_acc:.4f}")

    net.share(BITS)
    shared_acc = net.accuracy(xte, yte)
    net.train(xtr, ytr, epochs=RETRAIN_EPOCHS, rng=rng, lr=2e-4)
    # The weights now take 2^BITS distinct values per layer: the converter stores exactly that codebook.
    compressed = from_numpy(net.layers(), input_shape=(xtr.shape[1],))
    data = compressed.to_bytes()
    tmpdir = None
    if out_path is None:
        tmpdir = tempfile.TemporaryDirectory()
        out_path = os.path.join(tmpdir.name, "digits_mlp.pyrt")
    with open(out_path, "wb") as f:
        f.write(data)
    say(f"[3/4] shared weights with {BITS}-bit k-means codebooks (accuracy {shared_acc:.4f}), fine-tuned the "
        f"centroids, wrote {len(data)} bytes")

    model = pyruntime.load(out_path)
    probs = model.run(xte)
    compressed_acc = float((probs.argmax(1) == yte).mean())
    say(f"[4/4] loaded in the C++ runtime: accuracy {compressed_acc:.4f}")

    dense_bytes = sum(w.nbytes for w in dense_weights) + sum(b.nbytes for b in dense_biases)
    x1 = xte[:1].copy()
    dense_net = MLP((1,), rng)
    dense_net.w, dense_net.b = dense_weights, dense_biases
    t_runtime = time_call(lambda: model.run(x1))
    t_numpy = time_call(lambda: dense_net.dense_forward(x1))
    result = {
        "dataset": "scikit-learn digits",
        "isa": pyruntime._core.active_isa(),
        "architecture": f"64-{HIDDEN[0]}-{HIDDEN[1]}-10",
        "sparsity": SPARSITY_SCHEDULE[-1],
        "bits": BITS,
        "dense_bytes": int(dense_bytes),
        "file_bytes": len(data),
        "compression_ratio": dense_bytes / len(data),
        "dense_accuracy": dense_acc,
        "pruned_accuracy": pruned_acc,
        "shared_accuracy_before_finetune": shared_acc,
        "compressed_accuracy": compressed_acc,
        "runtime_batch1_us": t_runtime * 1e6,
        "numpy_dense_batch1_us": t_numpy * 1e6,
        "speedup_vs_numpy": t_numpy / t_runtime,
        "layers": [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in row.items()} for row in model.summary()
        ],
        "seconds": time.perf_counter() - t_start,
    }
    if tmpdir is not None:
        tmpdir.cleanup()
    return result


def print_result(r: dict[str, Any]) -> None:
    print()
    rows = [
        ["size", f"{r['dense_bytes']:,} B", f"{r['file_bytes']:,} B", f"{r['compression_ratio']:.1f}x smaller"],
        ["accuracy", f"{r['dense_accuracy']:.4f}", f"{r['compressed_accuracy']:.4f}",
         f"{100 * (r['compressed_accuracy'] - r['dense_accuracy']):+.2f} points"],
        ["batch-1 latency", f"{r['numpy_dense_batch1_us']:.1f} us", f"{r['runtime_batch1_us']:.1f} us",
         f"{r['speedup_vs_numpy']:.2f}x"],
    ]
    print(format_table(["", "dense fp32 (numpy)", "pyruntime (.pyrt)", "change"], rows))
    print()
    layer_rows = [[lay["layer"], lay["encoding"], "x".join(map(str, lay["shape"])), lay["nonzeros"],
                   f"{100 * lay['density']:.1f}%", lay["bits"], lay["bytes"], f"{lay['ratio']:.1f}x"]
                  for lay in r["layers"]]
    print(format_table(["layer", "encoding", "shape", "nonzeros", "density", "bits", "bytes", "vs fp32"], layer_rows))
    print(f"\n{r['architecture']} MLP, {r['sparsity']:.0%} pruned, {r['bits']}-bit shared weights; latency on 1 "
          f"thread with the {r['isa']} kernels; done in {r['seconds']:.1f} s")
