"""Quantized ONNX models, mixed into the graph walker of :mod:`.onnx_capture` (docs/FORMAT.md 2.5: the runtime's
int8 layers have symmetric int8 weights with one scale per output channel, and quantize their input per sample,
symmetrically, while running: ``quantize="dynamic"``).

- **QDQ weights**: ``DequantizeLinear`` of an integer initializer feeding a Gemm, MatMul or Conv. When ``q - zero
  point`` fits in int8 and the scale is one number or one per output channel, the layer is int8 with the file's
  own integers and scales (-128 is clamped to -127: the format is symmetric); otherwise (scales along the input
  axis, blocked scales, ...) its dequantized float weight is used, and the metadata says why
  (``"onnx_dequantized"``).
- **QDQ activations**: a ``QuantizeLinear`` -> ``DequantizeLinear`` pair on an activation (the fake quantization of
  static QDQ models) becomes a clamp to the range its integer type can hold, ``(qmin - zero point) * scale`` to
  ``(qmax - zero point) * scale``: quantization tools fold a ReLU into a uint8 zero point of 0, so the clamp
  keeps it. The rounding to the scale's steps is not applied: the runtime cannot take the file's static scales
  as they are (from_graph calibrates its own for ``quantize="static"``), so the int8 layers quantize their
  inputs dynamically instead; the metadata says so (``"onnx_notes"``).
- **Dynamic quantization** (``onnxruntime.quantization.quantize_dynamic``): ``DynamicQuantizeLinear`` ->
  ``MatMulInteger`` / ``ConvInteger`` -> ``Cast`` -> ``Mul`` by the product of the two scales becomes one dynamic
  int8 linear / conv layer with the weight's integers and scales (its bias Add folded after it). The runtime
  quantizes activations symmetrically per sample where ONNX Runtime uses uint8 with a zero point per tensor, so
  the two agree to int8 precision, not bit for bit.

The intermediate values of these patterns are :class:`Marker` objects; any other reader of one is refused,
naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _core
from .onnx_ops import Marker, _Base


def _unsupported(msg: str) -> Exception:
    return _core.UnsupportedError(msg)


def _label(node: Any) -> str:
    from .onnx_capture import node_label

    return node_label(node)


@dataclass
class QuantInfo:
    """The integer form of a dequantized constant: ``value = q * scale`` with ``q`` (int64, the constant's shape,
    zero point already subtracted) in -128..127 and ``scale`` one number or one per index of ``axis``."""

    q: np.ndarray
    scale: np.ndarray
    axis: int | None


class QuantizedAct(Marker):
    what = "a QuantizeLinear of an activation (only read by a DequantizeLinear)"


class DynQuant(Marker):
    what = "a DynamicQuantizeLinear output (only read by MatMulInteger / ConvInteger and the scale Mul)"


class DynScale(DynQuant):
    pass


class DynZeroPoint(DynQuant):
    pass


class IntegerProduct(Marker):
    what = "an integer MatMulInteger / ConvInteger product (only read by its Cast and the scale Mul)"


class ScaleProduct(Marker):
    what = "the product of a dynamic input scale and a weight scale (only read by the Mul that rescales a " \
           "MatMulInteger / ConvInteger)"


class _OnnxQuant(_Base):
    """The walker's methods for quantized models."""

    # -- constants ------------------------------------------------------------------------------------------
    def _dequantize_const(self, node: Any, ins: list[Any]) -> Any:
        """DequantizeLinear of constants: the float value (onnx's reference arithmetic), and its integer form when
        it is ``q * scale`` with ``q`` in int8's range (zero point subtracted)."""
        from .onnx_capture import Const

        x, scale = np.asarray(ins[0].value), np.asarray(ins[1].value, np.float32)
        zp = np.asarray(ins[2].value) if len(ins) > 2 and ins[2] is not None else np.zeros(1, np.int64)
        if x.dtype.kind not in "iu" or self.attr(node, "block_size", 0) not in (0, None) or \
                (scale.size > 1 and scale.ndim != 1):  # float8, int4, blocked scales: onnx's reference arithmetic
            value = self._fold(node, [c.value if c is not None else None for c in ins])[0]
            return Const(np.asarray(value, np.float32), ins[0].origin)
        axis = int(self.attr(node, "axis", 1)) % max(x.ndim, 1) if scale.size > 1 else None
        shape = [1] * x.ndim
        if axis is not None:
            shape[axis] = -1
        q = x.astype(np.int64) - (zp.astype(np.int64).reshape(shape) if zp.size > 1 else int(zp.reshape(-1)[0]))
        s = scale.reshape(shape) if axis is not None else np.float32(scale.reshape(-1)[0])
        value = (q.astype(np.float32) * s).astype(np.float32)  # (x - zero point) * scale in float32, as ONNX
        quant = None
        if q.size and q.min() >= -128 and q.max() <= 127 and np.all(scale > 0) and np.isfinite(scale).all():
            quant = QuantInfo(q, scale.reshape(-1) if axis is not None else scale.reshape(1), axis)
        return Const(value, ins[0].origin, quant)

    def weight_int8(self, node: Any, c: Any, axis_out: int, scale: float = 1.0) -> dict[str, Any] | None:
        """The int8 form of a layer's weight from a dequantized constant: ``{"weight", "q", "scales", "clamped",
        "how"}`` (weight = q * scales, [out, in] or the conv's shape), ``{"dequantized": why}`` when the file's form
        is not the runtime's, None for a float constant. ``axis_out``: the constant's output-channel axis (0 for a
        Conv or a Gemm with transB, 1 for a MatMul's [K, N] or a Gemm without transB); ``scale``: Gemm's alpha."""
        qi = c.quant
        if qi is None:
            return None
        q = qi.q
        if q.ndim < 2 or (q.ndim > 2 and axis_out != 0):
            return {"dequantized": f"an integer weight of shape {q.shape} is not a matrix"}
        n_out = q.shape[axis_out]
        if qi.axis is None:
            scales = np.full(n_out, qi.scale[0], np.float32)
        elif qi.axis == axis_out:
            scales = qi.scale.astype(np.float32)
        else:
            return {"dequantized": f"its scales run along axis {qi.axis}, not the output channels (axis {axis_out})"}
        if scale != 1.0:
            scales = (scales * np.float32(scale)).astype(np.float32)
        q2 = q if axis_out == 0 else q.T
        q2 = q2.reshape(n_out, -1)
        clamped = int((q2 == -128).sum())
        q8 = np.maximum(q2, -127).astype(np.int8)
        weight = (q8.astype(np.float32) * scales[:, None]).astype(np.float32)
        weight = weight.reshape(q.shape if axis_out == 0 else (n_out, q.shape[0]))
        how = "int8 weights and scales of the ONNX file" + (f" ({clamped} at -128 clamped to -127)" if clamped else "")
        return {"weight": weight, "q": q8, "scales": scales, "clamped": clamped, "how": how}

    # -- QDQ activations ------------------------------------------------------------------------------------
    def _op_QuantizeLinear(self, node: Any, ins: list[Any]) -> Any:
        x = self.act(node, 0)
        scale, zp = self._qparams(node, ins)
        return QuantizedAct(node, x, scale=scale, zero_point=zp)

    def _qparams(self, node: Any, ins: list[Any]) -> tuple[float, np.ndarray]:
        """A per-tensor scale and the zero point (its dtype the integer type; uint8 0 when absent)."""
        scale = np.asarray(self.const(node, node.input[1], "scale").value, np.float32)
        zp = (np.asarray(self.const(node, node.input[2], "zero point").value)
              if len(node.input) > 2 and node.input[2] else np.zeros(1, np.uint8))
        if scale.size != 1 or zp.size != 1 or zp.dtype.kind not in "iu":
            raise _unsupported(f"{_label(node)}: activation quantization with scale shape {scale.shape} and zero "
                               f"point {zp.dtype}{list(zp.shape)}; only one integer scale and zero point per tensor "
                               "is supported")
        return float(scale.reshape(-1)[0]), zp.reshape(-1)

    def _op_DequantizeLinear(self, node: Any, ins: list[Any]) -> Any:
        src = ins[0]
        if isinstance(src, QuantizedAct):
            scale, zp = self._qparams(node, ins)
            if scale != src.extra["scale"] or zp[0] != src.extra["zero_point"][0]:
                raise _unsupported(f"{_label(node)} dequantizes with scale {scale} / zero point {zp[0]}, its "
                                   f"QuantizeLinear quantized with {src.extra['scale']} / "
                                   f"{src.extra['zero_point'][0]}; only matching pairs are supported")
            info = np.iinfo(zp.dtype)
            lo, hi = ((float(info.min) - float(zp[0])) * scale, (float(info.max) - float(zp[0])) * scale)
            note = ("activation QuantizeLinear / DequantizeLinear pairs became clamps to their integer range (a fused "
                    "ReLU, saturation); their rounding is not applied: the int8 layers quantize their inputs "
                    "dynamically (per sample, symmetric), not with the file's static scales")
            if note not in self.cap.notes:
                self.cap.notes.append(note)
            x = src.x
            v = self.g.clamp(self.vid(x, node), lo, hi)
            return type(x)(v, x.shape)
        if isinstance(src, Marker):
            raise _unsupported(f"{_label(node)} reads {src.describe()}")
        raise _unsupported(f"{_label(node)} of an activation that is not a QuantizeLinear output: integer "
                           "activations are not supported (only float and integer-id inputs)")

    # -- dynamic quantization -------------------------------------------------------------------------------
    def _op_DynamicQuantizeLinear(self, node: Any, ins: list[Any]) -> list[Any]:
        x = self.act(node, 0)
        return [DynQuant(node, x), DynScale(node, x), DynZeroPoint(node, x)]

    def _integer_product(self, node: Any, ins: list[Any], what: str) -> Any:
        a = ins[0]
        if not isinstance(a, DynQuant) or isinstance(a, (DynScale, DynZeroPoint)):
            raise _unsupported(f"{_label(node)}: its first input must be a DynamicQuantizeLinear of an activation "
                               "(onnxruntime's quantize_dynamic); static integer activations are not supported")
        if len(ins) > 2 and ins[2] is not None and not (isinstance(ins[2], DynZeroPoint) and ins[2].x is a.x):
            raise _unsupported(f"{_label(node)}: its input zero point must be the DynamicQuantizeLinear's")
        w = self.const(node, node.input[1], what)
        wv = np.asarray(w.value)
        if wv.dtype.kind not in "iu":
            raise _unsupported(f"{_label(node)}: an integer weight is expected, got {wv.dtype}")
        zp = np.asarray(self.const(node, node.input[3], "weight zero point").value) if len(node.input) > 3 and \
            node.input[3] else np.zeros(1, np.int64)
        return IntegerProduct(node, a.x, weight=w, zero_point=zp, cast=False)

    def _op_MatMulInteger(self, node: Any, ins: list[Any]) -> Any:
        return self._integer_product(node, ins, "weight (B)")

    def _op_ConvInteger(self, node: Any, ins: list[Any]) -> Any:
        return self._integer_product(node, ins, "weight (w)")

    def _quant_cast(self, node: Any, ins: list[Any]) -> Any:
        """Cast of an integer product to float: still that product (None for any other Cast)."""
        src = ins[0]
        if not isinstance(src, Marker):
            return None
        if isinstance(src, IntegerProduct) and int(self.attr(node, "to", 1)) == 1:
            return IntegerProduct(src.node, src.x, **{**src.extra, "cast": True})
        raise _unsupported(f"{_label(node)} reads {src.describe()}")

    def _quant_mul(self, node: Any, ins: list[Any]) -> Any:
        """The Muls of a dynamic quantization (None for any other Mul): input scale times weight scale, then the
        integer product times that, which is emitted as one int8 layer (then a list: the value it binds, or None
        when the layer computes a later node's value)."""
        from .onnx_capture import Const

        a, b = ins[0], ins[1]
        if not isinstance(a, Marker) and not isinstance(b, Marker):
            return None
        m, other = (a, b) if isinstance(a, Marker) else (b, a)
        if isinstance(m, DynScale) and isinstance(other, Const):
            return ScaleProduct(node, m.x, scale=np.asarray(other.value, np.float32))
        if isinstance(m, IntegerProduct) and isinstance(other, ScaleProduct) and m.extra["cast"] and m.x is other.x:
            self._dynamic_layer(node, m, other.extra["scale"])
            return [self.values.get(node.output[0])]  # None when a bias Add after it was folded in
        if isinstance(m, IntegerProduct) and isinstance(other, ScaleProduct):
            raise _unsupported(f"{_label(node)}: the integer product of {_label(m.node)} must be cast to float and "
                               "scaled by its own input's scale")
        raise _unsupported(f"{_label(node)} reads {m.describe()}")

    def _dynamic_layer(self, mul: Any, prod: IntegerProduct, scale: np.ndarray) -> None:
        from .onnx_capture import Const

        src, w, zp = prod.node, prod.extra["weight"], prod.extra["zero_point"]
        wv = np.asarray(w.value).astype(np.int64)
        conv = src.op_type == "ConvInteger"
        axis_out = 0 if conv else 1
        if wv.ndim < 2:
            raise _unsupported(f"{_label(src)}: a weight of shape {wv.shape}; only matrices and conv kernels are "
                               "supported")
        n_out = wv.shape[axis_out]
        shape = [1] * wv.ndim
        shape[axis_out] = -1
        for what, t in (("zero point", zp), ("scale", scale)):
            if t.size not in (1, n_out):
                raise _unsupported(f"{_label(src)}: a weight {what} of {t.size} values; one, or one per output "
                                   f"channel ({n_out}), is supported")
        q = wv - (zp.astype(np.int64).reshape(shape) if zp.size > 1 else int(zp.reshape(-1)[0]))
        s = scale.reshape(-1) if scale.size > 1 else np.full(n_out, float(scale.reshape(-1)[0]), np.float32)
        const = Const((q * s.reshape(shape)).astype(np.float32), w.origin)
        if q.min() >= -128 and q.max() <= 127:
            const.quant = QuantInfo(q, s.astype(np.float32), axis_out)
        quant = self.weight_int8(src, const, axis_out)
        if quant is None:
            quant = {"dequantized": "its integers do not fit int8 once the zero point is subtracted"}
        weight = quant.pop("weight", None)
        if quant.get("how"):
            quant["how"] = "dynamic int8 (onnxruntime quantize_dynamic): " + quant["how"]
        x = prod.x
        if conv:
            w_f = weight if weight is not None else np.asarray(const.value, np.float32)
            self.emit_conv(src, x, w_f, None, const, None, quant, out=mul.output[0])
        else:
            w_f = weight if weight is not None else np.ascontiguousarray(np.asarray(const.value, np.float32).T)
            self.emit_linear(src, x, w_f, None, const, None, quant, out=mul.output[0])
