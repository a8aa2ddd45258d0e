// pyruntime: direct convolution over a list of weight entries (kernels/conv/conv2d.h, method "direct").
//
// Made for sparse weights (csr, csr+codebook: only the stored nonzeros are touched) and depthwise convs
// (K = kh * kw: too short a reduction for a GEMM); dense and codebook weights run it too, every entry
// counting as a nonzero.
//
// Input: per sample and group, the rows of the input that the requested output rows read are copied into
// scratch (Scratch::kConv) in one of two forms, chosen at create() time (shifted_planes_pay):
//
// Padded planes (AVX2, NEON): one zero-padded, phase-split plane per channel,
//
//     xp[c][r][phase][j] = x[c][r - pad_top][j * stride_w + phase - pad_left]   (0 outside the input)
//
// r in [0, hp), phase in [0, stride_w), j in [0, wph); a padded row holds rs = stride_w * wph floats. Output
// (oy, ox) of weight entry (c, ky, kx) reads xp at
//
//     off(c, ky, kx) + oy * stride_h * rs + ox,     off = c * plane + ky * dh * rs + (kx * dw % sw) * wph
//                                                          + kx * dw / sw
//
// Shifted planes (AVX-512): one plane per channel and kernel column kx,
//
//     xs[c][kx][r][j] = x[c][r - pad_top][j * stride_w + kx * dilation_w - pad_left]   (0 outside the input)
//
// j in [0, rs), rs = out_w rounded up to whole vectors (8 floats for rows of at most 8 outputs, else 16:
// ShiftedPlanes), read at off(c, ky, kx) + oy * stride_h * rs + ox with off = (c * kw + kx) * plane +
// ky * dh * rs. Every offset, row and tile start is then a multiple of a whole vector: the loads are aligned
// and never split a cache line. (Over padded planes two of every three zmm loads of a 3x3 conv split lines,
// and a split load takes two of the core's load slots. The gains are in shifted_planes_pay below; at three
// times the footprint, AVX2 lost 5-12% on ResNet-18's 28x28 and 14x14 layers, so AVX2 keeps padded planes.)
//
// Either way every tap is contiguous in ox, whatever the stride, and padding needs no bounds checks.
// (Splitting each output row into an inside part and border parts instead would need per-tap ranges in the
// inner loop and, for stride 2, strided loads; the copy costs one (padded) or kw (shifted) passes over the
// input per sample, vectorized, and is made group by group, so it is still in L1 / L2 when the group's
// channels read it.)
//
// Weights: off is precomputed per entry at create() time (16-bit when a group's copy has <= 65536 floats,
// or with shifted planes, in units of 8 floats, <= 512K floats; else 32-bit), next to the entry's f32 value
// (dense, csr: layouts "direct_f32", "direct_csr_f32") or its codebook index, one byte, with the centroid
// table (codebook, csr+codebook: "direct_lut8", "direct_csr_lut8"; no weight is expanded to a float). Entries
// of a channel are in column order (c, ky, kx), so consecutive entries read nearby input.
//
// Kernel: for each output channel, for tiles of R output rows x NC vectors of output columns held in
// registers (initialised to the bias), for each entry of the channel: broadcast the weight and FMA it with
// the R x NC shifted input vectors. Each output is one FMA chain over the entries in order, so any split
// into row ranges gives bit-identical results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/tensor.h"
#include "kernels/conv/conv2d.h"

namespace pyrt::kernels {

// Shape of the padded, phase-split input (conv/direct.h). hp / wp cover every tap of every output
// (the implied bottom / right padding included) and at least the input itself.
struct PaddedPlane {
  uint32_t hp = 0, wph = 0, rs = 0;
  size_t plane = 0;
  explicit PaddedPlane(const Conv2dGeometry& g) {
    const uint64_t ext_h = uint64_t(g.dilation_h) * (g.kh - 1) + 1, ext_w = uint64_t(g.dilation_w) * (g.kw - 1) + 1;
    hp = uint32_t(std::max<uint64_t>(uint64_t(g.pad_top) + g.in_h, uint64_t(g.out_h - 1) * g.stride_h + ext_h));
    const uint64_t wp = std::max<uint64_t>(uint64_t(g.pad_left) + g.in_w, uint64_t(g.out_w - 1) * g.stride_w + ext_w);
    wph = uint32_t((wp + g.stride_w - 1) / g.stride_w);
    rs = g.stride_w * wph;
    plane = size_t(hp) * rs;
  }
  // Offset of tap (c, ky, kx) from channel 0, row 0 of the group's padded input.
  size_t offset(const Conv2dGeometry& g, uint32_t c, uint32_t ky, uint32_t kx) const {
    const size_t dx = size_t(kx) * g.dilation_w;
    return c * plane + size_t(ky) * g.dilation_h * rs + dx % g.stride_w * wph + dx / g.stride_w;
  }
};

// Shape of the direct kernel's column-shifted planes (above): hp rows as PaddedPlane (every tap of every
// output, the implied bottom padding included), rs floats per row, one plane per kernel column.
struct ShiftedPlanes {
  uint32_t hp = 0, rs = 0, kw = 1;
  size_t plane = 0;  // floats of one plane: hp * rs
  explicit ShiftedPlanes(const Conv2dGeometry& g) : hp(PaddedPlane(g).hp), kw(g.kw) {
    const uint32_t lanes = g.out_w <= 8 ? 8 : 16;
    rs = uint32_t((uint64_t(g.out_w) + lanes - 1) / lanes * lanes);
    plane = size_t(hp) * rs;
  }
  // Offset of tap (c, ky, kx) from channel 0, row 0 of the group's planes.
  size_t offset(const Conv2dGeometry& g, uint32_t c, uint32_t ky, uint32_t kx) const {
    return (size_t(c) * kw + kx) * plane + size_t(ky) * g.dilation_h * rs;
  }
  // Floats of one group's planes.
  size_t group_floats(const Conv2dGeometry& g) const { return size_t(g.group_in()) * kw * plane; }
};

// The packed entries and the padded-input geometry the kernels run on (views; owned by the conv).
struct DirectConvLayout {
  // entry counts: output channel o has rowptr[o + 1] - rowptr[o] entries; offsets relative to the group's
  // channel 0
  const uint32_t* rowptr;
  // the entries split by blocks of input channels and stored block by block: block b of channel o is
  // [blockptr[b * (out_c + 1) + o], blockptr[b * (out_c + 1) + o + 1]) (the kernels run a tile block by block,
  // conv/direct_tiles.h, and read the entries in storage order); with one block, blockptr is rowptr
  const uint32_t* blockptr;
  uint32_t cblocks;
  const uint16_t* off16;  // exactly one of off16 / off32 is set
  const uint32_t* off32;
  uint32_t off_shift;     // off16's offsets are in units of 1 << off_shift floats (3 with shifted planes, else 0)
  uint32_t o_begin, o_end;  // the output channels a call computes (Conv2d::run_channels), else 0, out_c
  const float* val;       // f32 weight per entry, or null
  const uint8_t* idx;     // codebook index per entry (when val is null) into lut (256 floats)
  const float* lut;
  // output
  uint32_t out_c, out_h, out_w, groups, group_out;
  // input [groups * group_in_c][in_h][in_w] and the padded copy of one group
  uint32_t group_in_c, in_h, in_w, pad_top, pad_left, stride_h, stride_w;
  uint32_t taps_h;        // padded rows one output row reads: (kh - 1) * dilation_h + 1
  bool shifted;           // the input as shifted planes (ShiftedPlanes), else as padded ones (PaddedPlane)
  uint32_t wph, rs;       // floats per phase / per padded row (rs = stride_w * wph); shifted: wph unused,
                          // rs floats per shifted row
  uint32_t kw, dilation_w;  // shifted: one plane per kernel column kx (shift kx * dilation_w); padded: 1, 0
  size_t plane;           // floats per padded channel: hp * rs (shifted: per plane)
  size_t row_step;        // floats between the inputs of consecutive output rows: stride_h * rs
  size_t group_in;        // floats of one group's padded input: group_in_c * plane (shifted: * kw)
  size_t scratch;         // floats of scratch a kernel needs: group_in, then kDirectSlack zeros
  float lo, hi;           // the output clamp (Conv2d::set_output_clamp): -inf, +inf for none
  const float* residual;  // per call: one sample's residual, added to each output before the clamp
                          // (Conv2d::run_residual), or null
  // method direct_lanes (conv/direct_lanes.cpp) only: weights packed [out_c / 16 blocks][K][16] (zero past
  // out_c), bias padded to a multiple of 16, tap offsets koff[k] of weight column k; else null
  const float* lanes_w;
  const float* lanes_bias;
  const uint32_t* koff;
  uint32_t K;
};

// Floats of zeros after the padded input: a tile's last vector may read up to a vector past the columns it
// stores (plain loads rather than masked ones; those lanes are never stored), so up to a vector past the
// end of the padded input.
constexpr size_t kDirectSlack = 16;

// Output rows [oy0, oy1) of one sample: x [in_c][in_h][in_w], y [out_c][out_h][out_w], bias [out_c] or
// null, xp a 64-byte aligned scratch of L.scratch floats. Group by group, the kernel copies the rows of
// the group's input that those output rows read into xp (padded, phase-split) and runs the group's output
// channels over it, so the copy is still in L1 / L2 when it is read.
using DirectConvFn = void (*)(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                              uint32_t oy0, uint32_t oy1);

void pyrt_conv_direct__ref(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                           uint32_t oy0, uint32_t oy1);
#if PYRT_HAVE_X86_KERNELS
void pyrt_conv_direct__avx2(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                            uint32_t oy0, uint32_t oy1);
void pyrt_conv_direct__avx512(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                              uint32_t oy0, uint32_t oy1);
#endif
#if PYRT_HAVE_ARM_KERNELS
void pyrt_conv_direct__neon(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                            uint32_t oy0, uint32_t oy1);
#endif

// The geometry part of a layout (everything but the weights): sizes, the padded planes (direct_lanes, and
// direct below AVX-512) or the shifted ones, scratch, the clamp.
DirectConvLayout padded_layout(const Conv2dGeometry& g, const PaddedPlane& pp, const OutputClamp& clamp);
DirectConvLayout shifted_layout(const Conv2dGeometry& g, const ShiftedPlanes& sp, const OutputClamp& clamp);

// Copies the rows that output rows [oy0, oy1) read, of the group_in_c channels at x, into xp, padded or
// shifted (L.shifted) (the scalar version; the vector kernels have their own, conv/direct_tiles.h pad_group).
void pad_group_ref(const DirectConvLayout& L, const float* x, float* xp, uint32_t oy0, uint32_t oy1);

// Method direct_lanes (conv/direct_lanes.cpp): dense weights, output channels in the vector lanes. For each
// block of 16 output channels and each tile of P consecutive outputs of a row (P = 6 with AVX2's two
// vectors per block, 12 with AVX-512's one), every weight column k adds W[block][k] (loaded) times the
// tile's P input taps (broadcast from the padded input) into P x 16 accumulators: 12 FMAs per 8 loads, no
// patches. Made for convs of few input channels (a network's first conv: 3 x 7 x 7 = 147 columns), where
// im2col's patches cost as much as the GEMM and the entry-wise direct kernel reads every tap for every
// output channel again. Each output is one FMA chain over k in order (any row split is bit-identical).
void pyrt_conv_lanes__ref(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                          uint32_t oy0, uint32_t oy1);
#if PYRT_HAVE_X86_KERNELS
void pyrt_conv_lanes__avx2(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                           uint32_t oy0, uint32_t oy1);
void pyrt_conv_lanes__avx512(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                             uint32_t oy0, uint32_t oy1);
#endif
#if PYRT_HAVE_ARM_KERNELS
void pyrt_conv_lanes__neon(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                           uint32_t oy0, uint32_t oy1);
#endif
constexpr uint32_t kLanesBlock = 16;  // output channels per packed weight block

// A direct conv for geometry g (validated) and weight w, any encoding.
std::unique_ptr<Conv2d> make_direct_conv(const Conv2dGeometry& g, const DecodedTensor& w);
// A direct_lanes conv (groups 1; any encoding, expanded to f32 at create time).
std::unique_ptr<Conv2d> make_direct_lanes_conv(const Conv2dGeometry& g, const DecodedTensor& w);
// Whether a direct conv of geometry g loaded at level isa copies its input into shifted planes or into one
// padded plane per channel. Never where the shifted copy would be out of proportion to the layer's input and
// output (direct_scratch_in_proportion). Else shifted at AVX-512 and above (a zmm load split across two cache
// lines takes two load slots, and two of a 3x3 conv's three taps were split), except for depthwise convs (the
// copy is most of their work, and kw planes triple it: MobileNet-V2's ran 0.44-0.8x as fast shifted) and
// where the entries' offsets would grow from 16 to 32 bits (the entries' stream 1.7x: ResNet-18's 7x7 and
// 14x14 layers ran 0.67-0.94x as fast before shifted offsets were stored in units of 8 floats; with them,
// 0.87-1.06x). Measured in the networks (Sapphire Rapids, one thread, 80%-pruned 4-bit): ResNet-18's stride-2
// 3x3 convs 1.45-1.6x, its 28x28 ones 1.15x, 1x1 convs 1.1-1.3x (MobileNet-V2's too). AVX2 and NEON keep the
// padded planes (AVX2: fewer loads split, and the padded planes' smaller footprint won on ResNet-18's 28x28
// and 14x14 layers by 5-12%). set_direct_planes overrides the choice for the convs created afterwards (tests
// run both forms at every level).
bool shifted_planes_pay(const Conv2dGeometry& g, Isa isa);
enum class DirectPlanes { automatic, shifted, padded };
void set_direct_planes(DirectPlanes p);
DirectPlanes direct_planes_setting();
// Floats of the per-thread scratch the direct method needs with padded planes: one group's copy and the slack.
uint64_t direct_conv_scratch_floats(const Conv2dGeometry& g);
// Whether a direct conv's scratch of `floats` stays a small multiple of what the arena holds for the layer
// (4x its input and output, plus 64K floats): padded planes that are not run im2col (conv2d.cpp), and shifted
// planes that are not are never chosen (kw planes of a wide kernel over a small input could take gigabytes).
bool direct_scratch_in_proportion(const Conv2dGeometry& g, uint64_t floats);

}  // namespace pyrt::kernels
