// pyruntime: the conversion steps the plan inserts where a value's producer and a reader disagree on its
// type (docs/RUNTIME.md): ids i32 -> f32, quantize f32 -> i8(s), dequantize i8(s) -> f32, requantize i8(s) -> i8(t), and to
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
    if (from_.dtype == DType::i32) {  // ids as numbers (exact below 2^24)
      const int32_t* x = static_cast<const int32_t*>(in[0]);
      float* y = static_cast<float*>(out);
      for (size_t i = 0; i < batch * n_; ++i) y[i] = static_cast<float>(x[i]);
      return;
    }
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
  // Where element (c, p) of a sample (flat [C, P] order, P pixels per channel) lies in a b1 or b1c sample of
  // n elements: b1 at flat bit c * P + p; b1c at bit c % 64 of word p * cw + c / 64. `channels` is C (1 views
  // a flat value as one channel).
  struct Bits {
    bool hwc;
    size_t channels, pixels, cw, words;
    Bits(const ValueType& t, uint64_t n, size_t c)
        : hwc(t.dtype == DType::b1c),
          channels(c),
          pixels(n / c),
          cw((c + 63) / 64),
          words(hwc ? pixels * cw : (n + 63) / 64) {}
    template <class F>  // f(i, word, bit) for every element i = c * P + p, channel-major
    void each(F f) const {
      for (size_t c = 0, i = 0; c < channels; ++c)
        for (size_t p = 0; p < pixels; ++p, ++i)
          hwc ? f(i, p * cw + c / 64, unsigned(c % 64)) : f(i, i / 64, unsigned(i % 64));
    }
  };

  // The channel count both layouts are indexed by: the b1c side's (b1c -> b1c is regroup()).
  size_t channels() const {
    if (from_.dtype == DType::b1c) return from_.channels;
    if (to_.dtype == DType::b1c) return to_.channels;
    return 1;
  }

  // To b1 / b1c: the sign (f32: x >= 0, NaN -1; i8: q >= 0, as scale * q has q's sign; bits: as they are).
  // From them: +-1 (i8: +-1 quantized with the reader's scale).
  void bits(const RunContext& ctx, const void* in, size_t batch, void* out) const {
    const bool from_bits = from_.dtype == DType::b1 || from_.dtype == DType::b1c;
    if (from_.dtype == DType::f32 && to_.dtype == DType::b1) {  // the vectorized sign
      kernels::binary_kernels(ctx.isa).binarize(static_cast<const float*>(in), n_, batch, n_, 1.0f, 0.0f,
                                                static_cast<uint64_t*>(out), (n_ + 63) / 64);
      return;
    }
    if (from_.dtype == DType::b1c && to_.dtype == DType::b1c) return regroup(in, batch, out);
    const size_t c = channels();
    const Bits from(from_, n_, c), to(to_, n_, c);
    const int8_t plus = to_.dtype == DType::i8 ? kernels::ref::quantize_one(1.0f, 1.0f / to_.scale) : 0;
    for (size_t b = 0; b < batch; ++b) {
      if (!from_bits) {  // f32 or i8 -> bits
        uint64_t* o = static_cast<uint64_t*>(out) + b * to.words;
        std::memset(o, 0, to.words * sizeof(uint64_t));
        if (from_.dtype == DType::f32) {
          const float* x = static_cast<const float*>(in) + b * n_;
          to.each([&](size_t i, size_t w, unsigned bit) { o[w] |= uint64_t(x[i] >= 0.0f) << bit; });
        } else {
          const int8_t* q = static_cast<const int8_t*>(in) + b * n_;
          to.each([&](size_t i, size_t w, unsigned bit) { o[w] |= uint64_t(q[i] >= 0) << bit; });
        }
        continue;
      }
      const uint64_t* w = static_cast<const uint64_t*>(in) + b * from.words;
      if (to_.dtype == DType::b1 || to_.dtype == DType::b1c) {  // b1 <-> b1c: the same (c, p) on both sides
        uint64_t* o = static_cast<uint64_t*>(out) + b * to.words;
        std::memset(o, 0, to.words * sizeof(uint64_t));
        for (size_t cc = 0, i = 0; cc < c; ++cc)
          for (size_t p = 0; p < from.pixels; ++p, ++i) {
            const bool v = from.hwc ? (w[p * from.cw + cc / 64] >> (cc % 64)) & 1 : (w[i / 64] >> (i % 64)) & 1;
            if (to.hwc) o[p * to.cw + cc / 64] |= uint64_t(v) << (cc % 64);
            else o[i / 64] |= uint64_t(v) << (i % 64);
          }
      } else if (to_.dtype == DType::f32) {
        float* y = static_cast<float*>(out) + b * n_;
        from.each([&](size_t i, size_t fw, unsigned fb) { y[i] = (w[fw] >> fb) & 1 ? 1.0f : -1.0f; });
      } else {
        int8_t* y = static_cast<int8_t*>(out) + b * n_;
        from.each([&](size_t i, size_t fw, unsigned fb) { y[i] = (w[fw] >> fb) & 1 ? plus : int8_t(-plus); });
      }
    }
  }

  // b1c of C channels -> b1c of C' channels (a reshape between two images): element by element.
  void regroup(const void* in, size_t batch, void* out) const {
    const Bits from(from_, n_, from_.channels), to(to_, n_, to_.channels);
    for (size_t b = 0; b < batch; ++b) {
      const uint64_t* w = static_cast<const uint64_t*>(in) + b * from.words;
      uint64_t* o = static_cast<uint64_t*>(out) + b * to.words;
      std::memset(o, 0, to.words * sizeof(uint64_t));
      for (size_t i = 0; i < n_; ++i) {
        const size_t fc = i / from.pixels, fp = i % from.pixels, tc = i / to.pixels, tp = i % to.pixels;
        o[tp * to.cw + tc / 64] |= ((w[fp * from.cw + fc / 64] >> (fc % 64)) & 1) << (tc % 64);
      }
    }
  }

  ValueType from_, to_;
  uint64_t n_;
};

}  // namespace

std::unique_ptr<Step> make_conversion(ValueType from, ValueType to, uint64_t elements) {
  PYRT_CHECK(from != to, PYRT_INTERNAL, "a conversion from a type to itself");
  PYRT_CHECK(from.dtype != DType::i32 || to.dtype == DType::f32, PYRT_UNSUPPORTED, "an i32 value (ids) read as ",
             dtype_name(to.dtype), ": only f32 readers and shape ops take ids");
  PYRT_CHECK(to.dtype != DType::i32, PYRT_UNSUPPORTED, "a ", dtype_name(from.dtype),
             " value where ids (i32) are needed");
  return std::make_unique<ConversionStep>(from, to, elements);
}

}  // namespace pyrt::runtime
