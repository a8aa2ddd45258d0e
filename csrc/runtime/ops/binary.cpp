// pyruntime: the binary op family (FORMAT.md 2.6, docs/RUNTIME.md "Binary numerics"): `sign` gives bit-packed
// signs (b1); `blinear` with input 0 takes b1 (the plan binarizes an f32 or i8 producer) and gives f32
// (output 0: fma(K - 2 m, alpha, bias)) or b1 (output 1: popcount thresholds), the XNOR GEMM of
// kernels/binary; with input 1 it takes f32 and adds or subtracts each input (binary weights, real
// activations). The integer paths are exact, so every ISA and thread split gives the same bits.
#include <algorithm>
#include <cstring>

#include "kernels/binary/binary_weight.h"
#include "runtime/ops/weights.h"

namespace pyrt::runtime {
namespace {

constexpr size_t kMinBytesPerTask = 64 * 1024;   // a row split needs this much weight (as ops/linear.cpp)
constexpr uint64_t kMinOpsPerTask = 4096 * 1024;  // a sample split needs this many bit (or f32) operations

size_t words_of(uint64_t n) { return (n + 63) / 64; }

// The sign of a flat value gives b1; of an image [C, H, W], b1c (channels-last, what bconv2d reads).
class SignStep final : public Step {
 public:
  SignStep(const SignAttrs& a, uint64_t n, uint32_t channels) : a_(a), n_(n), c_(channels) {}
  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    uint64_t* y = static_cast<uint64_t*>(out);
    if (c_ == 0) {
      kernels::binary_kernels(ctx.isa).binarize(x, n_, batch, n_, a_.scale, a_.shift, y, words_of(n_));
      return;
    }
    kernels::binary_kernels(ctx.isa).binarize_hwc(x, batch, c_, n_ / c_, a_.scale, a_.shift, y);
  }
  uint64_t work() const override { return n_; }

 private:
  SignAttrs a_;
  uint64_t n_;
  uint32_t c_;  // channels of an image (b1c output), 0 for b1
};

class BinaryLinearStep final : public Step {
 public:
  using Mode = kernels::BinaryWeight::Mode;
  BinaryLinearStep(const BuildContext& ctx, LayerInfo& li, Mode mode)
      : w_(ctx.tensor(0), mode, ctx.node.tensors.size() == 2 ? &ctx.tensor(1) : nullptr) {
    if (ctx.node.tensors.size() == 2) {
      li.file_bytes += ctx.tensor_file_bytes(1);
      li.dense_bytes += w_.rows() * sizeof(float);
    }
    li.layout = w_.layout();
    li.method = mode == Mode::real_input ? "add-sub" : mode == Mode::xnor_bits ? "xnor-threshold" : "xnor";
    li.exec_bytes = w_.bytes();
  }

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const Mode mode = w_.mode();
    const size_t ldx = mode == Mode::real_input ? w_.cols() : w_.words();
    const size_t in_bytes = mode == Mode::real_input ? w_.cols() * sizeof(float) : w_.words() * sizeof(uint64_t);
    const size_t ldy = mode == Mode::xnor_bits ? words_of(w_.rows()) * 8 : w_.rows();  // bytes or floats
    const size_t out_bytes = mode == Mode::xnor_bits ? ldy : ldy * sizeof(float);
    const uint8_t* x = static_cast<const uint8_t*>(in[0]);
    uint8_t* y = static_cast<uint8_t*>(out);
    if (mode == Mode::xnor_bits) {  // the bytes past the last row block up to the word's end stay zero
      const size_t written = (w_.rows() + 7) / 8;
      for (size_t b = 0; b < batch; ++b) std::memset(y + b * ldy + written, 0, ldy - written);
    }
    if (ctx.pool && !splits_.empty()) {
      ctx.pool->run(unsigned(splits_.size() - 1), [&](unsigned i) {
        w_.gemm(ctx.isa, x, ldx, batch, splits_[i], splits_[i + 1], y, ldy);
      });
    } else if (ctx.pool && batch > 1 && work() * batch >= 2 * kMinOpsPerTask) {
      const unsigned parts = unsigned(std::min<size_t>(ctx.pool->threads(), batch));
      ctx.pool->run(parts, [&](unsigned i) {
        const size_t s0 = batch * i / parts, s1 = batch * (i + 1) / parts;
        w_.gemm(ctx.isa, x + s0 * in_bytes, ldx, s1 - s0, 0, w_.rows(), y + s0 * out_bytes, ldy);
      });
    } else {
      w_.gemm(ctx.isa, x, ldx, batch, 0, w_.rows(), y, ldy);
    }
  }

  uint64_t work() const override { return uint64_t(w_.rows()) * w_.cols(); }

  uint32_t set_threads(unsigned threads) override {
    splits_.clear();
    const unsigned parts = unsigned(std::min<size_t>(threads, w_.bytes() / kMinBytesPerTask));
    if (threads > 1 && parts >= 2) splits_ = w_.row_splits(parts);
    if (splits_.size() < 3) splits_.clear();
    return splits_.empty() ? 1 : uint32_t(splits_.size() - 1);
  }

 private:
  kernels::BinaryWeight w_;
  std::vector<uint32_t> splits_;
};

}  // namespace

StepSpec build_sign(const BuildContext& ctx) {
  StepSpec s;
  const uint32_t channels = ctx.out_shape.size() == 3 ? ctx.out_shape[0] : 0;
  s.step = std::make_unique<SignStep>(sign_attrs(ctx.node.attrs), shape_numel(ctx.out_shape), channels);
  s.takes = {ValueType::f32()};
  s.gives = channels ? ValueType::b1c(channels) : ValueType::b1();
  return s;
}

StepSpec build_blinear(const BuildContext& ctx) {
  const BLinearAttrs a = blinear_attrs(ctx.node.attrs);
  using Mode = kernels::BinaryWeight::Mode;
  const Mode mode = a.input == 1 ? Mode::real_input : a.output == 1 ? Mode::xnor_bits : Mode::xnor_real;
  StepSpec s;
  ops::describe_weight(ctx, s.layer);
  s.step = std::make_unique<BinaryLinearStep>(ctx, s.layer, mode);
  s.takes = {mode == Mode::real_input ? ValueType::f32() : ValueType::b1()};
  s.gives = mode == Mode::xnor_bits ? ValueType::b1() : ValueType::f32();
  return s;
}

}  // namespace pyrt::runtime
