// pyruntime: the f32 transcendental kernels (kernels/ref/vector_math.h), Advanced SIMD: the algorithms of
// x86/vector_math_avx2.cpp (Cephes exp with 2^n applied in two exponent-built factors, Numerical Recipes'
// erfc, Cephes tanh; the accuracy notes are in x86/vector_math_avx512.cpp) in 4 lanes with vfmaq_f32. The
// operations are the AVX2 kernel's one for one (vdivq_f32 is correctly rounded, vrndnq_f32 rounds half to
// even as _MM_FROUND_TO_NEAREST_INT): on [-20, 20] every 1e-4 the five activations give the AVX2 kernel's
// bits (measured; the compilers may still fuse a product into the next sum differently elsewhere), the worst
// error 0.03 of the tolerance. softmax sums in two 4-lane float accumulators (AVX2: 8-lane), so its last bit
// may differ from AVX2's. vminq_f32 / vmaxq_f32 return NaN when either operand is NaN (x86 returns the second
// operand: the kernels put x second, so both pass it).
// Tails are copied into a zero-padded 4-float buffer and go through the same arithmetic, so a result does not
// depend on its position in a call.
#include <arm_neon.h>

#include <cmath>

#include "kernels/arm/neon_util.h"
#include "kernels/ref/vector_math.h"

namespace pyrt::kernels {
namespace {  // internal linkage: see the note at the top of neon_util.h

using neon::copy_tail;
using neon::keep_lanes;

inline float32x4_t set1(float v) { return vdupq_n_f32(v); }

// a + b * c, one rounding (the argument order of _mm256_fmadd_ps(b, c, a)).
inline float32x4_t fma(float32x4_t a, float32x4_t b, float32x4_t c) { return vfmaq_f32(a, b, c); }

// exp(x), Cephes expf: n = round(x log2 e), r = x - n ln2 (ln2 in two parts, n * C1 exact), e^r = 1 + r + r^2
// P(r), then 2^n as 2^n1 * 2^n2 with n1 = n >> 1, n2 = n - n1 (both in [-80, 64] for x in [-110, 89], so both
// are normal floats built from exponent bits): p * 2^n1 is exact and the second product rounds once, into the
// subnormals or to inf as it should. NaN: passes the clamp; vcvtnq gives 0 for it, and p is NaN.
inline float32x4_t exp_ps(float32x4_t x) {
  x = vmaxq_f32(set1(-110.0f), vminq_f32(set1(89.0f), x));
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, set1(1.44269504088896341f)));
  float32x4_t r = vfmsq_f32(x, n, set1(0.693359375f));  // x - n C1
  r = vfmsq_f32(r, n, set1(-2.12194440e-4f));           // - n C2
  float32x4_t p = set1(1.9875691500e-4f);
  p = fma(set1(1.3981999507e-3f), p, r);
  p = fma(set1(8.3334519073e-3f), p, r);
  p = fma(set1(4.1665795894e-2f), p, r);
  p = fma(set1(1.6666665459e-1f), p, r);
  p = fma(set1(5.0000001201e-1f), p, r);
  p = vaddq_f32(fma(r, p, vmulq_f32(r, r)), set1(1.0f));
  const int32x4_t ni = vcvtnq_s32_f32(n);
  const int32x4_t n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);  // arithmetic shift: floor(n / 2)
  const int32x4_t bias = vdupq_n_s32(127);
  const float32x4_t f1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
  const float32x4_t f2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
  return vmulq_f32(vmulq_f32(p, f1), f2);
}

// 0.5 x erfc(-x / sqrt 2): erfc(z), z = |x| / sqrt 2, by erfcc: t = 1 / (1 + z / 2), erfc(z) = t exp(-z^2 +
// P(t)); 0.5 erfc(-z) = 1 - 0.5 erfc(z) for x >= 0 (no cancellation for either sign). +inf: t = 0, x * 1;
// -inf: -inf * 0 = NaN (as torch); -0: -0 * 0.5.
inline float32x4_t gelu_erf_ps(float32x4_t x) {
  const float32x4_t one = set1(1.0f), half = set1(0.5f);
  const float32x4_t z = vmulq_f32(vabsq_f32(x), set1(0.70710678118654752f));
  const float32x4_t t = vdivq_f32(one, fma(one, z, half));
  float32x4_t p = set1(0.17087277f);
  p = fma(set1(-0.82215223f), p, t);
  p = fma(set1(1.48851587f), p, t);
  p = fma(set1(-1.13520398f), p, t);
  p = fma(set1(0.27886807f), p, t);
  p = fma(set1(-0.18628806f), p, t);
  p = fma(set1(0.09678418f), p, t);
  p = fma(set1(0.37409196f), p, t);
  p = fma(set1(1.00002368f), p, t);
  p = fma(set1(-1.26551223f), p, t);
  const float32x4_t h = vmulq_f32(vmulq_f32(t, half), exp_ps(vfmsq_f32(p, z, z)));  // 0.5 erfc(z)
  const uint32x4_t neg = vcltq_f32(x, vdupq_n_f32(0.0f));                           // false for NaN and -0
  return vmulq_f32(x, vbslq_f32(neg, h, vsubq_f32(one, h)));
}

// x / (1 + exp(x (c + k x^2))), c = -2 sqrt(2 / pi), k = c 0.044715: 0.5 x (1 + tanh(u)) without the
// cancellation of 1 + tanh for negative x.
inline float32x4_t gelu_tanh_ps(float32x4_t x) {
  const float32x4_t a = fma(set1(-1.5957691216057308f), vmulq_f32(x, x), set1(-0.0713548162726002527f));
  return vdivq_f32(x, vaddq_f32(set1(1.0f), exp_ps(vmulq_f32(a, x))));
}

inline float32x4_t sigmoid_ps(float32x4_t x) {
  const float32x4_t one = set1(1.0f);
  return vdivq_f32(one, vaddq_f32(one, exp_ps(vsubq_f32(vdupq_n_f32(0.0f), x))));
}

inline float32x4_t silu_ps(float32x4_t x) {  // -inf: -inf / inf = NaN, as torch
  return vdivq_f32(x, vaddq_f32(set1(1.0f), exp_ps(vsubq_f32(vdupq_n_f32(0.0f), x))));
}

// Cephes tanhf on |x|: |x| < 0.625 by the odd polynomial, else 1 - 2 / (1 + exp(2|x|)); the sign of x ORed
// back (so -0 gives -0 and NaN stays NaN).
inline float32x4_t tanh_ps(float32x4_t x) {
  const float32x4_t one = set1(1.0f);
  const float32x4_t a = vabsq_f32(x);
  const float32x4_t z = vmulq_f32(a, a);
  float32x4_t p = set1(-5.70498872745e-3f);
  p = fma(set1(2.06390887954e-2f), p, z);
  p = fma(set1(-5.37397155531e-2f), p, z);
  p = fma(set1(1.33314422036e-1f), p, z);
  p = fma(set1(-3.33332819422e-1f), p, z);
  const float32x4_t small = fma(a, vmulq_f32(p, z), a);
  const float32x4_t e = exp_ps(vaddq_f32(a, a));
  const float32x4_t large = vsubq_f32(one, vdivq_f32(set1(2.0f), vaddq_f32(one, e)));
  const float32x4_t t = vbslq_f32(vcltq_f32(a, set1(0.625f)), small, large);
  const uint32x4_t sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x80000000u));
  return vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(t), sign));
}

// y[i] = f(x[i]): 4 at a time, the last 1..3 through a zero-padded buffer (the same f on the same lanes).
template <class F>
inline void map(F f, const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, f(vld1q_f32(x + i)));
  if (i < n) {
    float buf[4];
    copy_tail(x + i, n - i, buf, 4);
    vst1q_f32(buf, f(vld1q_f32(buf)));
    for (size_t j = 0; i + j < n; ++j) y[i + j] = buf[j];
  }
}

// v with lanes [m, 4) set to `fill`.
inline float32x4_t fill_lanes(float32x4_t v, size_t m, float fill) {
  return vbslq_f32(neon::lane_mask(static_cast<ptrdiff_t>(m)), v, vdupq_n_f32(fill));
}

// The 4 floats of v widened to double and added (or squared and added) into a (lanes 0, 1) and b (2, 3).
inline void add_pd4(float64x2_t& a, float64x2_t& b, float32x4_t v) {
  a = vaddq_f64(a, vcvt_f64_f32(vget_low_f32(v)));
  b = vaddq_f64(b, vcvt_high_f64_f32(v));
}
inline void fma_sq_pd4(float64x2_t& a, float64x2_t& b, float32x4_t v) {
  const float64x2_t lo = vcvt_f64_f32(vget_low_f32(v)), hi = vcvt_high_f64_f32(v);
  a = vfmaq_f64(a, lo, lo);
  b = vfmaq_f64(b, hi, hi);
}

// The last n - i (1..3) floats of x at i, zero-padded.
inline float32x4_t load_tail(const float* x, size_t i, size_t n) {
  float buf[4];
  copy_tail(x + i, n - i, buf, 4);
  return vld1q_f32(buf);
}
inline void store_tail(float* y, size_t i, size_t n, float32x4_t v) {
  float buf[4];
  vst1q_f32(buf, v);
  for (size_t j = 0; i + j < n; ++j) y[i + j] = buf[j];
}

// max, then e = exp(x - max) stored and summed in float (two accumulators), then scaled by 1 / sum. NaN or +inf
// in the row, or all -inf: the max is NaN / inf / -inf, x - max is NaN somewhere, and the sum is NaN.
void softmax_row(const float* x, float* y, size_t n) {
  const float32x4_t ninf = set1(-__builtin_inff());
  float32x4_t m0 = ninf, m1 = ninf;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    m0 = vmaxq_f32(m0, vld1q_f32(x + i));
    m1 = vmaxq_f32(m1, vld1q_f32(x + i + 4));
  }
  for (; i + 4 <= n; i += 4) m0 = vmaxq_f32(m0, vld1q_f32(x + i));
  if (i < n) m0 = vmaxq_f32(m0, fill_lanes(load_tail(x, i, n), n - i, -__builtin_inff()));
  const float32x4_t m = vdupq_n_f32(vmaxvq_f32(vmaxq_f32(m0, m1)));
  float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
  for (i = 0; i + 8 <= n; i += 8) {
    const float32x4_t e0 = exp_ps(vsubq_f32(vld1q_f32(x + i), m));
    const float32x4_t e1 = exp_ps(vsubq_f32(vld1q_f32(x + i + 4), m));
    vst1q_f32(y + i, e0);
    vst1q_f32(y + i + 4, e1);
    s0 = vaddq_f32(s0, e0);
    s1 = vaddq_f32(s1, e1);
  }
  for (; i + 4 <= n; i += 4) {
    const float32x4_t e = exp_ps(vsubq_f32(vld1q_f32(x + i), m));
    vst1q_f32(y + i, e);
    s0 = vaddq_f32(s0, e);
  }
  if (i < n) {  // lanes past the row: exp(0 - m) cleared (bitwise: it may be inf or NaN)
    const float32x4_t e = exp_ps(vsubq_f32(load_tail(x, i, n), m));
    store_tail(y, i, n, e);
    s0 = vaddq_f32(s0, keep_lanes(e, static_cast<ptrdiff_t>(n - i)));
  }
  const float32x4_t inv = vdupq_n_f32(1.0f / neon::hsum2(s0, s1));
  for (i = 0; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(vld1q_f32(y + i), inv));
  if (i < n) store_tail(y, i, n, vmulq_f32(load_tail(y, i, n), inv));
}

// The mean and the centered (biased) variance in double, four double accumulators per pass; the output
// (x - mean_hi - mean_lo) * inv [* w] [+ b] in float, mean split into two floats so that the centering keeps
// the bits a float mean would lose.
template <bool kW, bool kB>
void layer_norm_row(const float* x, float* y, size_t n, const float* w, const float* b, float eps) {
  float64x2_t a0 = vdupq_n_f64(0.0), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    add_pd4(a0, a1, vld1q_f32(x + i));
    add_pd4(a2, a3, vld1q_f32(x + i + 4));
  }
  for (; i + 4 <= n; i += 4) add_pd4(a0, a1, vld1q_f32(x + i));
  if (i < n) add_pd4(a0, a1, load_tail(x, i, n));  // zeros past the row
  const double mean = vaddvq_f64(vaddq_f64(vaddq_f64(a0, a1), vaddq_f64(a2, a3))) / double(n);
  const float mean_hi = static_cast<float>(mean);
  const float32x4_t mh = set1(mean_hi), ml = set1(static_cast<float>(mean - double(mean_hi)));
  auto center = [&](float32x4_t v) { return vsubq_f32(vsubq_f32(v, mh), ml); };
  a0 = a1 = a2 = a3 = vdupq_n_f64(0.0);
  for (i = 0; i + 8 <= n; i += 8) {
    fma_sq_pd4(a0, a1, center(vld1q_f32(x + i)));
    fma_sq_pd4(a2, a3, center(vld1q_f32(x + i + 4)));
  }
  for (; i + 4 <= n; i += 4) fma_sq_pd4(a0, a1, center(vld1q_f32(x + i)));
  if (i < n) fma_sq_pd4(a0, a1, keep_lanes(center(load_tail(x, i, n)), static_cast<ptrdiff_t>(n - i)));
  const double var = vaddvq_f64(vaddq_f64(vaddq_f64(a0, a1), vaddq_f64(a2, a3))) / double(n);
  const float32x4_t inv = set1(static_cast<float>(1.0 / std::sqrt(var + double(eps))));
  // w and b read only where present (they may be null); wv / bv: their 4 values at the same position.
  auto out = [&](float32x4_t v, float32x4_t wv, float32x4_t bv) {
    float32x4_t r = vmulq_f32(center(v), inv);
    if constexpr (kW && kB) r = fma(bv, r, wv);
    if constexpr (kW && !kB) r = vmulq_f32(r, wv);
    if constexpr (!kW && kB) r = vaddq_f32(r, bv);
    return r;
  };
  const float32x4_t zero = vdupq_n_f32(0.0f);
  for (i = 0; i + 4 <= n; i += 4)
    vst1q_f32(y + i, out(vld1q_f32(x + i), kW ? vld1q_f32(w + i) : zero, kB ? vld1q_f32(b + i) : zero));
  if (i < n)
    store_tail(y, i, n, out(load_tail(x, i, n), kW ? load_tail(w, i, n) : zero, kB ? load_tail(b, i, n) : zero));
}

}  // namespace

void pyrt_f32_gelu_erf__neon(const float* x, float* y, size_t n) { map(gelu_erf_ps, x, y, n); }
void pyrt_f32_gelu_tanh__neon(const float* x, float* y, size_t n) { map(gelu_tanh_ps, x, y, n); }
void pyrt_f32_silu__neon(const float* x, float* y, size_t n) { map(silu_ps, x, y, n); }
void pyrt_f32_sigmoid__neon(const float* x, float* y, size_t n) { map(sigmoid_ps, x, y, n); }
void pyrt_f32_tanh__neon(const float* x, float* y, size_t n) { map(tanh_ps, x, y, n); }

void pyrt_f32_leaky_relu__neon(const float* x, float* y, size_t n, float slope) {
  const float32x4_t s = set1(slope);
  map([s](float32x4_t v) {  // x >= 0 (false for NaN) keeps x, else slope x
    return vbslq_f32(vcgeq_f32(v, vdupq_n_f32(0.0f)), v, vmulq_f32(v, s));
  }, x, y, n);
}

void pyrt_f32_softmax_rows__neon(const float* x, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) softmax_row(x + r * cols, y + r * cols, cols);
}

void pyrt_f32_layer_norm_rows__neon(const float* x, float* y, size_t rows, size_t n, const float* w, const float* b,
                                    float eps) {
  auto row = w ? (b ? layer_norm_row<true, true> : layer_norm_row<true, false>)
               : (b ? layer_norm_row<false, true> : layer_norm_row<false, false>);
  for (size_t r = 0; r < rows; ++r) row(x + r * n, y + r * n, n, w, b, eps);
}

}  // namespace pyrt::kernels
