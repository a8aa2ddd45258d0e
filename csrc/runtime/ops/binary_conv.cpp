// pyruntime: bconv2d, the binary convolution (FORMAT.md 2.6). With input 0 it takes the sign of its input
// channels-last and bit-packed (b1c: a pixel's C channels in ceil(C / 64) words) and runs the XNOR GEMM of
// kernels/binary over patches of kh * kw pixels' words (the weight's columns permuted once to that order);
// a tap in the zero padding is a zero word in the patch, whose mismatches with the weight (the popcount of the
// weight's bits at that tap, precomputed) are taken back, so it contributes 0, as the spec says. Output 0 is
// f32 [O, OH, OW]; output 1 sets the bits (dot + K >= 2 T) of b1c [OH, OW] pixels of O channels, what the
// next bconv2d reads. With input 1 (real activations) it is conv2d with the weight unpacked to +-alpha.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/binary/binary_weight.h"
#include "kernels/int8/int8_conv.h"
#include "kernels/kernels.h"
#include "runtime/ops/weights.h"

namespace pyrt::runtime {
namespace {

constexpr size_t kChunk = 256;                   // output positions per GEMM call (their patches in a scratch)
constexpr uint64_t kMinOpsPerTask = 4096 * 1024;  // bit operations a thread split needs per task

size_t words_of(size_t n) { return (n + 63) / 64; }

// The weight [O, C, kh, kw] with its columns in patch order: tap t = ky * kw + kx, then the C channels padded to
// whole words, so that row r's word t * cw + c / 64 holds channel c of tap t.
DecodedTensor patch_order(const DecodedTensor& w, size_t c, size_t taps) {
  const size_t cw = words_of(c), in_words = words_of(w.cols()), rows = w.rows();
  DecodedTensor t;
  t.name = w.name;
  t.encoding = Encoding::binary;
  t.shape = {uint32_t(rows), uint32_t(taps * cw * 64)};
  t.scales = w.scales;
  t.bits.assign(rows * taps * cw, 0);
  for (size_t r = 0; r < rows; ++r)
    for (size_t ch = 0; ch < c; ++ch)
      for (size_t tap = 0; tap < taps; ++tap) {
        const size_t col = ch * taps + tap;
        if ((w.bits[r * in_words + col / 64] >> (col % 64)) & 1)
          t.bits[r * taps * cw + tap * cw + ch / 64] |= uint64_t(1) << (ch % 64);
      }
  return t;
}

class BinaryConvStep final : public Step {
 public:
  BinaryConvStep(const BuildContext& ctx, LayerInfo& li, bool bits_out)
      : g_(ops::conv_geometry(ctx)),
        taps_(size_t(g_.kh) * g_.kw),
        cw_(words_of(g_.in_c)),
        k_(int32_t(g_.in_c * taps_)),
        bits_out_(bits_out),
        w_(patch_order(ctx.tensor(0), g_.in_c, taps_), kernels::BinaryWeight::Mode::xnor_real, nullptr) {
    const DecodedTensor& w = ctx.tensor(0);
    const size_t o = g_.out_c;
    tap_ones_.assign(taps_ * o, 0);  // [tap][row]: the weight's ones at each tap (what a zero word mismatches)
    for (size_t r = 0; r < o; ++r)
      for (size_t ch = 0; ch < g_.in_c; ++ch)
        for (size_t tap = 0; tap < taps_; ++tap) {
          const size_t col = ch * taps_ + tap;
          tap_ones_[tap * o + r] += (w.bits[r * words_of(w.cols()) + col / 64] >> (col % 64)) & 1;
        }
    alpha_ = w.scales;
    second_.assign(o, 0.0f);
    if (ctx.node.tensors.size() == 2) {
      std::memcpy(second_.data(), ctx.tensor(1).value_data(), o * sizeof(float));
      if (bits_out) {  // +1 where dot + K >= 2 T, i.e. dot >= 2 T - K (2 T an integer: T a multiple of 1/2)
        lim2_.resize(o);
        for (size_t r = 0; r < o; ++r) lim2_[r] = int32_t(2 * second_[r]) - k_;
      }
      li.file_bytes += ctx.tensor_file_bytes(1);
      li.dense_bytes += o * sizeof(float);
    }
    li.layout = w_.layout();
    li.method = bits_out ? "xnor-threshold" : "xnor";
    li.exec_bytes = w_.bytes() + tap_ones_.size() * sizeof(int32_t);
    positions_ = size_t(g_.out_h) * g_.out_w;
  }

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const size_t in_words = size_t(g_.in_h) * g_.in_w * cw_;
    const size_t out_bytes = bits_out_ ? positions_ * words_of(g_.out_c) * 8 : positions_ * g_.out_c * 4;
    const uint64_t* x = static_cast<const uint64_t*>(in[0]);
    uint8_t* y = static_cast<uint8_t*>(out);
    const size_t chunks = (positions_ + kChunk - 1) / kChunk;
    const uint64_t ops = uint64_t(positions_) * g_.out_c * k_;
    if (ctx.pool && batch == 1 && chunks > 1 && ops >= 2 * kMinOpsPerTask) {
      if (bits_out_) std::memset(y, 0, out_bytes);
      ctx.pool->run(unsigned(std::min<size_t>(ctx.pool->threads(), chunks)), [&](unsigned i) {
        const unsigned parts = unsigned(std::min<size_t>(ctx.pool->threads(), chunks));
        for (size_t c = chunks * i / parts; c < chunks * (i + 1) / parts; ++c) chunk(ctx.isa, x, c * kChunk, y);
      });
      return;
    }
    auto samples = [&](size_t b0, size_t b1) {
      for (size_t b = b0; b < b1; ++b) {
        uint8_t* yb = y + b * out_bytes;
        if (bits_out_) std::memset(yb, 0, out_bytes);
        for (size_t p0 = 0; p0 < positions_; p0 += kChunk) chunk(ctx.isa, x + b * in_words, p0, yb);
      }
    };
    if (ctx.pool && batch > 1 && ops * batch >= 2 * kMinOpsPerTask) {
      const unsigned parts = unsigned(std::min<size_t>(ctx.pool->threads(), batch));
      ctx.pool->run(parts, [&](unsigned i) { samples(batch * i / parts, batch * (i + 1) / parts); });
    } else {
      samples(0, batch);
    }
  }

  uint64_t work() const override { return uint64_t(positions_) * g_.out_c * k_; }

 private:
  // Output positions [p0, p0 + kChunk) of one sample: patches, mismatch counts, the padding taken back, then
  // the level's epilogue (f32 through a transpose into the output planes; bits straight into the b1c pixels).
  void chunk(kernels::Isa isa, const uint64_t* x, size_t p0, uint8_t* y) const {
    const size_t n = std::min(kChunk, positions_ - p0), o = g_.out_c, pw = taps_ * cw_;
    uint64_t* patch = reinterpret_cast<uint64_t*>(kernels::thread_scratch(
        (n * pw * 8 + n * std::max<size_t>(o, 16) * 4 + n * 4 + n * taps_) / 4 + 16, kernels::Scratch::kBinary));
    int32_t* m = reinterpret_cast<int32_t*>(patch + n * pw);
    int32_t* kv = m + n * std::max<size_t>(o, 16);
    uint8_t* padded = reinterpret_cast<uint8_t*>(kv + n);  // per position and tap: 1 in the padding
    for (size_t i = 0; i < n; ++i) {
      const size_t oy = (p0 + i) / g_.out_w, ox = (p0 + i) % g_.out_w;
      size_t npad = 0;
      for (size_t ky = 0; ky < g_.kh; ++ky) {
        const int64_t iy = int64_t(oy * g_.stride_h + ky * g_.dilation_h) - g_.pad_top;
        for (size_t kx = 0; kx < g_.kw; ++kx) {
          const int64_t ix = int64_t(ox * g_.stride_w + kx * g_.dilation_w) - g_.pad_left;
          const size_t tap = ky * g_.kw + kx;
          uint64_t* dst = patch + i * pw + tap * cw_;
          const bool inside = iy >= 0 && iy < g_.in_h && ix >= 0 && ix < g_.in_w;
          padded[i * taps_ + tap] = !inside;
          npad += !inside;
          const uint64_t* src = x + (size_t(inside ? iy : 0) * g_.in_w + size_t(inside ? ix : 0)) * cw_;
          for (size_t j = 0; j < cw_; ++j) dst[j] = inside ? src[j] : 0;
        }
      }
      kv[i] = k_ - int32_t(npad * g_.in_c);  // the taps that count
    }
    w_.counts(isa, patch, pw, n, 0, o, m, o);
    for (size_t i = 0; i < n; ++i) {  // a zero word at a padded tap mismatched the weight's ones there
      if (kv[i] == k_) continue;
      for (size_t tap = 0; tap < taps_; ++tap) {
        if (!padded[i * taps_ + tap]) continue;
        const int32_t* ones = tap_ones_.data() + tap * o;
        for (size_t r = 0; r < o; ++r) m[i * o + r] -= ones[r];
      }
    }
    const kernels::BinaryKernels& k = kernels::binary_kernels(isa);
    if (bits_out_) {
      const size_t ow_words = words_of(o);
      k.dot_epilogue(m, n, o, kv, nullptr, nullptr, lim2_.data(), reinterpret_cast<uint64_t*>(y) + p0 * ow_words,
                     ow_words);
    } else {
      float* tile = reinterpret_cast<float*>(m);  // [n][o], in place
      k.dot_epilogue(m, n, o, kv, alpha_.data(), second_.data(), nullptr, tile, o);
      kernels::transpose_to_planes(isa, tile, n, o, reinterpret_cast<float*>(y) + p0, positions_);
    }
  }

  kernels::Conv2dGeometry g_;
  size_t taps_, cw_;
  int32_t k_;
  bool bits_out_;
  kernels::BinaryWeight w_;
  std::vector<int32_t> tap_ones_;
  std::vector<float> alpha_, second_;
  std::vector<int32_t> lim2_;  // bits output: 2 T - K per row
  size_t positions_ = 0;
};

// The weight as dense f32, alphas[o] * (bit ? +1 : -1), for the real-activation form.
DecodedTensor unpacked(const DecodedTensor& w) {
  DecodedTensor t;
  t.name = w.name;
  t.encoding = Encoding::dense_f32;
  t.shape = w.shape;
  const uint64_t cols = w.cols(), words = words_of(cols);
  t.values.resize(w.numel());
  for (uint64_t r = 0; r < w.rows(); ++r)
    for (uint64_t c = 0; c < cols; ++c)
      t.values[r * cols + c] = (w.bits[r * words + c / 64] >> (c % 64)) & 1 ? w.scales[r] : -w.scales[r];
  return t;
}

}  // namespace

StepSpec build_bconv2d(const BuildContext& ctx) {
  const BLinearAttrs a = bconv2d_binary_attrs(ctx.node.attrs);
  if (a.input == 1) {
    StepSpec s = build_conv2d_with(ctx, unpacked(ctx.tensor(0)));  // describes the binary tensor
    s.layer.method += "-unpacked";
    return s;
  }
  StepSpec s;
  ops::describe_weight(ctx, s.layer);
  s.step = std::make_unique<BinaryConvStep>(ctx, s.layer, a.output == 1);
  s.takes = {ValueType::b1c(uint32_t(ctx.in_shapes[0]->at(0)))};
  s.gives = a.output == 1 ? ValueType::b1c(ctx.out_shape[0]) : ValueType::f32();
  return s;
}

}  // namespace pyrt::runtime
