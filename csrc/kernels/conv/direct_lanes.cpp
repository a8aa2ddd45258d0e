// pyruntime: the direct_lanes convolution (conv/direct.h): output channels in the vector lanes, for dense
// convs of few input channels. Packing at create() time, the scalar twin of the vector kernels
// (x86/conv_direct_*.cpp over conv/direct_lanes_tiles.h) and the dispatch.
#include <algorithm>
#include <vector>

#include "common/aligned.h"
#include "common/error.h"
#include "kernels/conv/direct.h"
#include "kernels/kernels.h"
#include "kernels/packed_weight.h"

namespace pyrt::kernels {
namespace {

DirectConvFn lanes_kernel(Isa isa) {
#if PYRT_HAVE_X86_KERNELS
  if (isa >= Isa::avx512) return &pyrt_conv_lanes__avx512;
  if (isa == Isa::avx2) return &pyrt_conv_lanes__avx2;
#endif
#if PYRT_HAVE_ARM_KERNELS
  if (isa >= Isa::neon) return &pyrt_conv_lanes__neon;
#endif
  return &pyrt_conv_lanes__ref;
}

class DirectLanesConv final : public Conv2d {
 public:
  DirectLanesConv(const Conv2dGeometry& g, const DecodedTensor& w) : Conv2d(g), pp_(g) {
    PYRT_CHECK(g.groups == 1, PYRT_INVALID_ARGUMENT, "conv2d method direct_lanes needs groups 1, got ", g.groups);
    const uint32_t K = g.patch(), khw = g.kh * g.kw, blocks = (g.out_c + kLanesBlock - 1) / kLanesBlock;
    koff_.resize(K);
    for (uint32_t c = 0; c < g.in_c; ++c)
      for (uint32_t ky = 0; ky < g.kh; ++ky)
        for (uint32_t kx = 0; kx < g.kw; ++kx) koff_[c * khw + ky * g.kw + kx] = uint32_t(pp_.offset(g, c, ky, kx));
    // each row decoded through its execution layout (any encoding), then spread over its block's lanes
    const std::unique_ptr<PackedWeight> pw = pack(w);
    std::vector<float> row(K);
    packed_.resize(size_t(blocks) * K * kLanesBlock);
    std::fill(packed_.data(), packed_.data() + packed_.size(), 0.0f);
    for (uint32_t o = 0; o < g.out_c; ++o) {
      pw->decode_row(o, row.data());
      float* lane = packed_.data() + size_t(o / kLanesBlock) * K * kLanesBlock + o % kLanesBlock;
      for (uint32_t k = 0; k < K; ++k) lane[size_t(k) * kLanesBlock] = row[k];
    }
    bias_floats_ = size_t(blocks) * kLanesBlock;
  }

  void run(Isa isa, const float* x, size_t batch, float* y, const float* bias, uint32_t oy0,
           uint32_t oy1) const override {
    if (oy0 >= oy1) return;
    DirectConvLayout L = view();
    // scratch: the padded input, its slack (direct.h), then the bias padded to whole blocks (per call: the
    // caller's bias may change between calls)
    float* xp = thread_scratch(L.scratch + bias_floats_, Scratch::kConv);
    std::fill(xp + L.group_in, xp + L.scratch, 0.0f);
    float* padded_bias = xp + L.scratch;
    std::fill(padded_bias, padded_bias + bias_floats_, 0.0f);
    if (bias) std::copy(bias, bias + geom_.out_c, padded_bias);
    L.lanes_bias = padded_bias;
    const DirectConvFn fn = lanes_kernel(isa);
    for (size_t b = 0; b < batch; ++b) fn(L, x + b * geom_.in_size(), xp, y + b * geom_.out_size(), bias, oy0, oy1);
  }

  size_t bytes() const override { return packed_.bytes() + koff_.bytes(); }
  const char* layout() const override { return "lanes_f32"; }
  const char* method() const override { return "direct_lanes"; }

 private:
  DirectConvLayout view() const {
    DirectConvLayout L = padded_layout(geom_, pp_, clamp_);  // groups 1: one group of all input channels
    L.lanes_w = packed_.data();
    L.koff = koff_.data();
    L.K = geom_.patch();
    return L;
  }

  PaddedPlane pp_;
  AlignedArray<uint32_t> koff_;
  AlignedArray<float> packed_;
  size_t bias_floats_ = 0;  // the bias padded to whole blocks (its values come per call: run)
};

}  // namespace

// The scalar twin of the vector kernels: one output at a time, columns k in order.
void pyrt_conv_lanes__ref(const DirectConvLayout& L, const float* x, float* xp, float* y, const float*,
                          uint32_t oy0, uint32_t oy1) {
  pad_group_ref(L, x, xp, oy0, oy1);
  const size_t plane = size_t(L.out_h) * L.out_w;
  const OutputClamp clamp{L.lo, L.hi};
  for (uint32_t o = 0; o < L.out_c; ++o) {
    const float* wb = L.lanes_w + size_t(o / kLanesBlock) * L.K * kLanesBlock + o % kLanesBlock;
    for (uint32_t oy = oy0; oy < oy1; ++oy) {
      const float* xr = xp + oy * L.row_step;
      for (uint32_t ox = 0; ox < L.out_w; ++ox) {
        float acc = L.lanes_bias[o];
        for (uint32_t k = 0; k < L.K; ++k) acc += wb[size_t(k) * kLanesBlock] * xr[L.koff[k] + ox];
        y[o * plane + size_t(oy) * L.out_w + ox] = clamp(acc);
      }
    }
  }
}

std::unique_ptr<Conv2d> make_direct_lanes_conv(const Conv2dGeometry& g, const DecodedTensor& w) {
  return std::make_unique<DirectLanesConv>(g, w);
}

}  // namespace pyrt::kernels
