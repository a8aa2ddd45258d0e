// pyruntime: the scalar references of kernels/ref/vector_math.h and the per-ISA tables.
//
// Numerics: gelu's 1 + erf(z) and 1 + tanh(u) cancel for negative x, so they are evaluated without the
// cancellation, in double, and rounded once: 1 + erf(z) = erfc(-z), and 0.5 * (1 + tanh(u)) = 1 / (1 +
// exp(-2u)). sigmoid and silu divide by 1 + expf(-x) (no cancellation: both terms are positive). softmax
// exponentiates in float and sums in double; layer_norm takes the mean and the variance in double and rounds
// each output once. Each is within a few ulp of the exact value.
#include "kernels/ref/vector_math.h"

#include <algorithm>
#include <cmath>

namespace pyrt::kernels {
namespace {

constexpr double kSqrtHalf = 0.70710678118654752440;       // 1 / sqrt(2)
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

void softmax_row(const float* x, float* y, size_t n) {
  float m = x[0];
  for (size_t i = 1; i < n; ++i) m = std::max(m, x[i]);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    y[i] = std::exp(x[i] - m);
    sum += y[i];
  }
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(double(y[i]) / sum);
}

void layer_norm_row(const float* x, float* y, size_t n, const float* w, const float* b, float eps) {
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / double(n);
  double ss = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(x[i]) - mean;
    ss += d * d;
  }
  const double inv = 1.0 / std::sqrt(ss / double(n) + double(eps));
  if (w && b) {
    for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>((double(x[i]) - mean) * inv * w[i] + b[i]);
  } else if (w) {
    for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>((double(x[i]) - mean) * inv * w[i]);
  } else if (b) {
    for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>((double(x[i]) - mean) * inv + b[i]);
  } else {
    for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>((double(x[i]) - mean) * inv);
  }
}

}  // namespace

void pyrt_f32_gelu_erf__ref(const float* x, float* y, size_t n) { apply(gelu_erf, x, y, n); }
void pyrt_f32_gelu_tanh__ref(const float* x, float* y, size_t n) { apply(gelu_tanh, x, y, n); }
void pyrt_f32_silu__ref(const float* x, float* y, size_t n) { apply(silu, x, y, n); }
void pyrt_f32_sigmoid__ref(const float* x, float* y, size_t n) { apply(sigmoid, x, y, n); }
void pyrt_f32_tanh__ref(const float* x, float* y, size_t n) { apply(tanh_f32, x, y, n); }

void pyrt_f32_leaky_relu__ref(const float* x, float* y, size_t n, float slope) {
  for (size_t i = 0; i < n; ++i) y[i] = x[i] >= 0.0f ? x[i] : slope * x[i];  // NaN: false, and slope * NaN is NaN
}

void pyrt_f32_softmax_rows__ref(const float* x, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) softmax_row(x + r * cols, y + r * cols, cols);
}

void pyrt_f32_layer_norm_rows__ref(const float* x, float* y, size_t rows, size_t n, const float* w, const float* b,
                                   float eps) {
  for (size_t r = 0; r < rows; ++r) layer_norm_row(x + r * n, y + r * n, n, w, b, eps);
}

#define PYRT_MATH_KERNELS_TABLE(sfx)                                                                              \
  MathKernels {                                                                                                   \
    pyrt_f32_gelu_erf__##sfx, pyrt_f32_gelu_tanh__##sfx, pyrt_f32_silu__##sfx, pyrt_f32_sigmoid__##sfx,           \
        pyrt_f32_tanh__##sfx, pyrt_f32_leaky_relu__##sfx, pyrt_f32_softmax_rows__##sfx,                           \
        pyrt_f32_layer_norm_rows__##sfx                                                                           \
  }

const MathKernels& math_kernels(Isa isa) {
  static const MathKernels ref = PYRT_MATH_KERNELS_TABLE(ref);
#if PYRT_HAVE_X86_KERNELS
  static const MathKernels avx2 = PYRT_MATH_KERNELS_TABLE(avx2);
  static const MathKernels avx512 = PYRT_MATH_KERNELS_TABLE(avx512);
  if (isa >= Isa::avx512) return avx512;
  if (isa >= Isa::avx2) return avx2;
#elif PYRT_HAVE_ARM_KERNELS
  static const MathKernels neon = PYRT_MATH_KERNELS_TABLE(neon);
  if (isa >= Isa::neon) return neon;
#else
  (void)isa;
#endif
  return ref;
}

}  // namespace pyrt::kernels
