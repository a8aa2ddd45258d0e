"""Helpers the binary converter tests share (torch imported by the caller's module, which skips without it)."""
from __future__ import annotations

import torch


def randomize_bn(bn: torch.nn.Module, gen: torch.Generator, spread: float) -> None:
    """Running statistics and affine parameters of a trained-looking batch norm (1-D or 2-D), about a third of
    the scales negative (rows whose signs the threshold folding flips)."""
    with torch.no_grad():
        n = bn.num_features
        bn.running_mean.copy_((torch.rand(n, generator=gen) - 0.5) * spread)
        bn.running_var.copy_(torch.rand(n, generator=gen) * spread + 0.1)
        bn.weight.copy_(torch.rand(n, generator=gen) * 2 - 0.7)
        bn.bias.copy_(torch.rand(n, generator=gen) - 0.5)
