// pyruntime: the elementwise activations of format version 5 (f32 in, f32 out): gelu (erf or tanh form, as
// torch.nn.functional.gelu), silu, sigmoid, tanh and leaky_relu. A NaN stays NaN; +-inf give torch's limits.
//
// Numerics: gelu's 1 + erf(z) and 1 + tanh(u) cancel for negative x, so they are evaluated without the
// cancellation, in double, and rounded once: 1 + erf(z) = erfc(-z), and 0.5 * (1 + tanh(u)) = 1 / (1 +
// exp(-2u)). sigmoid and silu divide by 1 + expf(-x) (no cancellation: both terms are positive); tanh is below.
// Each is within a few ulp of the exact value.
#include <cmath>

#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

constexpr double kSqrtHalf = 0.70710678118654752440;    // 1 / sqrt(2)
constexpr double kSqrtTwoOverPi = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;

inline float gelu_erf(float x) {
  const double d = x;
  return static_cast<float>(0.5 * d * std::erfc(-d * kSqrtHalf));
}

inline float gelu_tanh(float x) {
  // 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)); at x = -inf that is -inf / inf = NaN, as torch's -inf * 0.
  const double d = x;
  const double u = kSqrtTwoOverPi * (d + kGeluCubic * d * d * d);
  return static_cast<float>(d / (1.0 + std::exp(-2.0 * u)));
}

// tanh through one double exp (glibc's tanhf is about 3x slower): (e - 1) / (e + 1) with e = exp(2|x|) loses at
// most ~1e-12 relatively to the cancellation in e - 1 for |x| >= 2^-13; below, tanh(x) = x (1 - x^2 / 3 ...)
// rounds to x; above 10 it rounds to +-1. Over every float, 12 results are 1 ulp from the correctly rounded
// tanh and the rest equal it. NaN: the comparisons are false and exp(NaN) is NaN.
inline float tanh_f32(float x) {
  const float a = std::fabs(x);
  if (a < 0x1p-13f) return x;
  if (a > 10.0f) return std::copysign(1.0f, x);
  const double e = std::exp(2.0 * double(a));
  return std::copysign(static_cast<float>((e - 1.0) / (e + 1.0)), x);
}

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }  // -inf: -inf / inf = NaN, as torch

template <class F>
void apply(F f, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

class ActivationStep final : public Step {
 public:
  ActivationStep(Op op, uint64_t elements, uint32_t approximate, float slope)
      : op_(op), n_(elements), approximate_(approximate), slope_(slope) {}

  void run(const RunContext&, const void* const* in, size_t batch, void* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out);
    const size_t n = batch * n_;
    switch (op_) {
      case Op::gelu:
        if (approximate_) return apply(gelu_tanh, x, y, n);
        return apply(gelu_erf, x, y, n);
      case Op::silu: return apply(silu, x, y, n);
      case Op::sigmoid: return apply(sigmoid, x, y, n);
      case Op::tanh: return apply(tanh_f32, x, y, n);
      default: {  // leaky_relu: the comparison is false for NaN, and slope * NaN is NaN
        const float slope = slope_;
        for (size_t i = 0; i < n; ++i) y[i] = x[i] >= 0.0f ? x[i] : slope * x[i];
      }
    }
  }

  uint64_t work() const override { return n_; }

 private:
  Op op_;
  uint64_t n_;             // elements per sample
  uint32_t approximate_;   // gelu: 0 = erf, 1 = tanh
  float slope_;            // leaky_relu
};

}  // namespace

StepSpec build_activation(const BuildContext& ctx) {
  const Op op = ctx.node.op;
  StepSpec s;
  s.step = std::make_unique<ActivationStep>(op, shape_numel(ctx.out_shape), op == Op::gelu ? ctx.node.attrs[0] : 0u,
                                            op == Op::leaky_relu ? f32_attr(ctx.node.attrs, 0) : 0.0f);
  s.takes = {ValueType::f32()};
  s.gives = ValueType::f32();
  return s;
}

}  // namespace pyrt::runtime
