"""Converter: trained network -> compressed .pyrt model (Deep Compression: prune -> share -> encode).

One call::

    from pyruntime.convert import from_torch
    cm = from_torch(net, torch.zeros(1, 1, 28, 28), sparsity=0.92, bits=5)
    print(cm.report()); cm.save("lenet.pyrt")
    y = pyruntime.load("lenet.pyrt").run(x)

or over numpy arrays with :func:`from_numpy` (a chain of layer tuples) or :func:`from_graph` (a
:class:`Graph`: any DAG of the runtime's ops, convolutions, pools, residual adds, concats). The steps are also usable one by one:
:func:`prune_magnitude`, :func:`kmeans_share`, :func:`encode_layer` (smallest of the candidate
encodings, as sized by the C++ writer). ``pyruntime.convert.finetune`` (needs torch) holds the
training side: iterative pruning with retraining and centroid fine-tuning.
"""
from __future__ import annotations

from typing import Any

from .choose import Choice, Objective, choose
from .encode import candidates, choose_encoding, decode_tensor, encode_layer, encoded_bytes
from .graph import Graph
from .kmeans import kmeans_share, linear_init, shared_weights
from .model import CompressedModel, LayerReport, from_graph, from_numpy
from .prune import PerLayer, magnitude_mask, prune_magnitude, sparsity_of
from .quantize import check_calibration, int8_linear, quantize_weight


def from_torch(
    module: Any,
    example_input: Any,
    *,
    sparsity: PerLayer = None,
    bits: PerLayer = None,
    metadata: dict[str, Any] | None = None,
    **choice: Any,
) -> CompressedModel:
    """Converts a PyTorch network (traced with torch.fx: Sequential or any forward, branches and
    residual connections included) into a :class:`CompressedModel`. Supported: Linear, Conv2d,
    BatchNorm folded into the conv / Linear before it, ReLU / ReLU6 / Hardtanh / clamp, max / average
    / global average pooling, adds, concatenation, flatten / reshape, Softmax, Dropout, Identity (the
    list, with the functional forms, is in :mod:`pyruntime.convert.torch_capture`).

    ``example_input``: a batch (batch first) of the input the network takes; only its shape and dtype
    matter. ``sparsity``: None keeps the zeros the weights already have (and the masks of
    ``torch.nn.utils.prune``); a number, or a mapping layer-path -> number, prunes that fraction of
    each layer by magnitude. ``bits``: None keeps fp32 values; a number (or mapping) shares each
    layer's weights among ``2**bits`` k-means centroids. Layers are named by module path.
    ``choice``: the encoding objective of :func:`from_graph` (``optimize``, ``batch``, ``threads``,
    ``size_budget``, ``speed_budget``, ``cost_model``) and its int8 settings (``quantize="int8"`` /
    ``"dynamic"`` / ``"static"``, for every linear layer or per layer path, and ``calibration=`` inputs
    for static scales, a numpy array or a CPU tensor of shape ``(N, *input_shape)``).

    Batch norms folded into a layer are listed in the metadata under ``"folded_batchnorm"`` (layer ->
    batch norm path), the parameters of F.linear / F.conv2d layers under ``"functional_layers"``;
    :func:`assign_weights` uses both. Raises ``pyruntime.UnsupportedError`` naming the
    op and module path of anything else.
    """
    from .torch_capture import capture

    cap = capture(module, example_input)
    meta: dict[str, Any] = {"source": f"torch:{type(module).__name__}"}
    if cap.folded:
        meta["folded_batchnorm"] = dict(cap.folded)
    if cap.functional:
        meta["functional_layers"] = dict(cap.functional)
    meta.update(metadata or {})
    return from_graph(cap.graph, sparsity=sparsity, bits=bits, masks=cap.masks or None, metadata=meta, **choice)


def assign_weights(module: Any, compressed: CompressedModel) -> None:
    """Loads the compressed weights (``compressed.dense_weights()``) into ``module``'s Linear and Conv2d
    layers (by module path), in place, so that torch computes what the runtime computes.

    A batch norm that the conversion folded into the layer before it is made an exact identity in
    eval mode (running mean 0, running var 1, eps 0, gamma 1, beta 0, or beta = the folded bias when
    the layer has no bias) while the layer gets the folded weights: run the module in eval mode, and
    ``copy.deepcopy`` it first to keep the original.
    """
    from .torch_capture import assign_weights as _assign

    _assign(module, compressed.dense_weights(), compressed.metadata.get("folded_batchnorm"),
            compressed.metadata.get("functional_layers"))


__all__ = [
    "Choice",
    "CompressedModel",
    "Graph",
    "LayerReport",
    "Objective",
    "assign_weights",
    "candidates",
    "check_calibration",
    "choose",
    "choose_encoding",
    "decode_tensor",
    "encode_layer",
    "encoded_bytes",
    "from_graph",
    "from_numpy",
    "from_torch",
    "int8_linear",
    "kmeans_share",
    "linear_init",
    "magnitude_mask",
    "prune_magnitude",
    "quantize_weight",
    "shared_weights",
    "sparsity_of",
]
