// pyruntime: the kernels of int8 convolutions beyond the GEMM (runtime/ops/conv_int8*.cpp): the direct
// depthwise convolution of one output plane, and the transpose of a GEMM tile's [positions x channels]
// outputs into channel planes. Every ISA level gives the scalar reference's bits: the sums are exact
// integers and the epilogue is int8_layouts.h's, operation for operation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/isa.h"

namespace pyrt::kernels {

// One output plane of a depthwise (one input channel per group) int8 convolution, read from its input
// channel laid out in "phases": the padded input plane (zero padding included) is split into stride_h *
// stride_w sub-planes, sub-plane (a, b) (at x + (a * stride_w + b) * sub_bytes) holding padded rows a,
// a + stride_h, ... and of those the columns b, b + stride_w, ..., each row `phase_len` bytes. Tap (ky, kx)
// reads sub-plane ((ky * dilation_h) % stride_h, (kx * dilation_w) % stride_w) from row
// (ky * dilation_h) / stride_h, column (kx * dilation_w) / stride_w on: for every output (oy, ox) at
// oy * phase_len + ox of one contiguous run, so a tap is one long multiply-add over a block of rows. x must
// be readable kInt8DwSlack bytes past its last sub-plane (the sums run 16 or 32 outputs at a time).
constexpr size_t kInt8DwSlack = 64;
struct Int8DwPlane {
  const int8_t* x;
  size_t sub_bytes, phase_len;
  const int8_t* w;  // kh * kw taps, row-major
  uint32_t kh, kw, stride_h, stride_w, dilation_h, dilation_w;
  uint32_t out_h, out_w;
  // the epilogue (int8_layouts.h): v = fma(float(acc), scale, bias), then clamp, then f32 or int8 output
  float scale, bias, lo, hi, inv_out;
  void* y;  // out_h * out_w outputs, f32 (inv_out == 0) or int8
};

void int8_dwconv_plane(Isa isa, const Int8DwPlane& p);

// The phase layout of Int8DwPlane::x from one [in_h, in_w] int8 input plane: `dst` (sub_bytes * stride_h *
// stride_w bytes, zeroed here) gets padded (y, x) = input (y - pad_top, x - pad_left) at sub-plane
// (y % stride_h, x % stride_w), row y / stride_h, column x / stride_w.
struct Int8DwPhases {
  uint32_t in_h, in_w, pad_top, pad_left, stride_h, stride_w;
  size_t sub_bytes, phase_len;
};
void int8_dw_phases(Isa isa, const Int8DwPhases& f, const int8_t* src, int8_t* dst);

// A tile of positions of a dense int8 convolution, positions vectorized (the output lands in channel planes,
// no transpose): the patches in blocks of 16 positions, block j at a + j * 16 * kp, its 4-column group g at
// + g * 64 holding the 16 positions' 4 bytes (q in -127..127, zero from K to kp and for positions past n);
// the weight row-major (row o at w + o * kp, zero from K to kp). For every output row o < og and position
// p < n: acc = sum_k w[o][k] * q[p][k] (exact int32), then the int8 epilogue with scale xs * wscale[o] and
// bias[o] (0 when bias is null), stored at y + o * plane + p (f32, or int8 when inv_out > 0). a must be
// readable kInt8ConvTilePad bytes past its last block (AMX's tiles of 64 columns may reach past kp).
// w64, when not null, is the same weight as AMX's A tiles want it (int8_conv_w64): rows padded with zeros
// to a multiple of 16, each row kp rounded up to 64 bytes; the amx kernel then copies nothing per call.
constexpr size_t kInt8ConvTilePad = 1024;
struct Int8ConvTile {
  const int8_t* a;
  size_t n;
  const int8_t* w;
  const int32_t* wsum;  // per row: the sum of its weights (VNNI's offset correction)
  size_t og, kp;
  float xs;
  const float* wscale;
  const float* bias;
  float lo, hi, inv_out;
  void* y;
  size_t plane;
  const int8_t* w64 = nullptr;
};
void int8_conv_tile(Isa isa, const Int8ConvTile& t);
// The w64 form of og rows of kp bytes (row o at w + o * kp) appended to out: (og rounded up to 16) rows of
// (kp rounded up to 64) bytes. Returns the offset of the block in out.
size_t int8_conv_w64(const int8_t* w, size_t og, size_t kp, std::vector<int8_t>& out);

// A tile block's patches gathered straight from the channels-last padded input, for cg % 4 == 0 (then every
// 4-column group of a patch is 4 consecutive channels of one tap, and kp = K): position i < m starts at byte
// pos[i] of src, tap t (ky, kx in the weight's column order) at byte tap[t] from it, and block group
// t * cg / 4 + c4 at dst + (t * cg / 4 + c4) * 64 receives the 16 positions' 4 bytes (zeros past m): the
// Int8ConvTile layout without the patch rows in between. int8_patch_gather_kernel gives the kernel for level
// isa, or null where it has none or its gathers are slower than the copies (use_hw_gather): ask once per call.
struct Int8PatchGather {
  const int8_t* src;
  const int32_t* pos;  // 16 entries (those past m unused)
  uint32_t m;
  const int32_t* tap;
  uint32_t taps, cg;
  int8_t* dst;
};
using Int8PatchGatherFn = void (*)(const Int8PatchGather&);
Int8PatchGatherFn int8_patch_gather_kernel(Isa isa);

// A tile block of a 1x1 conv straight from the planar int8 input (channels of `plane` bytes, channel c at
// q + c * plane, cg % 4 == 0): for m <= 16 positions from q on, group c4 at dst + c4 * 64 receives each
// position's 4 bytes of channels 4 c4 .. 4 c4 + 3 (zeros past m). Reads only the m bytes of each row.
void int8_planar_block(const int8_t* q, size_t plane, size_t cg, size_t m, int8_t* dst);

// Channels-last: dst[y * dst_row + x * dst_stride + c] = src[(c * h + y) * w + x] for c < channels, y < h,
// x < w (an int8 [channels, h, w] block into rows of positions of dst_stride >= channels bytes).
void int8_channels_last(Isa isa, const int8_t* src, size_t channels, size_t h, size_t w, int8_t* dst, size_t dst_row,
                        size_t dst_stride);

// tile [n x og] (row i: the og channel outputs of position i) -> y[o * plane + i]: og planes. Moves 4-byte
// elements bit for bit (the int8 conv also transposes groups of 4 int8 with it).
void transpose_to_planes(Isa isa, const float* tile, size_t n, size_t og, float* y, size_t plane);

void pyrt_i8_dwconv__ref(const Int8DwPlane& p);
void pyrt_i8_conv_tile__ref(const Int8ConvTile& t);
void pyrt_i8_dw_phases__ref(const Int8DwPhases& f, const int8_t* src, int8_t* dst);
#if PYRT_HAVE_X86_KERNELS
void pyrt_i8_dwconv__avx2(const Int8DwPlane& p);
void pyrt_i8_dwconv__avx512(const Int8DwPlane& p);
void pyrt_i8_dw_phases__avx2(const Int8DwPhases& f, const int8_t* src, int8_t* dst);
void pyrt_i8_dw_phases__avx512(const Int8DwPhases& f, const int8_t* src, int8_t* dst);
void pyrt_transpose_planes__avx2(const float* tile, size_t n, size_t og, float* y, size_t plane);
void pyrt_i8_conv_tile__avx2(const Int8ConvTile& t);
void pyrt_i8_conv_tile__avx512(const Int8ConvTile& t);
void pyrt_i8_patch_gather__avx512(const Int8PatchGather& p);
void pyrt_i8_patch_gather__avx2(const Int8PatchGather& p);
void pyrt_i8_conv_tile__avx512vnni(const Int8ConvTile& t);
#if PYRT_HAVE_AMX
void pyrt_i8_conv_tile__amx(const Int8ConvTile& t);
#endif
void pyrt_i8_channels_last__avx2(const int8_t* src, size_t channels, size_t h, size_t w, int8_t* dst, size_t dst_row,
                                 size_t dst_stride);
#endif
#if PYRT_HAVE_ARM_KERNELS
void pyrt_i8_dwconv__neon(const Int8DwPlane& p);
void pyrt_i8_conv_tile__neon(const Int8ConvTile& t);
void pyrt_i8_conv_tile__neon_dot(const Int8ConvTile& t);
void pyrt_i8_dw_phases__neon(const Int8DwPhases& f, const int8_t* src, int8_t* dst);
void pyrt_transpose_planes__neon(const float* tile, size_t n, size_t og, float* y, size_t plane);
void pyrt_i8_channels_last__neon(const int8_t* src, size_t channels, size_t h, size_t w, int8_t* dst, size_t dst_row,
                                 size_t dst_stride);
#endif

}  // namespace pyrt::kernels
