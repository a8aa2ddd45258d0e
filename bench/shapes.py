"""Layer shapes and compression settings benchmarked by bench/.

A ``Layer`` is a linear layer ``y = x @ W.T`` with ``W`` of shape ``[out_features, in_features]``
(``rows = out_features``, ``cols = in_features``), the layout of ``torch.nn.Linear`` and of
``pyruntime._core.PackedWeight``.

A ``Case`` is one weight to build: a layer at one sparsity, with the codebook widths to encode it at.
Every case is benchmarked at every batch in ``BATCHES``; all methods of one (case, batch) share a
pytest-benchmark group, so the JSON holds ratios measured in the same run.

Sources of the real shapes:
- LeNet-300-100 (784 -> 300 -> 100 -> 10) as pruned and weight-shared by Han et al., *Deep Compression*
  (ICLR 2016), Table 2: ip1 keeps 8% of its weights, ip2 9%, ip3 26%; all three layers use 6-bit
  codebook indices.
- The 4096 x 4096 square is the size of VGG-16's fc7 (Deep Compression keeps 4% of it) and of a
  transformer MLP block; it is the headline shape of the performance targets in docs (DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass

# Batch sizes: 1 is GEMV / SpMV (weight-bandwidth bound), 8 a small batch (each weight byte used 8 times,
# still near the bandwidth bound for the compressed formats), 64 is GEMM / SpMM (compute bound for dense).
BATCHES: tuple[int, ...] = (1, 8, 64)


@dataclass(frozen=True)
class Layer:
    name: str
    in_features: int
    out_features: int
    model: str = ""

    @property
    def rows(self) -> int:
        return self.out_features

    @property
    def cols(self) -> int:
        return self.in_features


@dataclass(frozen=True)
class Case:
    layer: Layer
    sparsity: float  # fraction of weights pruned to zero (0 = dense)
    codebook_bits: tuple[int, ...] = ()  # dense weights: codebook (weight sharing, no pruning) widths
    csr_codebook_bits: tuple[int, ...] = ()  # sparse weights: csr+codebook widths

    @property
    def id(self) -> str:
        return f"{self.layer.name}-{sparsity_tag(self.sparsity)}"


def sparsity_tag(sparsity: float) -> str:
    return "dense" if sparsity == 0.0 else f"s{sparsity:.2f}"


def group_name(case: Case, batch: int) -> str:
    """pytest-benchmark group: 'gemv-4096-s0.90' at batch 1, 'gemm8-4096-s0.90' at batch 8, 'gemm64-...'
    at 64. The batch is also in every benchmark's extra_info; bench/report.py reads it from there."""
    kind = "gemv" if batch == 1 else f"gemm{batch}"
    return f"{kind}-{case.id}"


SQUARE_4096 = Layer("4096", 4096, 4096, model="square (VGG-16 fc7 size)")

LENET_FC1 = Layer("lenet300-fc1", 784, 300, model="LeNet-300-100")
LENET_FC2 = Layer("lenet300-fc2", 300, 100, model="LeNet-300-100")
LENET_FC3 = Layer("lenet300-fc3", 100, 10, model="LeNet-300-100")

# The 4096 square: sparsities and codebook widths of the performance aims (docs, bench/README.md).
SQUARE_SPARSITIES: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.99)
DENSE_CODEBOOK_BITS: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)  # time against index width, no pruning
SPARSE_CODEBOOK_BITS: tuple[int, ...] = (2, 4, 6, 8)  # csr+codebook widths at every sparsity
HEADLINE_BITS = 4  # the width the aims are stated for (csr+codebook 4-bit at 90%, codebook 4-bit dense)

CASES: tuple[Case, ...] = (
    # Dense 4096: pyruntime dense and codebook (weight sharing without pruning) vs dense peers.
    Case(SQUARE_4096, 0.0, codebook_bits=DENSE_CODEBOOK_BITS),
    # Pruned 4096: csr and csr+codebook vs dense and sparse peers.
    *(Case(SQUARE_4096, s, csr_codebook_bits=SPARSE_CODEBOOK_BITS) for s in SQUARE_SPARSITIES),
    # LeNet-300-100 as Deep Compression leaves it (pruning rate and 6-bit sharing per layer).
    Case(LENET_FC1, 0.92, csr_codebook_bits=(4, 6)),
    Case(LENET_FC2, 0.91, csr_codebook_bits=(4, 6)),
    Case(LENET_FC3, 0.74, csr_codebook_bits=(4, 6)),
)
