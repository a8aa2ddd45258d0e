"""Training side of Deep Compression, in PyTorch: iterative magnitude pruning with retraining, then
k-means weight sharing with centroid fine-tuning (the "shared gradient" trick). Needs torch.

The functions work on any module whose weights live in ``nn.Linear`` and ``nn.Conv2d`` layers (the
"weighted layers", named by module path: :func:`weighted_layers`) and on in-memory tensors (``x``:
float32 batch-first, ``y``: int64 labels). Masks and codebook indices have the full shape of a layer's
weight (``[out, in]`` or ``[out, in/groups, kh, kw]``); sparsity and bits are given as one number for
every weighted layer, or per layer as a mapping name -> number (:func:`per_kind` builds one by layer
type, e.g. 8 bits for convolutions and 5 for fully connected layers)::

    masks = prune_iteratively(net, (x, y), {"1": 0.95, "3": 0.9}, steps=4, epochs_per_step=2)
    books = share_weights(net, bits=5, masks=masks)            # net now computes with shared weights
    finetune_centroids(net, books, (x, y), epochs=2)          # gradients summed per centroid
    cm = pyruntime.convert.from_torch(net, x[:1])              # shared values become the codebook

:func:`compress` runs the whole pipeline with a per-stage log; ``examples/lenet_300_100.py`` and the
CLI demo use it. Small MLPs like these train fastest on one torch thread (``torch.set_num_threads(1)``):
the matrices are too small to gain from more, and OpenMP barriers on a busy machine cost several times
what they save. Small conv nets train about 1.7x faster on CPU in channels-last memory format
(``net.to(memory_format=torch.channels_last)``; ``examples/lenet5.py``); masks and codebooks index the
weights logically, whatever their memory format.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .kmeans import kmeans_share
from .prune import check_setting

Data = tuple[torch.Tensor, torch.Tensor]
Masks = dict[str, torch.Tensor]
Codebooks = dict[str, tuple[torch.Tensor, torch.Tensor]]  # name -> (centroids [k], indices [weight.shape])
Log = Callable[[str], None]
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
PerLayer = float | int | Mapping[str, float]


WEIGHTED_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)
"""The layer types whose weights are pruned and shared."""


def weighted_layers(net: nn.Module) -> dict[str, nn.Linear | nn.Conv2d]:
    """The nn.Linear and nn.Conv2d layers of ``net`` by module path (the names ``from_torch`` gives
    them), in module order. Every function here prunes and shares these layers' weights."""
    return {name: m for name, m in net.named_modules() if isinstance(m, WEIGHTED_TYPES)}


def linear_layers(net: nn.Module) -> dict[str, nn.Linear]:
    """The nn.Linear layers only, by module path (the pipeline uses :func:`weighted_layers`, which also
    includes nn.Conv2d; this older name keeps its meaning)."""
    return {name: m for name, m in net.named_modules() if isinstance(m, nn.Linear)}


def per_kind(net: nn.Module, *, conv: float | None = None, linear: float | None = None) -> dict[str, float]:
    """A per-layer mapping (for ``sparsity`` or ``bits``) by layer type: ``conv`` for every nn.Conv2d,
    ``linear`` for every nn.Linear; a type given None is left out (not pruned / not shared)::

        share_weights(net, per_kind(net, conv=8, linear=5), masks)   # Deep Compression's LeNet bits
    """
    out: dict[str, float] = {}
    for name, m in weighted_layers(net).items():
        v = conv if isinstance(m, nn.Conv2d) else linear
        if v is not None:
            out[name] = v
    return out


def _per_layer(value: PerLayer | None, name: str, what: str = "sparsity") -> float | None:
    if value is None or isinstance(value, (int, float)):
        return check_setting(value, what)
    return check_setting(value.get(name), what, name)


def _check_names(value: PerLayer | None, layers: Mapping[str, nn.Module], what: str) -> None:
    """A per-layer mapping must name weighted layers only (a typo would silently skip a layer)."""
    if value is None or isinstance(value, (int, float)):
        return
    unknown = sorted(set(value) - set(layers))
    if unknown:
        raise ValueError(f"{what}: no nn.Linear or nn.Conv2d layer named {', '.join(map(repr, unknown))}; "
                         f"the weighted layers are {', '.join(map(repr, layers)) or 'none'}")


def shift_augment(max_shift: int = 2) -> Augment:
    """Random translation of a batch of (n, H, W) or (n, C, H, W) images by up to ``max_shift`` pixels
    (one shift per batch, wrapping around: the borders of centred digits are background)."""

    def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        dy, dx = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=gen))
        return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))

    return augment


@torch.no_grad()
def evaluate(net: nn.Module, data: Data, batch_size: int = 2000) -> float:
    """Top-1 accuracy of ``net`` on ``data``."""
    was = net.training
    net.eval()
    x, y = data
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((net(x[i:i + batch_size]).argmax(dim=1) == y[i:i + batch_size]).sum())
    net.train(was)
    return correct / max(1, len(y))


@torch.no_grad()
def apply_masks(net: nn.Module, masks: Masks) -> None:
    layers = weighted_layers(net)
    for name, m in masks.items():
        layers[name].weight.mul_(m)


def _fit(net: nn.Module, data: Data, *, steps: int, lr: float, batch_size: int, masks: Masks | None,
         weight_decay: float, augment: Augment | None, seed: int, min_lr_ratio: float,
         on_step: Callable[[int], Masks | None] | None = None) -> float:
    """Adam + cosine decay for ``steps`` steps; ``on_step(step)`` may return new masks. Returns the
    mean loss of the last 100 steps."""
    x, y = data
    n = len(y)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    layers = weighted_layers(net)
    net.train()
    step = 0
    recent: list[float] = []
    while step < steps:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - batch_size + 1 if n >= batch_size else n, batch_size):
            if step >= steps:
                break
            if on_step is not None:
                new = on_step(step)
                if new is not None:
                    masks = new
                    apply_masks(net, masks)
            for g in opt.param_groups:
                g["lr"] = lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * step / steps)))
            idx = perm[i:i + batch_size]
            xb = x[idx] if augment is None else augment(x[idx], gen)
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if masks:
                for name, m in masks.items():
                    layers[name].weight.grad.mul_(m)
            opt.step()
            if masks:
                apply_masks(net, masks)
            recent = (recent + [float(loss.detach())])[-100:]
            step += 1
    net.eval()
    return sum(recent) / max(1, len(recent))


def _steps(epochs: float, n: int, batch_size: int) -> int:
    return max(1, math.ceil(epochs * n / batch_size))


def train(
    net: nn.Module,
    data: Data,
    *,
    epochs: float,
    lr: float = 1e-3,
    batch_size: int = 128,
    masks: Masks | None = None,
    weight_decay: float = 0.0,
    augment: Augment | None = None,
    seed: int = 0,
    min_lr_ratio: float = 0.02,
    log: Log | None = None,
) -> None:
    """Adam with cosine learning-rate decay and cross-entropy on logits. With ``masks`` the pruned
    weights stay zero (their gradients are masked and the weights re-zeroed after each step).
    ``epochs`` may be fractional."""
    loss = _fit(net, data, steps=_steps(epochs, len(data[1]), batch_size), lr=lr, batch_size=batch_size,
                masks=masks, weight_decay=weight_decay, augment=augment, seed=seed, min_lr_ratio=min_lr_ratio)
    if log:
        log(f"  trained {epochs:g} epochs, loss {loss:.4f}")


def prune_gradually(
    net: nn.Module,
    data: Data,
    sparsity: PerLayer,
    *,
    epochs: float = 10,
    ramp: float = 0.6,
    prune_every: int = 50,
    lr: float = 1e-3,
    batch_size: int = 128,
    augment: Augment | None = None,
    seed: int = 0,
    weight_decay: float = 0.0,
    min_lr_ratio: float = 0.01,
    log: Log | None = None,
) -> Masks:
    """Iterative magnitude pruning with retraining, as a continuous schedule (Zhu & Gupta 2017): every
    ``prune_every`` steps during the first ``ramp`` fraction of training, each layer is pruned by
    magnitude to ``s * (1 - (1 - t)**3)`` of its target ``s`` (fast while the net is redundant, slow
    near the end); the rest of the time retrains at the final masks. Returns the final masks."""
    steps = _steps(epochs, len(data[1]), batch_size)
    ramp_steps = max(1, int(ramp * steps))
    names = list(weighted_layers(net))
    _check_names(sparsity, weighted_layers(net), "sparsity")
    targets = {n: _per_layer(sparsity, n) for n in names}
    targets = {n: float(v) for n, v in targets.items() if v is not None}
    state: dict[str, Masks] = {"masks": {}}

    def on_step(step: int) -> Masks | None:
        if step > ramp_steps or (step % prune_every and step != ramp_steps):
            return None
        t = min(1.0, step / ramp_steps)
        frac = 1.0 - (1.0 - t) ** 3
        state["masks"] = magnitude_masks(net, {n: s * frac for n, s in targets.items()}, state["masks"])
        return state["masks"]

    loss = _fit(net, data, steps=steps, lr=lr, batch_size=batch_size, masks=None, weight_decay=weight_decay,
                augment=augment, seed=seed, min_lr_ratio=min_lr_ratio, on_step=on_step)
    if log:
        log(f"  gradual pruning over {epochs:g} epochs, loss {loss:.4f}; density " + ", ".join(
            f"{n} {float(m.mean()):.3f}" for n, m in state["masks"].items()))
    return state["masks"]


@torch.no_grad()
def magnitude_masks(net: nn.Module, sparsity: PerLayer, masks: Masks | None = None) -> Masks:
    """Per-layer masks keeping the largest weights: ``sparsity`` is the fraction of zeros per layer (a
    number, or a mapping name -> number; layers not named are not pruned). Never revives a pruned weight."""
    out: Masks = dict(masks or {})
    layers = weighted_layers(net)
    _check_names(sparsity, layers, "sparsity")
    for name, layer in layers.items():
        s = _per_layer(sparsity, name)
        if s is None:
            continue
        w = layer.weight.detach()
        if masks and name in masks:
            w = w * masks[name]
        n_drop = round(float(s) * w.numel())
        keep = torch.ones(w.numel(), dtype=torch.bool)
        if n_drop > 0:
            order = torch.argsort(w.abs().flatten(), stable=True)
            keep[order[:n_drop]] = False
        keep &= w.flatten() != 0
        out[name] = keep.view_as(w).to(w.dtype)
    return out


def prune_iteratively(
    net: nn.Module,
    data: Data,
    sparsity: PerLayer,
    *,
    steps: int = 4,
    epochs_per_step: float = 2.0,
    lr: float = 5e-4,
    schedule: str = "geometric",
    log: Log | None = None,
    eval_data: Data | None = None,
    **train_kw: Any,
) -> Masks:
    """Prunes to the target ``sparsity`` in ``steps`` rounds of prune-then-retrain (Han et al. 2015).

    ``schedule="geometric"`` removes the same fraction of the remaining weights every round (density
    ``d**(t/steps)``), so the last rounds, where each weight matters more, cut least.
    """
    def at(s: float, frac: float) -> float:
        return 1.0 - (1.0 - s) ** frac if schedule == "geometric" else s * frac

    _check_names(sparsity, weighted_layers(net), "sparsity")
    masks: Masks = {}
    for t in range(1, steps + 1):
        step_sparsity: PerLayer
        if isinstance(sparsity, (int, float)):
            step_sparsity = at(float(sparsity), t / steps)
        else:
            step_sparsity = {n: at(float(v), t / steps) for n in weighted_layers(net)
                             if (v := _per_layer(sparsity, n)) is not None}
        masks = magnitude_masks(net, step_sparsity, masks)
        apply_masks(net, masks)
        msg = f"prune round {t}/{steps}: density " + ", ".join(
            f"{n} {float(m.mean()):.3f}" for n, m in masks.items())
        if log and eval_data is not None:
            msg += f"; acc before retrain {evaluate(net, eval_data):.4f}"
        if log:
            log(msg)
        train(net, data, epochs=epochs_per_step, lr=lr, masks=masks, seed=t, log=log, **train_kw)
        if log and eval_data is not None:
            log(f"  acc after retrain {evaluate(net, eval_data):.4f}")
    return masks


@torch.no_grad()
def share_weights(net: nn.Module, bits: PerLayer, masks: Masks | None = None) -> Codebooks:
    """k-means (linear init, over the surviving weights) per layer; the net's weights become their
    centroids. ``bits`` is one number for every weighted layer or a mapping name -> bits (layers not
    named keep their weights), e.g. ``per_kind(net, conv=8, linear=5)``. Returns name -> (centroids,
    indices with the weight's shape) for :func:`finetune_centroids`."""
    books: Codebooks = {}
    layers = weighted_layers(net)
    _check_names(bits, layers, "bits")
    for name, layer in layers.items():
        b = _per_layer(bits, name, "bits")
        if b is None:
            continue
        w = layer.weight.detach().cpu().numpy()
        mask = (w != 0) if not masks or name not in masks else masks[name].cpu().numpy() != 0
        c, idx = kmeans_share(w, int(b), mask=mask)
        books[name] = (torch.from_numpy(c.copy()), torch.from_numpy(idx.astype(np.int64)))
        layer.weight.copy_(torch.from_numpy(np.where(mask, c[idx], 0).astype(np.float32)))
    return books


def finetune_centroids(
    net: nn.Module,
    books: Codebooks,
    data: Data,
    *,
    epochs: float = 1.0,
    lr: float = 1e-4,
    batch_size: int = 128,
    masks: Masks | None = None,
    augment: Augment | None = None,
    seed: int = 0,
    optimizer: str = "adam",
    log: Log | None = None,
) -> Codebooks:
    """Fine-tunes the shared centroids (Deep Compression sec. 3.3): each centroid's gradient is the sum
    of its weights' gradients; biases and unshared layers train normally. The net keeps computing with
    ``centroids[indices]`` (zero where pruned). ``optimizer``: ``"adam"`` or ``"sgd"`` (plain, no
    momentum: one step moves a centroid by exactly ``-lr`` times its summed gradient). Returns the
    updated codebooks."""
    layers = weighted_layers(net)
    x, y = data
    n = len(y)
    gen = torch.Generator().manual_seed(seed)
    cents = {name: nn.Parameter(c.clone()) for name, (c, _) in books.items()}
    live = {}  # name -> (indices, float mask, flat positions of the surviving weights, their clusters)
    for name, (c, idx) in books.items():
        w = layers[name].weight.detach()
        m = (w != 0) if not masks or name not in masks else masks[name] != 0
        pos = torch.nonzero(m.flatten()).flatten()
        live[name] = (idx, m.to(w.dtype), pos, idx.flatten()[pos])
        layers[name].weight.requires_grad_(True)
    others = [p for nme, l in layers.items() for pn, p in l.named_parameters()
              if not (nme in books and pn == "weight")]
    layer_ids = {id(p) for l in layers.values() for p in l.parameters()}
    others += [p for p in net.parameters() if id(p) not in layer_ids]
    groups = [{"params": list(cents.values())}, {"params": others}]
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(groups, lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=lr)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    steps = max(1, math.ceil(epochs * n / batch_size))

    def refresh() -> None:
        with torch.no_grad():
            for name, (idx, m, _, _) in live.items():
                layers[name].weight.copy_(cents[name].detach()[idx] * m)

    refresh()
    net.train()
    step = 0
    while step < steps:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            if step >= steps:
                break
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            bidx = perm[i:i + batch_size]
            xb = x[bidx] if augment is None else augment(x[bidx], gen)
            loss = F.cross_entropy(net(xb), y[bidx])
            opt.zero_grad(set_to_none=True)
            for layer in layers.values():
                layer.weight.grad = None
            loss.backward()
            for name, (_, _, pos, cluster) in live.items():
                # shared gradient: a centroid's gradient is the sum of its weights' gradients
                g = layers[name].weight.grad.flatten()[pos]
                cents[name].grad = torch.bincount(cluster, weights=g, minlength=cents[name].numel()).to(g.dtype)
                layers[name].weight.grad = None
            if masks:
                for name, m in masks.items():
                    if name not in live and layers[name].weight.grad is not None:
                        layers[name].weight.grad.mul_(m)
            opt.step()
            if masks:
                apply_masks(net, {k: v for k, v in masks.items() if k not in live})
            refresh()
            step += 1
    net.eval()
    if log:
        log(f"  centroid fine-tune {epochs:g} epochs, last loss {float(loss.detach()):.4f}")
    return {name: (cents[name].detach().clone(), books[name][1]) for name in books}


@dataclass
class CompressResult:
    """What :func:`compress` did: accuracies after each stage, masks, codebooks, times, log lines."""

    dense_acc: float = 0.0
    pruned_acc: float = 0.0
    shared_acc: float = 0.0
    finetuned_acc: float = 0.0
    masks: Masks = field(default_factory=dict)
    books: Codebooks = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def compress(
    net: nn.Module,
    train_data: Data,
    eval_data: Data,
    *,
    dense_epochs: float = 10,
    sparsity: PerLayer = 0.9,
    prune_epochs: float = 8,
    prune_method: str = "gradual",
    prune_steps: int = 4,
    bits: PerLayer | None = 5,
    centroid_epochs: float = 1,
    lr: float = 1e-3,
    retrain_lr: float = 1e-3,
    centroid_lr: float = 1e-4,
    batch_size: int = 128,
    augment: Augment | None = None,
    seed: int = 0,
    log: Log | None = print,
) -> CompressResult:
    """Deep Compression's training pipeline on ``net`` (modified in place): train dense, prune with
    retraining (``prune_method="gradual"``: :func:`prune_gradually` over ``prune_epochs``;
    ``"rounds"``: :func:`prune_iteratively`, ``prune_steps`` rounds sharing ``prune_epochs``), share
    weights by k-means, fine-tune the centroids. Convert the result with ``from_torch(net, example)``:
    the shared values are taken as they are (no second k-means)."""
    res = CompressResult()
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if log:
            log(msg)

    if dense_epochs:
        train(net, train_data, epochs=dense_epochs, lr=lr, batch_size=batch_size, augment=augment, seed=seed,
              log=log)
    res.dense_acc = evaluate(net, eval_data)
    res.seconds["dense"] = time.perf_counter() - t0
    say(f"dense accuracy {res.dense_acc:.4f} ({res.seconds['dense']:.0f} s)")

    t1 = time.perf_counter()
    if prune_method == "gradual":
        res.masks = prune_gradually(net, train_data, sparsity, epochs=prune_epochs, lr=retrain_lr,
                                    batch_size=batch_size, augment=augment, seed=seed + 1, log=log)
    elif prune_method == "rounds":
        res.masks = prune_iteratively(net, train_data, sparsity, steps=prune_steps,
                                      epochs_per_step=prune_epochs / prune_steps, lr=retrain_lr,
                                      batch_size=batch_size, augment=augment, log=log, eval_data=eval_data)
    else:
        raise ValueError(f"prune_method must be 'gradual' or 'rounds', got {prune_method!r}")
    res.pruned_acc = evaluate(net, eval_data)
    res.seconds["prune"] = time.perf_counter() - t1
    say(f"pruned accuracy {res.pruned_acc:.4f} ({res.seconds['prune']:.0f} s)")
    res.shared_acc = res.finetuned_acc = res.pruned_acc
    if bits is None:
        return res

    t2 = time.perf_counter()
    res.books = share_weights(net, bits, res.masks)
    res.shared_acc = evaluate(net, eval_data)
    say(f"k-means shared accuracy {res.shared_acc:.4f}")
    if centroid_epochs:
        res.books = finetune_centroids(net, res.books, train_data, epochs=centroid_epochs, lr=centroid_lr,
                                       batch_size=batch_size, masks=res.masks, augment=augment, seed=seed + 2,
                                       log=log)
        res.finetuned_acc = evaluate(net, eval_data)
    else:
        res.finetuned_acc = res.shared_acc
    res.seconds["share"] = time.perf_counter() - t2
    say(f"centroid fine-tuned accuracy {res.finetuned_acc:.4f} ({res.seconds['share']:.0f} s)")
    return res
