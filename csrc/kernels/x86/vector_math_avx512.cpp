// pyruntime: the f32 transcendental kernels (kernels/ref/vector_math.h), AVX-512: 16 lanes, masked tails
// through the same arithmetic, so a result does not depend on its position. vector_math_avx2.cpp is the same
// algorithm in 8 lanes; the accuracy notes are here.
#include <cmath>

#include "kernels/ref/vector_math.h"
#include "kernels/x86/avx512_util.h"

namespace pyrt::kernels {
namespace {  // internal linkage: see the note at the top of avx2_util.h

using avx512::tail_mask;

inline __m512 set1(float v) { return _mm512_set1_ps(v); }

// exp(x), Cephes expf (~1 ulp): n = round(x log2 e), r = x - n ln2 with ln2 split in two (n * C1 exact),
// e^r = 1 + r + r^2 P(r) on |r| <= ln2 / 2, then vscalefps multiplies by 2^n with correct rounding into the
// subnormals and overflow to inf. x is clamped to [-110, 89] first so that r stays small (exp(-110) rounds to
// 0 and exp(89) to inf either way); vminps / vmaxps return their second operand when one is NaN, so a NaN x
// passes the clamp and gives NaN.
inline __m512 exp_ps(__m512 x) {
  x = _mm512_max_ps(set1(-110.0f), _mm512_min_ps(set1(89.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, set1(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, set1(0.693359375f), x);  // x - n C1
  r = _mm512_fnmadd_ps(n, set1(-2.12194440e-4f), r);      // - n C2
  __m512 p = set1(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, set1(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, set1(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, set1(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, set1(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, set1(5.0000001201e-1f));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), set1(1.0f));
  return _mm512_scalef_ps(p, n);
}

inline __m512 abs_ps(__m512 x) { return _mm512_abs_ps(x); }

// 0.5 x erfc(-x / sqrt 2). erfc(z), z = |x| / sqrt 2 >= 0, by Numerical Recipes' erfcc (relative error < 1.2e-7
// for every z): t = 1 / (1 + z / 2), erfc(z) = t exp(-z^2 + P(t)). Then 0.5 erfc(-z) = 1 - 0.5 erfc(z) for
// x >= 0, with no cancellation for either sign. -z^2 + P is one fused rounding. +inf: t = 0, erfc = 0, x * 1;
// -inf: -inf * 0 = NaN (as torch); -0: -0 * 0.5.
inline __m512 gelu_erf_ps(__m512 x) {
  const __m512 one = set1(1.0f), half = set1(0.5f);
  const __m512 z = _mm512_mul_ps(abs_ps(x), set1(0.70710678118654752f));
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(z, half, one));
  __m512 p = set1(0.17087277f);
  p = _mm512_fmadd_ps(p, t, set1(-0.82215223f));
  p = _mm512_fmadd_ps(p, t, set1(1.48851587f));
  p = _mm512_fmadd_ps(p, t, set1(-1.13520398f));
  p = _mm512_fmadd_ps(p, t, set1(0.27886807f));
  p = _mm512_fmadd_ps(p, t, set1(-0.18628806f));
  p = _mm512_fmadd_ps(p, t, set1(0.09678418f));
  p = _mm512_fmadd_ps(p, t, set1(0.37409196f));
  p = _mm512_fmadd_ps(p, t, set1(1.00002368f));
  p = _mm512_fmadd_ps(p, t, set1(-1.26551223f));
  const __m512 h = _mm512_mul_ps(_mm512_mul_ps(t, half), exp_ps(_mm512_fnmadd_ps(z, z, p)));  // 0.5 erfc(z)
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mul_ps(x, _mm512_mask_blend_ps(neg, _mm512_sub_ps(one, h), h));
}

// x / (1 + exp(-2u)), -2u = x (c + k x^2) with c = -2 sqrt(2 / pi), k = 0.044715 c. +inf: inf / 1; -inf:
// -inf / inf = NaN (as torch); -0: -0 / 2.
inline __m512 gelu_tanh_ps(__m512 x) {
  const __m512 a = _mm512_fmadd_ps(_mm512_mul_ps(x, x), set1(-0.0713548162726002527f), set1(-1.5957691216057308f));
  return _mm512_div_ps(x, _mm512_add_ps(set1(1.0f), exp_ps(_mm512_mul_ps(a, x))));
}

inline __m512 sigmoid_ps(__m512 x) {
  const __m512 one = set1(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

inline __m512 silu_ps(__m512 x) {  // -inf: -inf / inf = NaN, as torch
  return _mm512_div_ps(x, _mm512_add_ps(set1(1.0f), exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

// tanh of a = |x| (Cephes tanhf), the sign of x put back with an OR (so -0 and NaN keep theirs): a < 0.625:
// a + a z P(z), z = a^2; else 1 - 2 / (1 + exp(2a)) (exp(2a) = inf gives 1). NaN fails a < 0.625 and exp
// gives NaN.
inline __m512 tanh_ps(__m512 x) {
  const __m512 one = set1(1.0f);
  const __m512 a = abs_ps(x);
  const __m512 z = _mm512_mul_ps(a, a);
  __m512 p = set1(-5.70498872745e-3f);
  p = _mm512_fmadd_ps(p, z, set1(2.06390887954e-2f));
  p = _mm512_fmadd_ps(p, z, set1(-5.37397155531e-2f));
  p = _mm512_fmadd_ps(p, z, set1(1.33314422036e-1f));
  p = _mm512_fmadd_ps(p, z, set1(-3.33332819422e-1f));
  const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), a, a);
  const __m512 e = exp_ps(_mm512_add_ps(a, a));
  const __m512 large = _mm512_sub_ps(one, _mm512_div_ps(set1(2.0f), _mm512_add_ps(one, e)));
  const __m512 t = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, set1(0.625f), _CMP_LT_OQ), large, small);
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign));
}

template <class F>
inline void map(F f, const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, f(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, f(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

// Sum of 16 floats widened to double: two 8-lane halves.
inline __m512d add_pd16(__m512d acc, __m512 v) {
  acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 0)));
  return _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
}
inline __m512d fma_sq_pd16(__m512d acc, __m512 v) {
  const __m512d lo = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 0)), hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
  return _mm512_fmadd_pd(hi, hi, _mm512_fmadd_pd(lo, lo, acc));
}

void softmax_row(const float* x, float* y, size_t n) {
  // max: a NaN may or may not win (vmaxps), but exp(NaN - m) makes the sum and so the row NaN either way
  const __m512 ninf = set1(-__builtin_inff());
  __m512 m0 = ninf, m1 = ninf;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i < n; i += 16) m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(ninf, tail_mask(n - i), x + i));
  const __m512 m = set1(_mm512_reduce_max_ps(_mm512_max_ps(m0, m1)));
  // exp(x - m) into y and its sum in two float chains (every term in [0, 1]; a row of all -inf: NaN)
  __m512 s0 = _mm512_setzero_ps(), s1 = s0;
  for (i = 0; i + 32 <= n; i += 32) {
    const __m512 e0 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
    const __m512 e1 = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), m));
    _mm512_storeu_ps(y + i, e0);
    _mm512_storeu_ps(y + i + 16, e1);
    s0 = _mm512_add_ps(s0, e0);
    s1 = _mm512_add_ps(s1, e1);
  }
  for (; i < n; i += 16) {
    const __mmask16 t = tail_mask(n - i);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + i), m));
    _mm512_mask_storeu_ps(y + i, t, e);
    s0 = _mm512_mask_add_ps(s0, t, s0, e);
  }
  const __m512 inv = set1(1.0f / _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)));
  for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
  if (i < n) {
    const __mmask16 t = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, t, _mm512_mul_ps(_mm512_maskz_loadu_ps(t, y + i), inv));
  }
}

// Two passes with double sums: the mean, then the centered variance. The centered value is (x - mean_hi) -
// mean_lo with the double mean split into two floats: x - mean_hi is exact when x is near the mean (Sterbenz),
// so a row near 1e4 with a spread of 1e-2 keeps its digits. The output is fma(d * inv, w, b) in float.
template <bool kW, bool kB>
void layer_norm_row(const float* x, float* y, size_t n, const float* w, const float* b, float eps) {
  __m512d a0 = _mm512_setzero_pd(), a1 = a0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = add_pd16(a0, _mm512_loadu_ps(x + i));
    a1 = add_pd16(a1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i < n; i += 16) a0 = add_pd16(a0, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
  const double mean = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1)) / double(n);
  const float mean_hi = static_cast<float>(mean);
  const __m512 mh = set1(mean_hi), ml = set1(static_cast<float>(mean - double(mean_hi)));
  a0 = _mm512_setzero_pd();
  a1 = a0;
  for (i = 0; i + 32 <= n; i += 32) {
    a0 = fma_sq_pd16(a0, _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), mh), ml));
    a1 = fma_sq_pd16(a1, _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), mh), ml));
  }
  for (; i < n; i += 16) {  // lanes past the row centered to 0
    const __mmask16 t = tail_mask(n - i);
    a0 = fma_sq_pd16(a0, _mm512_maskz_sub_ps(t, _mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + i), mh), ml));
  }
  // eps 0 and a constant row: 0 * inf = NaN, as torch
  const double var = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1)) / double(n);
  const __m512 inv = set1(static_cast<float>(1.0 / std::sqrt(var + double(eps))));
  auto out = [&](__m512 v, size_t j, __mmask16 t) {  // w and b read only where present (they may be null)
    __m512 r = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(v, mh), ml), inv);
    if constexpr (kW && kB) r = _mm512_fmadd_ps(r, _mm512_maskz_loadu_ps(t, w + j), _mm512_maskz_loadu_ps(t, b + j));
    if constexpr (kW && !kB) r = _mm512_mul_ps(r, _mm512_maskz_loadu_ps(t, w + j));
    if constexpr (!kW && kB) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(t, b + j));
    return r;
  };
  for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, out(_mm512_loadu_ps(x + i), i, 0xFFFF));
  if (i < n) {
    const __mmask16 t = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, t, out(_mm512_maskz_loadu_ps(t, x + i), i, t));
  }
}

}  // namespace

void pyrt_f32_gelu_erf__avx512(const float* x, float* y, size_t n) { map(gelu_erf_ps, x, y, n); }
void pyrt_f32_gelu_tanh__avx512(const float* x, float* y, size_t n) { map(gelu_tanh_ps, x, y, n); }
void pyrt_f32_silu__avx512(const float* x, float* y, size_t n) { map(silu_ps, x, y, n); }
void pyrt_f32_sigmoid__avx512(const float* x, float* y, size_t n) { map(sigmoid_ps, x, y, n); }
void pyrt_f32_tanh__avx512(const float* x, float* y, size_t n) { map(tanh_ps, x, y, n); }

void pyrt_f32_leaky_relu__avx512(const float* x, float* y, size_t n, float slope) {
  const __m512 s = set1(slope);
  map([s](__m512 v) {  // x >= 0 (false for NaN) keeps x, else slope x
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ), _mm512_mul_ps(v, s), v);
  }, x, y, n);
}

void pyrt_f32_softmax_rows__avx512(const float* x, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) softmax_row(x + r * cols, y + r * cols, cols);
}

void pyrt_f32_layer_norm_rows__avx512(const float* x, float* y, size_t rows, size_t n, const float* w,
                                      const float* b, float eps) {
  auto row = w ? (b ? layer_norm_row<true, true> : layer_norm_row<true, false>)
               : (b ? layer_norm_row<false, true> : layer_norm_row<false, false>);
  for (size_t r = 0; r < rows; ++r) row(x + r * n, y + r * n, n, w, b, eps);
}

}  // namespace pyrt::kernels
