// pyruntime: the conversion steps the plan inserts where a value's producer and a reader disagree on its
// type (docs/RUNTIME.md): quantize f32 -> i8(s), dequantize i8(s) -> f32, requantize i8(s) -> i8(t), and to
// and from bit-packed signs (b1). The arithmetic is the reference's (kernels/ref/quantize.h; quantize and
// binarize vectorized at the ISA level, to the same bytes), so every ISA gives the same bits.
#include <cstring>

#include "common/error.h"
#include "kernels/binary/binary_kernels.h"
#include "kernels/int8/int8_layouts.h"
#include "kernels/ref/quantize.h"
#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

class ConversionStep final : public Step {
 public:
  ConversionStep(ValueType from, ValueType to, uint64_t n) : from_(from), to_(to), n_(n) {}

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    if (from_.dtype >= DType::b1 || to_.dtype >= DType::b1) return bits(ctx, in[0], batch, out);
    const size_t n = batch * n_;
    if (from_.dtype == DType::f32) {
      kernels::quantize_s8(ctx.isa, static_cast<const float*>(in[0]), n, 1.0f / to_.scale, static_cast<int8_t*>(out));
    } else if (to_.dtype == DType::f32) {
      kernels::ref::dequantize_s8(static_cast<const int8_t*>(in[0]), n, from_.scale, static_cast<float*>(out));
    } else {
      kernels::ref::requantize_s8(static_cast<const int8_t*>(in[0]), n, from_.scale, 1.0f / to_.scale,
                                  static_cast<int8_t*>(out));
    }
  }

  uint64_t work() const override { return n_; }

 private:
  // Where element i (flat [C, H, W] order) of a b1 or b1c sample lies.
  struct Bits {
    bool hwc;
    size_t pixels, cw, words;
    Bits(const ValueType& t, uint64_t n)
        : hwc(t.dtype == DType::b1c),
          pixels(hwc ? n / t.channels : 0),
          cw(hwc ? (t.channels + 63) / 64 : 0),
          words(hwc ? pixels * cw : (n + 63) / 64) {}
    size_t word(size_t i) const { return hwc ? (i % pixels) * cw + (i / pixels) / 64 : i / 64; }
    unsigned bit(size_t i) const { return unsigned(hwc ? (i / pixels) % 64 : i % 64); }
    bool get(const uint64_t* w, size_t i) const { return (w[word(i)] >> bit(i)) & 1; }
    void set(uint64_t* w, size_t i, bool v) const { w[word(i)] |= uint64_t(v) << bit(i); }
  };

  // To b1 / b1c: the sign (f32: x >= 0, NaN -1; i8: q >= 0, as scale * q has q's sign; bits: as they are).
  // From them: +-1 (i8: +-1 quantized with the reader's scale).
  void bits(const RunContext& ctx, const void* in, size_t batch, void* out) const {
    const bool from_bits = from_.dtype == DType::b1 || from_.dtype == DType::b1c;
    const bool to_bits = to_.dtype == DType::b1 || to_.dtype == DType::b1c;
    if (from_.dtype == DType::f32 && to_.dtype == DType::b1) {  // the vectorized sign
      kernels::binary_kernels(ctx.isa).binarize(static_cast<const float*>(in), n_, batch, n_, 1.0f, 0.0f,
                                                static_cast<uint64_t*>(out), (n_ + 63) / 64);
      return;
    }
    if (to_bits) {
      const Bits to(to_, n_);
      uint64_t* o = static_cast<uint64_t*>(out);
      std::memset(o, 0, batch * to.words * sizeof(uint64_t));
      for (size_t b = 0; b < batch; ++b, o += to.words) {
        if (from_.dtype == DType::f32) {
          const float* x = static_cast<const float*>(in) + b * n_;
          for (size_t i = 0; i < n_; ++i) to.set(o, i, x[i] >= 0.0f);
        } else if (from_.dtype == DType::i8) {
          const int8_t* q = static_cast<const int8_t*>(in) + b * n_;
          for (size_t i = 0; i < n_; ++i) to.set(o, i, q[i] >= 0);
        } else {
          const Bits from(from_, n_);
          const uint64_t* w = static_cast<const uint64_t*>(in) + b * from.words;
          for (size_t i = 0; i < n_; ++i) to.set(o, i, from.get(w, i));
        }
      }
      return;
    }
    if (!from_bits) return;
    const Bits from(from_, n_);
    const int8_t plus = to_.dtype == DType::i8 ? kernels::ref::quantize_one(1.0f, 1.0f / to_.scale) : 0;
    for (size_t b = 0; b < batch; ++b) {
      const uint64_t* w = static_cast<const uint64_t*>(in) + b * from.words;
      for (size_t i = 0; i < n_; ++i) {
        const bool set = from.get(w, i);
        if (to_.dtype == DType::f32) static_cast<float*>(out)[b * n_ + i] = set ? 1.0f : -1.0f;
        else static_cast<int8_t*>(out)[b * n_ + i] = set ? plus : int8_t(-plus);
      }
    }
  }

  ValueType from_, to_;
  uint64_t n_;
};

}  // namespace

std::unique_ptr<Step> make_conversion(ValueType from, ValueType to, uint64_t elements) {
  PYRT_CHECK(from != to, PYRT_INTERNAL, "a conversion from a type to itself");
  return std::make_unique<ConversionStep>(from, to, elements);
}

}  // namespace pyrt::runtime
