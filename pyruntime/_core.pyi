"""Type stubs for pyruntime._core, the pybind11 layer over the C++ core."""
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FORMAT_VERSION: int

class FormatError(ValueError): ...
class UnsupportedError(ValueError): ...

# kernels
def supported_isas() -> list[str]:
    """Levels this CPU and build support, ascending from "ref": x86-64 "avx2", "avx512", "avx512vnni",
    "amx" (AMX tiles: the int8 GEMM from 4 samples; every other kernel is avx512vnni's); aarch64 "neon",
    "neon_dot"."""
def architecture_isas() -> list[str]:
    """Every level of this build's architecture, supported by this CPU or not (the tests skip the others)."""
def active_isa() -> str: ...
def set_isa(name: str) -> None: ...
def set_gather(mode: str) -> str:
    """How the sparse and byte-codebook kernels gather x (or table entries): "hw" (vgatherdps), "scalar"
    (scalar loads), or "auto" (whichever this CPU ran faster, measured once per vector width; the
    default, unless PYRT_GATHER=hw|scalar). Returns the previous mode. Results are the same either way."""
def set_direct_planes(mode: str) -> str:
    """How direct convs created from now on copy their input: "shifted" (one plane per kernel column, aligned
    loads), "padded" (one padded plane per channel), or "auto" (shifted where the active level is AVX-512 or
    above; the default). Returns the previous mode. Results are the same either way."""
def uses_hw_gather(isa: str | None = None) -> bool:
    """Whether the kernels of ``isa`` (default: the active level) gather with vgatherdps now."""
def cpu_has(feature: str) -> bool:
    """Whether this CPU has an x86 feature no ISA level implies: "vbmi" (vpermi2b: the AVX-512 sparse int8
    kernels), "vbmi2" (vpexpandb: csr+int8 weights stored masked, layout i8_p128m) or "vpopcntdq"."""

class PackedWeight:
    def __init__(self, tensor: dict[str, Any]) -> None: ...
    @property
    def encoding(self) -> str: ...
    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def nnz(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def layout(self) -> str: ...
    def gemm(
        self, x: npt.ArrayLike, bias: npt.ArrayLike | None = None, isa: str | None = None
    ) -> npt.NDArray[np.float32]: ...
    def gemv_rows(
        self, x: npt.ArrayLike, r0: int, r1: int, bias: npt.ArrayLike | None = None, isa: str | None = None
    ) -> npt.NDArray[np.float32]: ...
    def gemm_rows(
        self, x: npt.ArrayLike, r0: int, r1: int, bias: npt.ArrayLike | None = None, isa: str | None = None
    ) -> npt.NDArray[np.float32]:
        """gemm restricted to rows [r0, r1): shape (batch, r1 - r0), bit-identical to those columns of gemm."""
    def row_splits(self, parts: int, align: int = 16) -> list[int]: ...

class Int8Weight:
    """An int8 or csr+int8 weight in its execution layout (i8_r16k4 / i8_p128, or i8_p128m where the CPU has
    VBMI2: the same steps without their padding bytes); gemm runs FORMAT.md 2.5's arithmetic on quantized
    activations q (batch, cols) int8 in -127..127 with per-sample scales xs."""

    def __init__(self, tensor: dict[str, Any]) -> None: ...
    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def nnz(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def layout(self) -> str: ...
    @property
    def steps(self) -> int:
        """csr+int8: the layout's steps (16 rows x 4 slots, padding included); 0 for a dense int8 weight."""
    def gemm(
        self,
        q: npt.ArrayLike,
        xs: npt.ArrayLike,
        bias: npt.ArrayLike | None = None,
        lo: float = ...,
        hi: float = ...,
        out_scale: float = 0.0,
        isa: str | None = None,
        rows: tuple[int, int] | None = None,
    ) -> npt.NDArray[np.float32] | npt.NDArray[np.int8]:
        """float32 (batch, rows), or int8 when out_scale > 0; rows outside `rows` are NaN / -128."""
    def row_splits(self, parts: int) -> list[int]: ...

def quantize_rows(x: npt.ArrayLike, isa: str | None = None) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Dynamic quantization of (batch, cols) floats: int8 rows and one scale per row (FORMAT.md 2.5)."""
def quantize(x: npt.ArrayLike, scale: float, isa: str | None = None) -> npt.NDArray[np.int8]:
    """clamp(round_half_even(x * (1 / scale)), -127, 127), NaN -> 0 (every ISA level gives the same bytes)."""

class BinaryWeight:
    """A binary weight [rows, cols] in its execution layout (b1_r8 for mode "xnor" / "threshold", b1_rows for
    "real"); gemm runs FORMAT.md 2.6: x is (batch, words) uint64 of bit-packed signs (bit i of word j is column
    64 j + i, 1 for +1) for the XNOR modes, (batch, cols) float32 for "real". `second`: the bias ("xnor",
    "real") or the popcount thresholds ("threshold", integers in 0..cols + 1)."""

    def __init__(self, tensor: dict[str, Any], mode: str = "xnor", second: npt.ArrayLike | None = None) -> None: ...
    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def words(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def layout(self) -> str: ...
    def gemm(
        self, x: npt.ArrayLike, isa: str | None = None, rows: tuple[int, int] | None = None
    ) -> npt.NDArray[np.float32] | npt.NDArray[np.uint64]:
        """float32 (batch, rows) (NaN outside `rows`), or for "threshold" uint64 (batch, ceil(rows / 64)) bits."""
    def counts(self, x: npt.ArrayLike, isa: str | None = None) -> npt.NDArray[np.int32]:
        """XNOR modes: the mismatch counts popcount(w_r XOR x_b), int32 (batch, rows)."""
    def row_splits(self, parts: int) -> list[int]: ...

def binarize(
    x: npt.ArrayLike, scale: float = 1.0, shift: float = 0.0, isa: str | None = None
) -> npt.NDArray[np.uint64]:
    """(batch, cols) floats -> (batch, ceil(cols / 64)) words: bit = (f32(f32(x * scale) + shift) >= 0)."""
def binarize_image(
    x: npt.ArrayLike, scale: float = 1.0, shift: float = 0.0, isa: str | None = None
) -> npt.NDArray[np.uint64]:
    """(batch, C, H, W) floats -> (batch, H * W, ceil(C / 64)) words: channels-last signs (b1c), as binarize."""
def binary_kernel(isa: str | None = None) -> str:
    """The XNOR kernel a level runs: "ref", "avx2" or "avx512-vpopcntdq"."""

class Conv2d:
    """A 2-D convolution over a compressed weight [out_c, in_c / groups, kh, kw], NCHW activations.

    geometry keys: in_c, in_h, in_w, out_c, out_h, out_w, kh, kw (required); stride_h, stride_w, pad_top,
    pad_left, dilation_h, dilation_w, groups (optional; bottom / right padding are implied by out_h / out_w).
    method: "auto", "im2col", "direct" or "direct_lanes" (groups 1 only: output channels in the vector
    lanes, the auto choice for dense weights over at most 4 input channels).
    """

    def __init__(self, geometry: dict[str, int], tensor: dict[str, Any], method: str = "auto") -> None: ...
    @property
    def bytes(self) -> int: ...
    @property
    def layout(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def geometry(self) -> dict[str, int]: ...
    def run(
        self,
        x: npt.ArrayLike,
        bias: npt.ArrayLike | None = None,
        isa: str | None = None,
        rows: tuple[int, int] | None = None,
    ) -> npt.NDArray[np.float32]: ...

# file format
# model dict: {"inputs": [{"shape": [..], "type": "f32" | "i32"}], "outputs": [value ids], "nodes": [{"op", "inputs",
# "tensors", "attrs"}], "tensors": [..], "metadata": str}; "input_shape": [..] may stand for one f32 input and
# "outputs" defaults to the last node's value (read_model gives both forms). Values: the inputs, then node i's
# output is value len(inputs) + i.
# Node attrs by op (docs/FORMAT.md 2.2): conv2d {stride: [h, w], padding: [top, left, bottom, right],
# dilation: [h, w], groups}; max_pool2d {kernel, stride, padding, ceil_mode}; avg_pool2d {... ,
# count_include_pad}; concat {axis}; reshape {shape: 1..4 dims}; clamp {min, max}; sign {scale, shift};
# blinear {input: 0 | 1, output: 0 | 1}; bconv2d: conv2d's (groups 1), then blinear's; layer_norm {eps}; gelu
# {approximate: 0 | 1}; leaky_relu {slope}; softmax_axis {axis}; transpose {perm: 4 words}; slice {axis, start,
# end, step}; upsample_nearest {scale: [h, w]}; adaptive_avg_pool2d {output_size: [h, w]}; other ops none.
# Model.layers() dicts: op, name, encoding, layout, method ("gemm" | "im2col" | "direct" | "direct_lanes" |
# "fused" (a relu / clamp, or a residual add, applied by the node before it) | "gemm-dynamic" |
# "gemm-static" | "im2col-dynamic" | "im2col-static" | "direct-dynamic" | "direct-static" | "xnor" |
# "xnor-threshold" | "add-sub" | ""; the binary layouts "b1_r8" (XNOR), "b1_rows" (real input); the int8 conv
# layouts: "i8_k4x16" dense, "i8_p128" csr+int8 ("i8_p128m" masked), "i8_dw" depthwise), groups,
# shape, output_shape, nnz, bits, codebook_size, file_bytes, exec_bytes, dense_bytes, steps (csr+int8: the
# layout's steps), in_place, row_tasks,
# output_type ("f32", "i8", "b1" or "b1c": the value type the node gives), activation ("relu" / "clamp" fused
# into the node; a conv's "add", "add+relu" or "add+clamp": the residual add after it, and that add's own
# activation, fused into it; else ""). Tensor dicts of int8 / csr+int8 weights hold
# "qvalues" (int8 in -127..127) and "scales" (float32, one per row); of binary weights "bits" (uint8 0 / 1 per
# element, row-major, 1 for +1) and "scales" (float32 alphas, one per row). Node attrs of qlinear: input_scale,
# output_scale, min, max; of qconv2d: conv2d's, then qlinear's.
def write_model(model: dict[str, Any]) -> bytes: ...
def read_model(data: bytes | bytearray | memoryview) -> dict[str, Any]: ...
def encoded_tensor_bytes(tensor: dict[str, Any]) -> int: ...
def encode_symbol_stream(symbols: npt.ArrayLike, bits: int) -> bytes: ...
def decode_symbol_stream(data: bytes | bytearray | memoryview, bits: int, count: int) -> npt.NDArray[np.uint8]: ...
def huffman_code_lengths(freqs: list[int]) -> list[int]: ...

# models
class Model:
    @staticmethod
    def from_bytes(data: bytes | bytearray | memoryview, threads: int = 1) -> Model: ...
    @staticmethod
    def from_file(path: str, mmap: bool = False, threads: int = 1) -> Model: ...
    @property
    def input_shape(self) -> list[int]:
        """The first input's shape (without the batch)."""
    @property
    def output_shape(self) -> list[int]:
        """The first output's shape (without the batch)."""
    @property
    def input_shapes(self) -> list[list[int]]: ...
    @property
    def input_types(self) -> list[str]:
        """Per input: "f32" or "i32" (token ids)."""
    @property
    def output_shapes(self) -> list[list[int]]: ...
    @property
    def layers(self) -> list[dict[str, Any]]: ...
    @property
    def metadata(self) -> str: ...
    @property
    def file_bytes(self) -> int: ...
    @property
    def weight_bytes(self) -> int: ...
    @property
    def in_place_bytes(self) -> int: ...
    @property
    def work(self) -> int:
        """Operations one sample costs (pyrt_model_work)."""
    def arena_bytes(self, batch: int = 1) -> int:
        """Bytes of activation arena a session of `batch` samples needs (pyrt_session_arena_bytes)."""
    max_cached_arena_bytes: int  # the most arena run() keeps between calls (and uses per piece of a batch)
    @property
    def threads(self) -> int: ...
    @property
    def format_version(self) -> int: ...
    def run(self, *xs: npt.NDArray[Any]) -> npt.NDArray[np.float32] | tuple[npt.NDArray[np.float32], ...]:
        """One array per input (float32, or integers for an i32 input); one output array, or a tuple."""
    def profile(self, xs: npt.NDArray[Any] | Sequence[npt.NDArray[Any]], runs: int) -> list[dict[str, Any]]: ...
