"""The cost model behind the converter's per-layer encoding choice (and ``Model.summary``'s timings).

    from pyruntime.cost import default_cost_model
    default_cost_model().seconds("csr+codebook", 4096, 4096, nnz=1_677_722, k=16, batch=1)

A conv layer is priced by the method the runtime runs it by (direct, direct_lanes, im2col), with terms
of its own: :class:`~pyruntime.cost.conv.ConvCost`.

``pyruntime calibrate -o profile.json`` measures this machine; ``PYRUNTIME_COST_PROFILE=profile.json``
(or ``cost_model=CostModel.load(...)`` in the converter) uses it instead of the built-in profile.
"""
from .conv import ConvCost, ConvGeometry, conv_method
from .layouts import ENCODINGS, exec_bytes, kernel_class, layout_of, visits
from .model import Coef, CostModel, default_cost_model

__all__ = ["ENCODINGS", "Coef", "ConvCost", "ConvGeometry", "CostModel", "conv_method", "default_cost_model",
           "exec_bytes", "kernel_class", "layout_of", "visits"]
