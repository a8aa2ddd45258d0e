"""The cost of a conv layer as the runtime runs it: direct, direct_lanes or im2col, each with its own terms.

The runtime picks one of three methods per conv at load time (``csrc/kernels/conv/conv2d.cpp``,
``auto_method``; :func:`conv_method` mirrors it):

  direct        depthwise, csr, csr+codebook, a codebook whose zero centroid holds at least half the
                weights, and dense / codebook with fewer than 128 output channels per group
  direct_lanes  dense and codebook weights over at most 4 input channels (groups 1, >= 8 outputs)
  im2col        dense and codebook with 128 or more output channels per group (and any conv whose
                padded input copy would be out of proportion to its input and output)

Each method has its own terms, per sample and ISA level (``lanes``: floats per vector of the profile's
ISA, 16 for AVX-512, 8 for AVX2, 1 for the scalar reference):

  direct (one class per kernel: direct_f32 for dense and csr, layouts direct_f32 and direct_csr_f32, whose
          entries hold the f32 weight; direct_lut8 for codebook and csr+codebook, layouts direct_lut8 and
          direct_csr_lut8, whose entries hold a codebook index: the encodings of a class differ only in
          the entries they give the kernel, which its terms count)
      call + fma * entries * OH * ceil(OW / lanes)        vector FMAs: every stored entry over every output
           + far * (those FMAs) * min(1, padded group input / 512 KiB)   loads from beyond the near caches
           + entry * entries * tiles                       per entry and register tile: broadcast the weight
           + out * OC * cblocks * OH * ceil(OW / lanes)    accumulators started and stored
           + copy * C * padded rows * padded row floats    the zero-padded, phase-split input copy
      (``entries``: the stored weights the kernel walks; a dense codebook's zero-centroid entries are
      dropped, dense f32 keeps its zeros; ``tiles``: register tiles of up to 4 vectors x 3-8 rows per
      output plane, ``conv/direct_tiles.h``; ``cblocks``: the blocks of input channels of ``direct.cpp``)
  direct_lanes (class lanes_f32, any encoding: the weight is expanded to f32 at load)
      call + fma * ceil(OC / 16) * 16 / lanes * K * OH * OW   + entry * (the weight vectors loaded per tile)
           + out * OC * OH * OW                                + copy * (the padded input copy)
  im2col (class im2col, any encoding)
      call + gemm * (the GEMM kernel's predicted seconds for every tile of T patches, from the linear
                     classes of the same profile, T as ``conv/im2col.cpp`` sizes it)
           + copy * groups * tiles * T * K (patch floats written) + out * OC * OH * OW (outputs moved)
      (the scalar reference runs the oracle instead: fma * OC * OH * OW * K + entry * (its inner loops))

A conv runs sample after sample, so a batch costs its samples times these terms. The coefficients are
fitted per profile by :func:`pyruntime.cost.calibrate.calibrate_conv` (``pyruntime calibrate``) on layers
of real networks. On the reference machine 80% of those timings are predicted within 0.67-1.25x (direct;
im2col 0.70-1.18x, direct_lanes 0.76-1.14x); on bench/test_conv.py's layers the median predicted /
measured per method and encoding is 0.77-0.97, where the GEMM formula's was 0.30-1.31 (``python
bench/cost_check.py conv``).

Threads follow ``csrc/runtime/ops/conv.cpp``: at batch 1 a conv splits into ``min(threads, OH, work /
256 Ki)`` pieces of output rows (``work``: stored entries x output positions), when that is 2 or more;
above, into ``min(threads, batch)`` pieces of samples when ``work * batch >= 512 Ki``.

int8 convs (and a profile without conv terms) are costed as before: their im2col GEMMs, per group, one
patch column per output position and sample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .layouts import SPARSE_ENCODINGS, i8_p128_bytes_of_steps
from .model import POOL_OVERHEAD_S, CostModel

CONV_TERMS = ("call", "fma", "far", "entry", "out", "copy", "gemm")
# the direct kernel's class per encoding: one per kind of entry (an f32 weight, a codebook index)
DIRECT_CLASSES = {"dense": "direct_f32", "csr": "direct_f32", "codebook": "direct_lut8",
                  "csr+codebook": "direct_lut8"}
LANES_CLASS = "lanes_f32"
IM2COL_CLASS = "im2col"
CONV_CLASSES = ("direct_f32", "direct_lut8", LANES_CLASS, IM2COL_CLASS)
FLOAT_ENCODINGS = tuple(DIRECT_CLASSES)

MIN_MACS_PER_TASK = 256 * 1024  # ops/conv.cpp kMinMacsPerTask
IM2COL_MIN_GROUP_OUT = 128      # conv2d.cpp: dense / codebook go im2col from this many outputs per group
LANES_BLOCK = 16                # direct_lanes: output channels per packed block (kLanesBlock)
PATCH_BYTES = 256 * 1024        # im2col.cpp kPatchBytes
DIRECT_SLACK = 16               # direct.h kDirectSlack
# direct.cpp: blocks of input channels (kBlockBytes, kMinBlockEntries)
BLOCK_BYTES, MIN_BLOCK_ENTRIES = 16 * 1024, 96
# direct_tiles.h: rows of a register tile by the vectors of its column block
TILE_ROWS = {1: 8, 2: 6, 3: 4, 4: 3}
ISA_LANES = {"ref": 1, "avx2": 8, "avx512": 16, "avx512vnni": 16, "amx": 16, "neon": 4}
FAR_BYTES = 512 * 1024          # a group's padded input from which every FMA counts as a far one


@dataclass(frozen=True)
class ConvGeometry:
    """A conv's shapes per sample (``kernels::Conv2dGeometry``): input [in_c, in_h, in_w], output [out_c,
    out_h, out_w], a kh x kw kernel, leading padding (the trailing one is implied by the output size)."""

    in_c: int
    in_h: int
    in_w: int
    out_c: int
    out_h: int
    out_w: int
    kh: int = 1
    kw: int = 1
    stride_h: int = 1
    stride_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    dilation_h: int = 1
    dilation_w: int = 1
    groups: int = 1

    @classmethod
    def of(cls, input_shape: Any, output_shape: Any, weight_shape: Any, attrs: dict[str, Any]) -> ConvGeometry:
        """From a conv node: input and output shapes per sample ([C, H, W]), the weight's [O, C/g, kh, kw] and
        the node's attrs (stride, padding [top, left, bottom, right], dilation, groups)."""
        c, h, w = (int(d) for d in input_shape)
        o, oh, ow = (int(d) for d in output_shape)
        kh, kw = (int(d) for d in weight_shape[2:4]) if len(weight_shape) == 4 else (1, 1)
        st = list(attrs.get("stride", (1, 1)))
        pad = list(attrs.get("padding", (0, 0, 0, 0)))
        dl = list(attrs.get("dilation", (1, 1)))
        return cls(c, h, w, o, oh, ow, kh, kw, int(st[0]), int(st[1]), int(pad[0]), int(pad[1]), int(dl[0]),
                   int(dl[1]), int(attrs.get("groups", 1)))

    @classmethod
    def like_output(cls, weight_shape: Any, output_shape: Any, groups: int = 1) -> ConvGeometry:
        """When only the weight and output shapes are known (``Model.summary``): stride 1, dilation 1 and
        "same" padding, the input as large as the output. Exact for such convs; for a strided one only its
        input copy is priced low."""
        o, cg = int(weight_shape[0]), int(weight_shape[1]) if len(weight_shape) > 1 else 1
        kh, kw = (int(d) for d in weight_shape[2:4]) if len(weight_shape) == 4 else (1, 1)
        _, oh, ow = (int(d) for d in output_shape)
        return cls(cg * int(groups), oh, ow, o, oh, ow, kh, kw, 1, 1, (kh - 1) // 2, (kw - 1) // 2, 1, 1, int(groups))

    @property
    def group_in(self) -> int:
        return self.in_c // self.groups

    @property
    def group_out(self) -> int:
        return self.out_c // self.groups

    @property
    def patch(self) -> int:
        """K: columns of the weight matrix."""
        return self.group_in * self.kh * self.kw

    @property
    def positions(self) -> int:
        return self.out_h * self.out_w

    def padded(self) -> tuple[int, int, int]:
        """(hp, wph, rs) of the direct methods' padded, phase-split input (``PaddedPlane``)."""
        ext_h, ext_w = self.dilation_h * (self.kh - 1) + 1, self.dilation_w * (self.kw - 1) + 1
        hp = max(self.pad_top + self.in_h, (self.out_h - 1) * self.stride_h + ext_h)
        wp = max(self.pad_left + self.in_w, (self.out_w - 1) * self.stride_w + ext_w)
        wph = -(-wp // self.stride_w)
        return hp, wph, self.stride_w * wph

    def copied_rows(self, rows: int) -> int:
        """Padded rows the direct methods copy for ``rows`` consecutive output rows (``pad_group``)."""
        taps = (self.kh - 1) * self.dilation_h + 1
        if taps < self.stride_h:  # windows shorter than the stride: the rows between are skipped
            return rows * taps
        return (rows - 1) * self.stride_h + taps


def conv_method(g: ConvGeometry, encoding: str, entries: int | None = None) -> str:
    """The method the runtime runs a conv of ``encoding`` by: "direct", "direct_lanes" or "im2col"
    (``conv2d.cpp`` ``auto_method``). ``entries``: a codebook's weights whose centroid is not zero (a
    codebook of mostly zeros runs direct); None: all of them."""
    hp, _, rs = g.padded()
    if g.group_in * hp * rs + DIRECT_SLACK > 4 * (g.in_c * g.in_h * g.in_w + g.out_c * g.positions) + (1 << 16):
        return "im2col"
    weights = g.out_c * g.patch
    mostly_zero = encoding == "codebook" and entries is not None and 2 * entries <= weights
    if g.group_in == 1 or encoding in SPARSE_ENCODINGS or mostly_zero:
        return "direct"
    if g.groups == 1 and g.in_c <= 4 and g.out_c >= 8:
        return "direct_lanes"
    return "im2col" if g.group_out >= IM2COL_MIN_GROUP_OUT else "direct"


def conv_class(g: ConvGeometry, encoding: str, entries: int | None = None) -> str:
    """The conv cost class of a float encoding: the direct layout's name, "lanes_f32" or "im2col"."""
    method = conv_method(g, encoding, entries)
    return DIRECT_CLASSES[encoding] if method == "direct" else LANES_CLASS if method == "direct_lanes" else IM2COL_CLASS


def direct_cblocks(g: ConvGeometry, entries: int) -> int:
    """Blocks of input channels a direct conv's tiles run in (``direct.cpp``)."""
    rows_read = 3 * g.stride_h + (g.kh - 1) * g.dilation_h + 1
    lines = (32 * g.stride_w + (g.kw - 1) * g.dilation_w + 15) // 16 + 1
    per_channel = entries / max(1, g.out_c * g.group_in)
    per_block = max(1, BLOCK_BYTES // (rows_read * lines * 64))
    per_block = max(per_block, int(MIN_BLOCK_ENTRIES / max(per_channel, 1e-9)))
    if g.out_w <= 16 or per_block >= g.group_in:
        return 1
    return -(-g.group_in // per_block)


def direct_terms(g: ConvGeometry, entries: int, lanes: int, rows: int | None = None) -> dict[str, float]:
    """The direct method's terms for ``rows`` output rows (default all) of one sample."""
    h = g.out_h if rows is None else rows
    _, _, rs = g.padded()
    copy = g.in_c * g.copied_rows(h) * rs
    if lanes <= 1:  # the scalar kernel: one output at a time, every entry
        pos = h * g.out_w
        return {"call": 1.0, "fma": entries * pos, "far": entries * pos * far_fraction(g), "entry": entries * pos,
                "out": g.out_c * pos, "copy": copy}
    vec_cols = -(-g.out_w // lanes)
    full, rest = divmod(g.out_w, 4 * lanes)
    tiles = full * -(-h // TILE_ROWS[4]) + (-(-h // TILE_ROWS[-(-rest // lanes)]) if rest else 0)
    fma = entries * h * vec_cols
    return {"call": 1.0, "fma": fma, "far": fma * far_fraction(g), "entry": entries * tiles,
            "out": g.out_c * direct_cblocks(g, entries) * h * vec_cols, "copy": copy}


def far_fraction(g: ConvGeometry) -> float:
    """How far a direct conv's loads reach: a group's padded input over FAR_BYTES, at most 1. Each output
    channel's tiles read every input channel of the group, so a big padded input leaves the nearer caches
    between channels (measured: 1.3-2x the time per FMA on ResNet-18's 56x56 and 28x28 layers)."""
    hp, _, rs = g.padded()
    return min(1.0, 4 * g.group_in * hp * rs / FAR_BYTES)


def lanes_terms(g: ConvGeometry, lanes: int, rows: int | None = None) -> dict[str, float]:
    """The direct_lanes method's terms for ``rows`` output rows (default all) of one sample."""
    h = g.out_h if rows is None else rows
    _, _, rs = g.padded()
    copy = g.in_c * g.copied_rows(h) * rs
    pos = h * g.out_w
    if lanes <= 1:
        return {"call": 1.0, "fma": g.out_c * g.patch * pos, "entry": g.out_c * g.patch * pos,
                "out": g.out_c * pos, "copy": copy}
    vectors = -(-g.out_c // LANES_BLOCK) * max(1, LANES_BLOCK // lanes)  # weight vectors per column k
    pixels = max(1, 12 // max(1, LANES_BLOCK // lanes))                   # outputs per register tile
    return {"call": 1.0, "fma": vectors * g.patch * pos, "entry": vectors * g.patch * h * -(-g.out_w // pixels),
            "out": g.out_c * pos, "copy": copy}


def im2col_tile(g: ConvGeometry) -> int:
    """Output positions per GEMM call of the im2col method (``tile_positions``)."""
    cap = max(64, PATCH_BYTES // (g.patch * 4) // 8 * 8)
    tiles = -(-g.positions // cap)
    return (-(-g.positions // tiles) + 7) // 8 * 8


def im2col_terms(g: ConvGeometry, gemm_seconds: float, rows: tuple[int, int] | None = None,
                 lanes: int = 16) -> dict[str, float]:
    """The im2col method's terms for output rows [r0, r1) (default all) of one sample: ``gemm_seconds`` is
    one GEMM call (one group, T patches), priced by the linear classes. The scalar reference (``lanes``
    1) runs the oracle instead (``ref::conv2d``): every weight at every output position, a loop per
    input channel and kernel row."""
    r0, r1 = (0, g.out_h) if rows is None else rows
    if lanes <= 1:
        pos = (r1 - r0) * g.out_w
        return {"call": 1.0, "fma": g.out_c * pos * g.patch, "entry": g.out_c * pos * g.group_in * g.kh,
                "out": g.out_c * pos}
    t = im2col_tile(g)
    pa, pb = r0 * g.out_w, r1 * g.out_w
    tiles = -(-pb // t) - pa // t
    return {"call": 1.0, "gemm": g.groups * tiles * gemm_seconds, "copy": g.groups * tiles * t * g.patch,
            "out": g.out_c * (pb - pa)}


def row_splits(out_h: int, parts: int) -> list[tuple[int, int]]:
    """The batch-1 pieces of output rows (``ConvStep::set_threads``)."""
    return [(out_h * k // parts, out_h * (k + 1) // parts) for k in range(parts)]


class ConvCost:
    """A cost model seen through one conv layer: ``seconds(encoding, rows, cols, nnz, k, ...)`` as
    :meth:`CostModel.seconds`, for the conv's [O, C/g*kh*kw] weight.

    With a ``geometry`` and a profile that has conv terms (:meth:`CostModel.knows_conv`), a float encoding
    is priced by the method the runtime runs it by (module docstring). Otherwise (an int8 encoding, an
    older profile, or no geometry, as for a linear layer over the last axis of a bigger input) by its
    im2col GEMMs: per group, the group's rows against one patch per output position and sample
    (``positions`` = OH * OW).
    """

    def __init__(self, base: CostModel, groups: int, positions: int, geometry: ConvGeometry | None = None,
                 method: str | None = None) -> None:
        self.base, self.groups, self.positions = base, max(1, int(groups)), max(1, int(positions))
        self.geometry = geometry
        self.forced = method if method in ("direct", "direct_lanes", "im2col") else None  # as the runtime said
        self.name = base.name

    @classmethod
    def of_node(cls, base: CostModel, input_shape: Any, node: Any) -> ConvCost:
        """For a conv node of a :class:`pyruntime.convert.Graph` whose input has ``input_shape``."""
        g = ConvGeometry.of(input_shape, node.shape, node.weight.shape, node.attrs)
        return cls(base, g.groups, g.positions, g)

    def method(self, encoding: str, entries: int | None = None) -> str:
        """The runtime's method for ``encoding`` ("im2col" without a geometry)."""
        if self.forced is not None:
            return self.forced
        return "im2col" if self.geometry is None else conv_method(self.geometry, encoding, entries)

    def conv_class(self, encoding: str, entries: int | None = None) -> str:
        """The conv cost class of a float encoding (:func:`conv_class`)."""
        method = self.method(encoding, entries)
        return (DIRECT_CLASSES[encoding] if method == "direct" else LANES_CLASS if method == "direct_lanes"
                else IM2COL_CLASS)

    def seconds(self, encoding: str, rows: int, cols: int, nnz: int, k: int = 0, *, batch: int = 1,
                threads: int = 1, nbytes: int | None = None, entries: int | None = None) -> float:
        """Predicted seconds of the conv for ``batch`` samples on ``threads`` threads. ``nnz``: stored
        entries (CSR) as for a linear layer; ``entries``: the weights a direct kernel walks where they differ
        from ``nnz`` (a codebook's weights whose centroid is not zero)."""
        g = self.geometry
        if g is None or encoding not in FLOAT_ENCODINGS or not self.base.knows_conv():
            return self._gemm_seconds(encoding, rows, cols, nnz, k, batch, threads, nbytes)
        if batch < 1 or threads < 1:
            raise ValueError(f"batch and threads must be >= 1, got batch={batch}, threads={threads}")
        sparse = encoding in SPARSE_ENCODINGS
        stored = int(nnz) if sparse else int(rows) * int(cols)
        walked = stored if encoding != "codebook" or entries is None else int(entries)
        cls = self.conv_class(encoding, walked)
        work = stored * g.positions  # ConvStep::work_: stored entries x output positions
        if batch == 1:
            parts = min(threads, g.out_h, work // MIN_MACS_PER_TASK) if threads > 1 else 1
            pieces = row_splits(g.out_h, parts) if parts >= 2 else [(0, g.out_h)]
            samples = 1
        else:
            parts = min(threads, batch) if threads > 1 and work * batch >= 2 * MIN_MACS_PER_TASK else 1
            pieces, samples = [(0, g.out_h)], -(-batch // parts)
        per = max(self.base.conv_seconds(cls, self.terms(cls, encoding, rows, cols, nnz, k, nbytes=nbytes,
                                                         walked=walked, r0=r0, r1=r1))
                  for r0, r1 in pieces)
        return samples * per + (POOL_OVERHEAD_S if parts >= 2 else 0.0)

    def terms(self, cls: str, encoding: str, rows: int, cols: int, nnz: int, k: int = 0, *,
              nbytes: int | None = None, walked: int | None = None, r0: int = 0, r1: int | None = None
              ) -> dict[str, float]:
        """The terms of conv class ``cls`` for one sample's output rows [r0, r1) (default all) on one
        thread: what the calibration fits and :meth:`seconds` weighs. ``walked``: the entries a direct
        kernel walks (default: the stored ones)."""
        g = self.geometry
        if g is None:
            raise ValueError("conv terms need the conv's geometry")
        r1 = g.out_h if r1 is None else r1
        lanes = self.base.lanes()
        if cls == IM2COL_CLASS:
            n = g.groups
            gemm = self.base.seconds(encoding, max(1, rows // n), cols, max(1, nnz // n), k, batch=im2col_tile(g),
                                     nbytes=None if nbytes is None else max(1, nbytes // n))
            return im2col_terms(g, gemm, (r0, r1), lanes)
        if cls == LANES_CLASS:
            return lanes_terms(g, lanes, r1 - r0)
        if walked is None:
            walked = int(nnz) if encoding in SPARSE_ENCODINGS else int(rows) * int(cols)
        return direct_terms(g, walked, lanes, r1 - r0)

    def _gemm_seconds(self, encoding: str, rows: int, cols: int, nnz: int, k: int, batch: int, threads: int,
                      nbytes: int | None) -> float:
        g = self.groups
        return g * self.base.seconds(encoding, max(1, rows // g), cols, max(1, nnz // g), k,
                                     batch=batch * self.positions, threads=threads,
                                     nbytes=None if nbytes is None else max(1, nbytes // g))

    def knows(self, encoding: str, k: int = 0) -> bool:
        return self.base.knows(encoding, k)


def layer_seconds(model: CostModel, layer: dict[str, Any], batch: int, threads: int) -> float:
    """Predicted seconds of a loaded conv layer (a row of ``Model.layers()``: its weight and output shapes,
    groups and the method the runtime chose, which is the one priced), as ``Model.summary`` shows it. Its
    input shape, strides and padding are not in the row: :meth:`ConvGeometry.like_output` stands in."""
    shape = tuple(int(d) for d in layer["shape"])
    rows, cols = shape[0], math.prod(shape[1:])
    groups = max(1, int(layer.get("groups", 1)))
    g = ConvGeometry.like_output(shape, layer["output_shape"], groups)
    cost = ConvCost(model, groups, g.positions, g, method=layer.get("method"))
    enc, k, nnz = layer["encoding"], int(layer["codebook_size"]), int(layer["nnz"])
    if enc == "csr+int8" and layer.get("layout") == "i8_k4x16":
        enc = "int8"  # run dense: the loader found the AMX tiles faster than the sparse steps
    # layer["nnz"] counts the weights that are not zero: the entries of a sparse layout, the walked
    # entries of a codebook run direct; a dense layout stores every weight
    stored = nnz if enc in SPARSE_ENCODINGS else rows * cols
    nbytes = int(layer["exec_bytes"])
    if enc == "csr+int8" and layer.get("steps"):  # the steps, stored masked or not
        nbytes = i8_p128_bytes_of_steps(rows, cols, int(layer["steps"]), groups)
    return cost.seconds(enc, rows, cols, stored, k, batch=batch, threads=threads, nbytes=nbytes,
                        entries=nnz if enc == "codebook" else None)
