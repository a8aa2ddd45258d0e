// pyruntime: Conv2d::create — geometry checks and the choice between the im2col and the direct method.
#include "kernels/conv/conv2d.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "kernels/conv/direct.h"
#include "kernels/conv/im2col.h"

namespace pyrt::kernels {
namespace {

constexpr uint64_t kMaxFloats = uint64_t(1) << 31;  // any array a conv indexes: 32-bit offsets stay valid

// One spatial axis: out consistent with in, pad, k, stride, dilation (see Conv2dGeometry::validate).
void check_axis(pyrt_status st, const char* axis, uint32_t in, uint32_t out, uint32_t k, uint32_t stride,
                uint32_t pad, uint32_t dil) {
  const uint64_t ext = uint64_t(dil) * (k - 1) + 1;  // extent of the dilated kernel
  const uint64_t padded = uint64_t(in) + pad;         // input plus the leading padding
  // the smallest out: no trailing padding at all. Any larger out implies a trailing padding; windows
  // that lie wholly in it read zeros and give the bias (docs/FORMAT.md 2.3), as torch computes them.
  const uint64_t min_out = padded >= ext ? (padded - ext) / stride + 1 : 1;
  PYRT_CHECK(out >= min_out, st, "conv2d: out_", axis, " = ", out, " is inconsistent with in_", axis, " = ", in,
             ", k", axis, " = ", k, ", stride_", axis, " = ", stride, ", dilation_", axis, " = ", dil,
             ", leading padding ", pad, " (expected at least ", min_out, ")");
}

}  // namespace

void Conv2dGeometry::validate(int status) const {
  const auto st = static_cast<pyrt_status>(status);
  const struct {
    const char* name;
    uint32_t v;
  } fields[] = {{"in_c", in_c},         {"in_h", in_h},         {"in_w", in_w},
                {"out_c", out_c},       {"out_h", out_h},       {"out_w", out_w},
                {"kh", kh},             {"kw", kw},             {"stride_h", stride_h},
                {"stride_w", stride_w}, {"dilation_h", dilation_h}, {"dilation_w", dilation_w},
                {"groups", groups}};
  for (const auto& f : fields) PYRT_CHECK(f.v >= 1, st, "conv2d: ", f.name, " must be >= 1 (got ", f.v, ")");
  PYRT_CHECK(in_c % groups == 0 && out_c % groups == 0, st, "conv2d: groups = ", groups,
             " must divide in_c = ", in_c, " and out_c = ", out_c);
  check_axis(st, "h", in_h, out_h, kh, stride_h, pad_top, dilation_h);
  check_axis(st, "w", in_w, out_w, kw, stride_w, pad_left, dilation_w);
  // Sizes of the arrays the kernels index with 32-bit offsets: input and output per sample, the weight, and
  // the direct method's padded input (its rows cover every tap: the input and the padding the output
  // implies, plus up to a stride of phase-split columns). docs/FORMAT.md 2.3 bounds each by 2^31 floats
  // (the padded input by C * (H + top + bottom) * (W + left + right + stride_w), at least as large), so
  // a file the reader accepts always passes.
  const uint64_t ext_h = uint64_t(dilation_h) * (kh - 1) + 1, ext_w = uint64_t(dilation_w) * (kw - 1) + 1;
  const uint64_t hp = std::max<uint64_t>(uint64_t(pad_top) + in_h, uint64_t(out_h - 1) * stride_h + ext_h);
  const uint64_t wp = std::max<uint64_t>(uint64_t(pad_left) + in_w, uint64_t(out_w - 1) * stride_w + ext_w);
  const uint64_t k = uint64_t(in_c / groups) * kh * kw;
  PYRT_CHECK(uint64_t(in_c) * in_h * in_w <= kMaxFloats && uint64_t(out_c) * out_h * out_w <= kMaxFloats &&
                 k * out_c <= kMaxFloats && hp <= kMaxFloats && uint64_t(in_c) * hp * (wp + stride_w) <= kMaxFloats,
             st, "conv2d: layer too large (input, output, weight or padded input over 2^31 floats)");
}

void Conv2dGeometry::validate(const DecodedTensor& w, int status) const {
  validate(status);
  const auto st = static_cast<pyrt_status>(status);
  const std::vector<uint32_t> want4 = {out_c, in_c / groups, kh, kw}, want2 = {out_c, patch()};
  if (w.shape != want4 && w.shape != want2) {
    std::string got;
    for (size_t i = 0; i < w.shape.size(); ++i) got += (i ? ", " : "") + std::to_string(w.shape[i]);
    fail(st, "conv2d: weight '", w.name, "' has shape [", got, "], expected [", out_c, ", ", in_c / groups, ", ", kh,
         ", ", kw, "] (out_c, in_c / groups, kh, kw)");
  }
}

// kAuto, from measurements (bench numbers in the comment below):
//  - depthwise (one input channel per group): direct. K = kh * kw is too short a reduction for a GEMM,
//    and im2col runs one GEMM of group_out rows per group: direct is 3-40x faster, any encoding.
//  - csr, csr+codebook: direct. The SpMM kernel behind im2col does one x load per multiply-add, as direct
//    does, so im2col only adds its patches (K floats per output position, written and then reordered by the
//    kernel): direct is 1.5-20x faster at 50-95% sparsity on every shape measured (ties at worst).
//  - dense, codebook: im2col iff group_out >= 128. The dense / codebook GEMMs reuse each patch value for
//    many output channels from registers, which pays for the patches once there are enough of them; direct
//    is faster below that (LeNet, ResNet-20's 16-64 channel convs), a tie at 128, im2col 1.2-2x faster
//    from 256.
//
// ms per call, batch 1 / 16, one thread, Zen 4, AVX-512 (AVX2 alike), im2col vs direct:
//   dense      MobileNet pw 256->256 14x14     0.37 / 10.8   vs 0.67 / 22.4   im2col
//   dense      3x3 512->512 7x7                3.17 / 101    vs 4.47 / 143    im2col
//   codebook16 3x3 128->128 28x28              3.21 / 106    vs 6.23 / 135    im2col
//   dense      MobileNet pw 64->128 28x28      0.26 / 12.7   vs 0.29 / 9.9    (a tie)
//   dense      ResNet-20 3x3 64->64 8x8        0.095 / 1.52  vs 0.072 / 1.16  direct
//   dense      ResNet-20 3x3 16->16 32x32      0.24 / 4.07   vs 0.079 / 1.36  direct
//   dense      LeNet conv2 20->50 5x5 12x12    0.093 / 1.51  vs 0.054 / 0.91  direct
//   csr 50%    3x3 512->512 7x7                3.78 / 122    vs 2.12 / 67.3   direct
//   csr 50%    MobileNet pw 256->256 14x14     0.31 / 10.1   vs 0.33 / 9.7    (a tie)
//   csr 90%    ResNet-20 3x3 32->32 16x16      0.10 / 1.65   vs 0.010 / 0.17  direct
//   csr+cb 90% MobileNet pw 64->128 28x28      0.19 / 9.8    vs 0.038 / 1.35  direct
//   any        MobileNet dw 3x3 512 14x14      0.86 / 14     vs 0.04-0.065 / 0.7-1.1  direct
//  - whatever the above says, im2col when the direct method's padded copy of a group's input would be out
//    of proportion to the layer's input and output (direct_scratch_in_proportion; padding or strides far
//    beyond the kernel: a 1x1 conv padded by 23000 and strided 2305 reads 20 of 46001 padded rows, and its
//    padded copy would be 8 GB for kilobytes of input and output). im2col's scratch is one tile of patches.
//    So a kernel's scratch stays a small multiple of what the arena holds for the layer.
//  - a codebook whose zero centroid holds at least half of the weights (a pruned layer stored with dense
//    indices, the smaller file at moderate sparsity) counts as sparse: direct drops its zero entries (SqueezeNet
//    at 33% density, 8 bits: features.5.expand1x1 1571 us im2col -> 331 us direct, AMD EPYC, AVX2, 1 thread).
//  - dense (or dense-index codebook) weights over at most 4 input channels, groups 1, at least 8 output
//    channels (a network's first conv): direct_lanes, output channels in the vector lanes (conv/direct.h).
static bool mostly_zero_codebook(const DecodedTensor& w) {
  if (w.encoding != Encoding::codebook || w.indices.empty()) return false;
  size_t zeros = 0;
  for (uint8_t i : w.indices) zeros += w.centroids[i] == 0.0f;
  return zeros * 2 >= w.indices.size();
}

static Conv2d::Method auto_method(const Conv2dGeometry& g, const DecodedTensor& w) {
  if (!direct_scratch_in_proportion(g, direct_conv_scratch_floats(g)))
    return Conv2d::Method::kIm2col;
  if (g.group_in() == 1 || is_sparse(w.encoding) || mostly_zero_codebook(w)) return Conv2d::Method::kDirect;
  if (g.groups == 1 && g.in_c <= 4 && g.out_c >= 8) return Conv2d::Method::kDirectLanes;
  return g.group_out() >= 128 ? Conv2d::Method::kIm2col : Conv2d::Method::kDirect;
}

std::unique_ptr<Conv2d> Conv2d::create(const Conv2dGeometry& g, const DecodedTensor& w, bool in_place,
                                       Method method) {
  g.validate(w, PYRT_INVALID_ARGUMENT);
  w.validate(PYRT_INVALID_ARGUMENT);
  if (method == Method::kAuto) method = auto_method(g, w);
  if (method == Method::kDirect) return make_direct_conv(g, w);
  if (method == Method::kDirectLanes) return make_direct_lanes_conv(g, w);
  return make_im2col_conv(g, w, in_place);
}

}  // namespace pyrt::kernels
