"""Converter: trained network -> compressed .pyrt model (Deep Compression: prune -> share -> encode).

One call::

    from pyruntime.convert import from_torch
    cm = from_torch(net, torch.zeros(1, 1, 28, 28), sparsity=0.92, bits=5)
    print(cm.report()); cm.save("lenet.pyrt")
    y = pyruntime.load("lenet.pyrt").run(x)

or over numpy arrays with :func:`from_numpy`. The steps are also usable one by one:
:func:`prune_magnitude`, :func:`kmeans_share`, :func:`encode_layer` (smallest of the candidate
encodings, as sized by the C++ writer). ``pyruntime.convert.finetune`` (needs torch) holds the
training side: iterative pruning with retraining and centroid fine-tuning.
"""
from __future__ import annotations

from typing import Any

from .choose import Choice, Objective, choose
from .encode import candidates, choose_encoding, decode_tensor, encode_layer, encoded_bytes
from .kmeans import kmeans_share, linear_init, shared_weights
from .model import CompressedModel, LayerReport, from_numpy
from .prune import PerLayer, magnitude_mask, prune_magnitude, sparsity_of


def from_torch(
    module: Any,
    example_input: Any,
    *,
    sparsity: PerLayer = None,
    bits: PerLayer = None,
    metadata: dict[str, Any] | None = None,
    **choice: Any,
) -> CompressedModel:
    """Converts a PyTorch network of Linear / ReLU / Flatten / Softmax (Sequential or any forward that
    chains them, traced with torch.fx) into a :class:`CompressedModel`.

    ``example_input``: a batch (batch first) of the input the network takes; only its shape and dtype
    matter. ``sparsity``: None keeps the zeros the weights already have (and the masks of
    ``torch.nn.utils.prune``); a number, or a mapping layer-path -> number, prunes that fraction of
    each layer by magnitude. ``bits``: None keeps fp32 values; a number (or mapping) shares each
    layer's weights among ``2**bits`` k-means centroids. Linear layers are named by module path.
    ``choice``: the encoding objective of :func:`from_numpy` (``optimize``, ``batch``, ``threads``,
    ``size_budget``, ``speed_budget``, ``cost_model``).

    Raises ``pyruntime.UnsupportedError`` naming the op and module path of anything else.
    """
    from .torch_capture import capture

    input_shape, layers, masks = capture(module, example_input)
    meta = {"source": f"torch:{type(module).__name__}"}
    meta.update(metadata or {})
    return from_numpy(layers, input_shape, sparsity=sparsity, bits=bits, masks=masks or None, metadata=meta,
                      **choice)


def assign_weights(module: Any, compressed: CompressedModel) -> None:
    """Loads the compressed weights (``compressed.dense_weights()``) into ``module``'s Linear layers."""
    from .torch_capture import assign_weights as _assign

    _assign(module, compressed.dense_weights())


__all__ = [
    "Choice",
    "CompressedModel",
    "LayerReport",
    "Objective",
    "assign_weights",
    "candidates",
    "choose",
    "choose_encoding",
    "decode_tensor",
    "encode_layer",
    "encoded_bytes",
    "from_numpy",
    "from_torch",
    "kmeans_share",
    "linear_init",
    "magnitude_mask",
    "prune_magnitude",
    "shared_weights",
    "sparsity_of",
]
