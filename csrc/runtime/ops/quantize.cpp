// pyruntime: the conversion steps the plan inserts where a value's producer and a reader disagree on its
// type (docs/RUNTIME.md): quantize f32 -> i8(s), dequantize i8(s) -> f32, requantize i8(s) -> i8(t). The
// arithmetic is the reference's (kernels/ref/quantize.h; quantize vectorized at the ISA level, to the same
// bytes), so every ISA gives the same bits.
#include "common/error.h"
#include "kernels/int8/int8_layouts.h"
#include "kernels/ref/quantize.h"
#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

class ConversionStep final : public Step {
 public:
  ConversionStep(ValueType from, ValueType to, uint64_t n) : from_(from), to_(to), n_(n) {}

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
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
  ValueType from_, to_;
  uint64_t n_;
};

}  // namespace

std::unique_ptr<Step> make_conversion(ValueType from, ValueType to, uint64_t elements) {
  PYRT_CHECK(from != to, PYRT_INTERNAL, "a conversion from a type to itself");
  return std::make_unique<ConversionStep>(from, to, elements);
}

}  // namespace pyrt::runtime
