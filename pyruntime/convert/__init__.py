"""Converter: trained network -> compressed .pyrt model (Deep Compression: prune -> share -> encode).

One call::

    from pyruntime.convert import from_torch
    cm = from_torch(net, torch.zeros(1, 1, 28, 28), sparsity=0.92, bits=5)
    print(cm.report()); cm.save("lenet.pyrt")
    y = pyruntime.load("lenet.pyrt").run(x)

or an ONNX model with :func:`from_onnx` (``pip install "pyruntime[onnx]"``), or over numpy arrays with
:func:`from_numpy` (a chain of layer tuples) or :func:`from_graph` (a
:class:`Graph`: any DAG of the runtime's ops, convolutions, pools, residual adds, concats). The steps are also usable one by one:
:func:`prune_magnitude`, :func:`kmeans_share`, :func:`encode_layer` (smallest of the candidate
encodings, as sized by the C++ writer). ``pyruntime.convert.finetune`` (needs torch) holds the
training side: iterative pruning with retraining and centroid fine-tuning.

Binary networks (docs/FORMAT.md 2.6): :class:`SignSTE`, :class:`BinaryLinear` and :class:`BinaryConv2d`
(torch modules, trained with the straight-through estimator) convert to the runtime's ``sign``, ``blinear``
and ``bconv2d`` ops, a batch norm and sign after a binary layer folding into popcount thresholds
(:mod:`.binarize`);
:func:`from_binary_layers` imports a binarized MLP given as weight bits and thresholds.
"""
from __future__ import annotations

from typing import Any

from .binarize import from_binary_layers
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
    binary: Any = None,
    **choice: Any,
) -> CompressedModel:
    """Converts a PyTorch network (traced with torch.fx: Sequential or any forward, branches and
    residual connections included) into a :class:`CompressedModel`. Supported: Linear (over the last
    axis), Conv2d, Conv1d, BatchNorm folded into the conv / Linear before it, ReLU / ReLU6 / Hardtanh /
    clamp / LeakyReLU / GELU / SiLU / Sigmoid / Tanh, max / average / adaptive average pooling, nearest
    upsampling, arithmetic with broadcasting and constants, matmul, softmax along a dim, LayerNorm,
    Embedding, concatenation, split / chunk, flatten / reshape / transpose / permute / indexing,
    Dropout, Identity: CNNs and transformer encoders such as BERT (the list, with the functional forms,
    is in :mod:`pyruntime.convert.torch_capture` and :mod:`~pyruntime.convert.torch_tensor_ops`).

    ``example_input``: a batch (batch first) of the input the network takes, or a tuple of one per input
    (``(input_ids, attention_mask)``: an integer tensor becomes an int32 token-id input); only shapes and
    dtypes matter. ``sparsity``: None keeps the zeros the weights already have (and the masks of
    ``torch.nn.utils.prune``); a number, or a mapping layer-path -> number, prunes that fraction of
    each layer by magnitude. ``bits``: None keeps fp32 values; a number (or mapping) shares each
    layer's weights among ``2**bits`` k-means centroids. Layers are named by module path.
    ``choice``: the encoding objective of :func:`from_graph` (``optimize``, ``batch``, ``threads``,
    ``size_budget``, ``speed_budget``, ``cost_model``) and its int8 settings (``quantize="int8"`` /
    ``"dynamic"`` / ``"static"``, for every linear layer or per layer path, and ``calibration=`` inputs
    for static scales, a numpy array or a CPU tensor of shape ``(N, *input_shape)``).

    Binary networks: :class:`SignSTE` and ``torch.where(x >= 0, 1.0, -1.0)`` become ``sign`` ops (a scalar
    affine before one, ``x * 2 - 1``, is held in its scale and shift; ``torch.sign`` is refused: sign(0) = 0);
    ``binary`` says which linear and conv layers become binary ``blinear`` / ``bconv2d`` layers: None
    (default) every :class:`BinaryLinear` and :class:`BinaryConv2d`, every Linear whose weight is +-alpha per
    row and every Conv2d (groups 1) whose weight is +-alpha per output channel; True every linear and conv
    layer (one that is not binary, or a grouped conv, is refused by name); False none; or a mapping layer
    path -> True / False / None. A binary layer reading binary values whose output reaches a sign (through
    bias, BatchNorm1d / BatchNorm2d, hardtanh, scalar affines) gives the sign itself, by popcount thresholds
    computed exactly from torch's own arithmetic (for a conv at every dot a padded window can reach: a tap in
    the zero padding contributes 0); otherwise its output is real, a batch norm after it folded into its
    alphas and bias. What was folded where is in the metadata under ``"binary_layers"``. ``sparsity``, ``bits`` and ``quantize``
    given as one value leave binary layers alone.

    Batch norms folded into a layer are listed in the metadata under ``"folded_batchnorm"`` (layer ->
    batch norm path), the parameters of F.linear / F.conv2d layers under ``"functional_layers"``;
    :func:`assign_weights` uses both. Raises ``pyruntime.UnsupportedError`` naming the
    op and module path of anything else.
    """
    from .torch_capture import capture

    cap = capture(module, example_input, binary)
    meta: dict[str, Any] = {"source": f"torch:{type(module).__name__}"}
    if cap.folded:
        meta["folded_batchnorm"] = dict(cap.folded)
    if cap.functional:
        meta["functional_layers"] = dict(cap.functional)
    if cap.binary:
        meta["binary_layers"] = dict(cap.binary)
    meta.update(metadata or {})
    return from_graph(cap.graph, sparsity=sparsity, bits=bits, masks=cap.masks or None, metadata=meta, **choice)


def from_onnx(
    model: Any,
    *,
    sparsity: PerLayer = None,
    bits: PerLayer = None,
    metadata: dict[str, Any] | None = None,
    **choice: Any,
) -> CompressedModel:
    """Converts an ONNX model (a path, the serialized bytes, or an ``onnx.ModelProto``; needs the ``onnx``
    package: ``pip install "pyruntime[onnx]"``) into a :class:`CompressedModel`, as :func:`from_torch` does a
    torch module. Supported: Gemm, MatMul (with a constant operand: a linear layer; of two activations:
    attention's matmul), Conv (2-D and 1-D), BatchNormalization (folded into the layer before it when that
    layer's output is read by it alone), Relu / Clip / LeakyRelu / Sigmoid / Tanh / Gelu / HardSigmoid /
    HardSwish, the erf and tanh forms of GELU and the decomposed LayerNorm that exporters write,
    LayerNormalization, Softmax, Add / Sub / Mul / Div with broadcasting and constants, MaxPool / AveragePool /
    GlobalAveragePool (a Pad before a conv or pool becomes its padding), nearest Resize / Upsample by whole
    factors, Reshape / Flatten / Transpose / Squeeze / Unsqueeze / Concat / Split / Slice / Expand, Gather (an
    embedding, or constant indices), Identity, Dropout, Cast, and constant subgraphs (folded); the list is in
    :mod:`pyruntime.convert.onnx_capture`. Anything else raises ``pyruntime.UnsupportedError`` naming the ONNX
    op type and node.

    The batch is the first dim of every graph input (fixed or symbolic; every other dim must be fixed): float
    inputs are f32 values, integer ones i32 token ids, taken by ``Model.run`` in the ONNX graph's input order.
    Layers are named after their weight initializer (``fc1.weight`` -> ``fc1``), else their bias initializer or
    node (see :mod:`~pyruntime.convert.onnx_capture`); the metadata maps each layer to its ONNX node
    (``"onnx_nodes"``) and lists folded batch norms (``"folded_batchnorm"``).

    Quantized models (:mod:`pyruntime.convert.onnx_quant`): integer weights behind a DequantizeLinear (QDQ) and
    the MatMulInteger / ConvInteger layers of ``onnxruntime.quantization.quantize_dynamic`` become dynamic int8
    layers holding the file's own integers and per-output-channel scales (``"onnx_int8"`` in the metadata); a
    weight whose scales the runtime cannot hold is dequantized to float (``"onnx_dequantized"`` says why); an
    activation QuantizeLinear / DequantizeLinear pair becomes a clamp to its integer range, without the
    rounding: the runtime quantizes activations dynamically, not with the file's static scales
    (``"onnx_notes"``). ``bits`` does not apply to such int8 layers (a layer is shared or int8).

    ``sparsity``, ``bits`` and ``choice`` are :func:`from_torch`'s: None keeps the zeros a pruned model already
    holds (so the encoder can choose CSR), a number or a mapping layer name -> number prunes / shares;
    ``choice`` is :func:`from_graph`'s encoding objective (``optimize``, ``batch``, ``threads``, ...) and int8
    settings (``quantize=``, ``calibration=``).
    """
    from .onnx_capture import capture

    cap = capture(model)
    meta: dict[str, Any] = {"source": f"onnx:{cap.producer or 'unknown producer'}", "onnx_opset": cap.opset,
                            "onnx_nodes": dict(cap.nodes)}
    if cap.folded:
        meta["folded_batchnorm"] = dict(cap.folded)
    if cap.int8:
        meta["onnx_int8"] = dict(cap.int8)
    if cap.dequantized:
        meta["onnx_dequantized"] = dict(cap.dequantized)
    if cap.notes:
        meta["onnx_notes"] = list(cap.notes)
    meta.update(metadata or {})
    return from_graph(cap.graph, sparsity=sparsity, bits=bits, metadata=meta, **choice)


def assign_weights(module: Any, compressed: CompressedModel) -> None:
    """Loads the compressed weights (``compressed.dense_weights()``) into ``module``'s Linear and Conv2d
    layers (by module path), in place, so that torch computes what the runtime computes.

    A batch norm that the conversion folded into the layer before it is made an exact identity in
    eval mode (running mean 0, running var 1, eps 0, gamma 1, beta 0, or beta = the folded bias when
    the layer has no bias) while the layer gets the folded weights: run the module in eval mode, and
    ``copy.deepcopy`` it first to keep the original. Binary layers are left as they are.
    """
    from .torch_capture import assign_weights as _assign

    binary = set(compressed.binary_layers())
    weights = {k: v for k, v in compressed.dense_weights().items() if k not in binary}
    _assign(module, weights, compressed.metadata.get("folded_batchnorm"), compressed.metadata.get("functional_layers"))


def __getattr__(name: str) -> Any:
    """SignSTE, BinaryLinear and BinaryConv2d (torch modules) are imported on first use, so the package works
    without torch."""
    if name in ("SignSTE", "BinaryLinear", "BinaryConv2d"):
        from . import binary_modules

        return getattr(binary_modules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BinaryConv2d",
    "BinaryLinear",
    "Choice",
    "CompressedModel",
    "Graph",
    "LayerReport",
    "Objective",
    "SignSTE",
    "assign_weights",
    "candidates",
    "check_calibration",
    "choose",
    "choose_encoding",
    "decode_tensor",
    "encode_layer",
    "encoded_bytes",
    "from_binary_layers",
    "from_graph",
    "from_numpy",
    "from_onnx",
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
