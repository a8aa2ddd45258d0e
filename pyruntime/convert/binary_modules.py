"""PyTorch modules for training binarized networks (BinaryNet, XNOR-Net) that ``from_torch`` converts to the
runtime's binary layers (docs/FORMAT.md 2.6). Needs torch; reached as ``pyruntime.convert.SignSTE``,
``pyruntime.convert.BinaryLinear`` and ``pyruntime.convert.BinaryConv2d`` (imported on first use).

- :class:`SignSTE`: ``+1 where x >= 0, else -1`` (a NaN gives -1), with the straight-through estimator of
  BinaryNet (Courbariaux et al., 2016) as its gradient: ``grad * (|x| <= 1)``.
- :class:`BinaryLinear`: an ``nn.Linear`` whose forward uses ``sign(weight)`` (sign(0) = +1, the same
  straight-through gradient), times, with ``scale=True``, one ``alpha = mean |W[r]|`` per output (XNOR-Net,
  Rastegari et al., 2016). Its forward is ``F.linear(x, sign(W)) [* alpha] [+ bias]``: with +-1 inputs the
  product is an exact integer dot, so the converter can fold what follows into exact popcount thresholds.
- :class:`BinaryConv2d`: the same for an ``nn.Conv2d`` (groups 1): ``F.conv2d(x, sign(W)) [* alpha] [+ bias]``,
  ``alpha = mean |W[o]|`` per output channel. Its zero padding stays 0 (a padded tap adds 0 to the dot), as in
  the runtime's ``bconv2d``.

A typical hidden block is ``BinaryLinear -> BatchNorm1d -> SignSTE`` (``BinaryConv2d -> BatchNorm2d ->
SignSTE``); the converter turns it into one ``blinear`` (``bconv2d``) layer whose output is the sign, computed
by XNOR and popcount against per-neuron thresholds (:mod:`pyruntime.convert.binarize`).
"""
from __future__ import annotations

from typing import Any

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("pyruntime.convert.SignSTE / BinaryLinear / BinaryConv2d need PyTorch (pip install torch)") from e


class _SignSTEFunction(torch.autograd.Function):
    """sign with sign(0) = +1 forward; straight-through estimator backward: grad * (|x| <= 1)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype) * 2 - 1

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """``+1 where x >= 0, else -1`` with the straight-through gradient ``grad * (|x| <= 1)`` (for training code;
    ``from_torch`` converts the :class:`SignSTE` module, not this function)."""
    return _SignSTEFunction.apply(x)


class SignSTE(nn.Module):
    """Binarizes activations: ``+1 where x >= 0, else -1`` (a NaN gives -1), the runtime's ``sign`` op.
    The gradient is BinaryNet's straight-through estimator, ``grad * (|x| <= 1)`` (hardtanh's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SignSTEFunction.apply(x)


class BinaryLinear(nn.Linear):
    """A linear layer with binary weights: ``y = F.linear(x, sign(W)) * alpha + bias``.

    ``sign(W)`` is +1 where ``W >= 0`` else -1; ``alpha`` (only with ``scale=True``; otherwise 1) is the mean
    of ``|W|`` over each output's row (XNOR-Net), one per output. The real-valued ``weight`` is what the
    optimizer updates (straight-through gradient, zero where ``|W| > 1``; BinaryNet also clips the weights
    to [-1, 1] after each step: :meth:`clip_weights_`).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, scale: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.scale = bool(scale)

    def binary_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(signs, alpha)``: the +-1 weight the forward uses (straight-through gradient) and the per-output
        scale (None without ``scale``)."""
        signs = _SignSTEFunction.apply(self.weight)
        return signs, (self.weight.abs().mean(dim=1) if self.scale else None)

    def output_from_dot(self, dot: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """What :meth:`forward` gives for an input whose integer dot products with the sign rows are ``dot``
        ((batch, out), float): the same operations in the same order (the converter evaluates this)."""
        y = dot
        if self.scale:
            y = y * (self.weight.abs().mean(dim=1) if alpha is None else alpha)
        if self.bias is not None:
            y = y + self.bias
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        signs, alpha = self.binary_weight()
        return self.output_from_dot(F.linear(x, signs), alpha)

    @torch.no_grad()
    def clip_weights_(self, bound: float = 1.0) -> None:
        """Clamps the real-valued weights to [-bound, bound] in place (BinaryNet's update rule)."""
        self.weight.clamp_(-bound, bound)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", scale={self.scale}"


class BinaryConv2d(nn.Conv2d):
    """A convolution with binary weights: ``y = F.conv2d(x, sign(W)) * alpha + bias`` (groups 1).

    ``sign(W)`` is +1 where ``W >= 0`` else -1; ``alpha`` (only with ``scale=True``; otherwise 1) is the mean
    of ``|W|`` over each output channel's ``C * kh * kw`` weights (XNOR-Net), one per output channel. The
    zero padding (``padding_mode="zeros"`` only) stays 0, so a tap in the padding contributes 0 to the dot, as
    in the runtime. Gradients as :class:`BinaryLinear`'s (straight-through, :meth:`clip_weights_`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *,
                 scale: bool = False, device: Any = None, dtype: Any = None) -> None:
        if groups != 1:
            raise ValueError(f"BinaryConv2d takes groups 1 (the runtime's bconv2d), got groups={groups}")
        if padding_mode != "zeros":
            raise ValueError(f"BinaryConv2d pads with zeros (a padded tap contributes 0), got padding_mode "
                             f"{padding_mode!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias, padding_mode=padding_mode, device=device, dtype=dtype)
        self.scale = bool(scale)

    def binary_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(signs, alpha)``: the +-1 weight the forward uses (straight-through gradient) and the per-output-
        channel scale (None without ``scale``)."""
        signs = _SignSTEFunction.apply(self.weight)
        return signs, (self.weight.abs().mean(dim=(1, 2, 3)) if self.scale else None)

    def output_from_dot(self, dot: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """What :meth:`forward` gives for an input whose integer dot products with the sign kernels are ``dot``
        ((batch, out_channels, h, w), float): the same operations in the same order (the converter evaluates
        this)."""
        y = dot
        if self.scale:
            a = self.weight.abs().mean(dim=(1, 2, 3)) if alpha is None else alpha
            y = y * a[:, None, None]
        if self.bias is not None:
            y = y + self.bias[:, None, None]
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        signs, alpha = self.binary_weight()
        dot = F.conv2d(x, signs, None, self.stride, self.padding, self.dilation, self.groups)
        return self.output_from_dot(dot, alpha)

    @torch.no_grad()
    def clip_weights_(self, bound: float = 1.0) -> None:
        """Clamps the real-valued weights to [-bound, bound] in place (BinaryNet's update rule)."""
        self.weight.clamp_(-bound, bound)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", scale={self.scale}"


__all__ = ["BinaryConv2d", "BinaryLinear", "SignSTE", "sign_ste"]
