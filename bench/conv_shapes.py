"""Convolution layers benchmarked by bench/test_conv.py.

A ``ConvLayer`` is a 2-D convolution over NCHW activations, square kernel, stride and symmetric padding, no
groups, no dilation: weight ``[out_c, in_c, k, k]``, seen by pyruntime as the matrix ``[out_c, in_c * k *
k]`` (csrc/kernels/conv/conv2d.h). A ``ConvCase`` is one weight to build: a layer at one sparsity, with the
csr+codebook widths to encode it at. Every case runs at every batch in ``CONV_BATCHES``; all methods of one
(case, batch) share a pytest-benchmark group (``conv_group_name``).

Shapes (the layers of three small networks people prune):
- LeNet-5 (Caffe's MNIST variant, the one Deep Compression prunes): conv1 1 -> 20, 5x5, on 1x28x28;
  conv2 20 -> 50, 5x5, on 20x12x12 (after a 2x2 pool).
- ResNet-20 for CIFAR-10 (He et al. 2016): 3x3 convs with padding 1 in three stages, 16 channels on
  32x32, 32 on 16x16, 64 on 8x8, and the stride-2 3x3 that opens stage 2 (16 -> 32, 32x32 -> 16x16).
- MobileNet v1: 1x1 pointwise convs, which hold most of its weights and FLOPs, with the channel counts of
  its pointwise layers 64 -> 128, 128 -> 128, 256 -> 256 and 512 -> 512 on 28x28, 28x28, 14x14 and 7x7.
  At MobileNet's 224x224 input these layers run at 56, 56, 28 and 14: the sizes here are those of a
  112x112 input, halved to keep the run short. A 1x1 conv is a GEMM over the spatial positions (K =
  in_c), so these are the conv cases closest to the linear ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from shapes import sparsity_tag

# Batch 1 (latency: one image) and 16 (a small serving batch).
CONV_BATCHES: tuple[int, ...] = (1, 16)
# Magnitude-pruning levels; the crossover (bench/report.py) is the lowest of these from which sparse wins.
CONV_SPARSITIES: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95)
# csr+codebook widths (4-bit: the headline width of the linear benchmarks, shapes.HEADLINE_BITS).
CONV_CODEBOOK_BITS: tuple[int, ...] = (4,)


@dataclass(frozen=True)
class ConvLayer:
    name: str
    in_c: int
    out_c: int
    k: int  # square kernel k x k
    in_hw: int  # square input in_hw x in_hw
    stride: int = 1
    pad: int = 0  # on every side
    model: str = ""

    @property
    def out_hw(self) -> int:
        return (self.in_hw + 2 * self.pad - self.k) // self.stride + 1

    @property
    def patch(self) -> int:
        """K: columns of the weight matrix (in_c * k * k)."""
        return self.in_c * self.k * self.k

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_c, self.in_c, self.k, self.k)

    @property
    def geometry(self) -> dict[str, int]:
        """The geometry dict of _core.Conv2d."""
        o = self.out_hw
        return {
            "in_c": self.in_c, "in_h": self.in_hw, "in_w": self.in_hw,
            "out_c": self.out_c, "out_h": o, "out_w": o, "kh": self.k, "kw": self.k,
            "stride_h": self.stride, "stride_w": self.stride, "pad_top": self.pad, "pad_left": self.pad,
        }  # fmt: skip

    @property
    def description(self) -> str:
        """'16->32 3x3 s2 p1 on 32x32 -> 16x16'."""
        extra = (f" s{self.stride}" if self.stride != 1 else "") + (f" p{self.pad}" if self.pad else "")
        return (f"{self.in_c}->{self.out_c} {self.k}x{self.k}{extra} on {self.in_hw}x{self.in_hw}"
                f" -> {self.out_hw}x{self.out_hw}")


@dataclass(frozen=True)
class ConvCase:
    layer: ConvLayer
    sparsity: float
    csr_codebook_bits: tuple[int, ...] = CONV_CODEBOOK_BITS

    @property
    def id(self) -> str:
        return f"{self.layer.name}-{sparsity_tag(self.sparsity)}"


def conv_group_name(case: ConvCase, batch: int) -> str:
    """pytest-benchmark group: 'conv-b1-resnet20-16-s0.90'. The batch is also in extra_info."""
    return f"conv-b{batch}-{case.id}"


LENET5 = "LeNet-5"
RESNET20 = "ResNet-20 (CIFAR-10)"
MOBILENET = "MobileNet v1 (pointwise)"

CONV_LAYERS: tuple[ConvLayer, ...] = (
    ConvLayer("lenet5-conv1", 1, 20, 5, 28, model=LENET5),
    ConvLayer("lenet5-conv2", 20, 50, 5, 12, model=LENET5),
    ConvLayer("resnet20-16", 16, 16, 3, 32, pad=1, model=RESNET20),
    ConvLayer("resnet20-32", 32, 32, 3, 16, pad=1, model=RESNET20),
    ConvLayer("resnet20-64", 64, 64, 3, 8, pad=1, model=RESNET20),
    ConvLayer("resnet20-s2-16to32", 16, 32, 3, 32, stride=2, pad=1, model=RESNET20),
    ConvLayer("mobilenet-pw-64to128", 64, 128, 1, 28, model=MOBILENET),
    ConvLayer("mobilenet-pw-128", 128, 128, 1, 28, model=MOBILENET),
    ConvLayer("mobilenet-pw-256", 256, 256, 1, 14, model=MOBILENET),
    ConvLayer("mobilenet-pw-512", 512, 512, 1, 7, model=MOBILENET),
)

CONV_CASES: tuple[ConvCase, ...] = tuple(ConvCase(lay, s) for lay in CONV_LAYERS for s in CONV_SPARSITIES)
