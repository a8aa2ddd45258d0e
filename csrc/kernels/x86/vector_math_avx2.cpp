// pyruntime: the f32 transcendental kernels (kernels/ref/vector_math.h), AVX2 + FMA: vector_math_avx512.cpp's
// algorithms (the accuracy notes are there) in 8 lanes. Tails go through the same arithmetic with masked loads
// and stores, so a result does not depend on its position.
#include <cmath>

#include "kernels/ref/vector_math.h"
#include "kernels/x86/avx2_util.h"

namespace pyrt::kernels {
namespace {  // internal linkage: see the note at the top of avx2_util.h

// Lanes [0, min(n, 8)).
inline __m256i tail_mask(size_t n) { return avx2::tail_mask(n < 8 ? n : 8); }

inline __m256 set1(float v) { return _mm256_set1_ps(v); }

// exp(x), Cephes expf as the AVX-512 kernel; without vscalefps, 2^n is applied as 2^n1 * 2^n2 with n1 = n >> 1
// and n2 = n - n1 (both in [-80, 64] for x in [-110, 89], so both are normal floats built from exponent bits):
// p * 2^n1 is exact and the second product rounds once, into the subnormals or to inf as it should.
inline __m256 exp_ps(__m256 x) {
  x = _mm256_max_ps(set1(-110.0f), _mm256_min_ps(set1(89.0f), x));  // NaN passes (second operand)
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, set1(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, set1(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
  __m256 p = set1(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, set1(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, set1(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, set1(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, set1(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, set1(5.0000001201e-1f));
  p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), set1(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n);  // NaN: garbage exponents, but p is NaN
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
}

inline __m256 abs_ps(__m256 x) { return _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF))); }

inline __m256 gelu_erf_ps(__m256 x) {  // 0.5 x erfc(-x / sqrt 2), erfc by Numerical Recipes' erfcc
  const __m256 one = set1(1.0f), half = set1(0.5f);
  const __m256 z = _mm256_mul_ps(abs_ps(x), set1(0.70710678118654752f));
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(z, half, one));
  __m256 p = set1(0.17087277f);
  p = _mm256_fmadd_ps(p, t, set1(-0.82215223f));
  p = _mm256_fmadd_ps(p, t, set1(1.48851587f));
  p = _mm256_fmadd_ps(p, t, set1(-1.13520398f));
  p = _mm256_fmadd_ps(p, t, set1(0.27886807f));
  p = _mm256_fmadd_ps(p, t, set1(-0.18628806f));
  p = _mm256_fmadd_ps(p, t, set1(0.09678418f));
  p = _mm256_fmadd_ps(p, t, set1(0.37409196f));
  p = _mm256_fmadd_ps(p, t, set1(1.00002368f));
  p = _mm256_fmadd_ps(p, t, set1(-1.26551223f));
  const __m256 h = _mm256_mul_ps(_mm256_mul_ps(t, half), exp_ps(_mm256_fnmadd_ps(z, z, p)));  // 0.5 erfc(z)
  const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  return _mm256_mul_ps(x, _mm256_blendv_ps(_mm256_sub_ps(one, h), h, neg));
}

inline __m256 gelu_tanh_ps(__m256 x) {  // x / (1 + exp(x (c + k x^2)))
  const __m256 a = _mm256_fmadd_ps(_mm256_mul_ps(x, x), set1(-0.0713548162726002527f), set1(-1.5957691216057308f));
  return _mm256_div_ps(x, _mm256_add_ps(set1(1.0f), exp_ps(_mm256_mul_ps(a, x))));
}

inline __m256 sigmoid_ps(__m256 x) {
  const __m256 one = set1(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

inline __m256 silu_ps(__m256 x) {
  return _mm256_div_ps(x, _mm256_add_ps(set1(1.0f), exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

inline __m256 tanh_ps(__m256 x) {  // Cephes tanhf on |x|, the sign ORed back
  const __m256 one = set1(1.0f);
  const __m256 a = abs_ps(x);
  const __m256 z = _mm256_mul_ps(a, a);
  __m256 p = set1(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, z, set1(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, z, set1(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, z, set1(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, z, set1(-3.33332819422e-1f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), a, a);
  const __m256 e = exp_ps(_mm256_add_ps(a, a));
  const __m256 large = _mm256_sub_ps(one, _mm256_div_ps(set1(2.0f), _mm256_add_ps(one, e)));
  const __m256 t = _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, set1(0.625f), _CMP_LT_OQ));
  return _mm256_or_ps(t, _mm256_and_ps(x, set1(-0.0f)));
}

template <class F>
inline void map(F f, const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, f(_mm256_maskload_ps(x + i, m)));
  }
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline double hsum_pd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// 8 floats widened to double and added (or squared and added) into two accumulators.
inline void add_pd8(__m256d& a, __m256d& b, __m256 v) {
  a = _mm256_add_pd(a, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  b = _mm256_add_pd(b, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}
inline void fma_sq_pd8(__m256d& a, __m256d& b, __m256 v) {
  const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
  a = _mm256_fmadd_pd(lo, lo, a);
  b = _mm256_fmadd_pd(hi, hi, b);
}

void softmax_row(const float* x, float* y, size_t n) {
  const __m256 ninf = set1(-__builtin_inff());
  __m256 m0 = ninf, m1 = ninf;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + i + 8));
  }
  for (; i < n; i += 8) {
    const __m256i t = tail_mask(n - i);
    m0 = _mm256_max_ps(m0, _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i, t), _mm256_castsi256_ps(t)));
  }
  const __m256 m = set1(hmax(_mm256_max_ps(m0, m1)));
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  for (i = 0; i + 16 <= n; i += 16) {
    const __m256 e0 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
    const __m256 e1 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m));
    _mm256_storeu_ps(y + i, e0);
    _mm256_storeu_ps(y + i + 8, e1);
    s0 = _mm256_add_ps(s0, e0);
    s1 = _mm256_add_ps(s1, e1);
  }
  for (; i < n; i += 8) {
    const __m256i t = tail_mask(n - i);
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, t), m));
    _mm256_maskstore_ps(y + i, t, e);
    s0 = _mm256_add_ps(s0, _mm256_and_ps(e, _mm256_castsi256_ps(t)));
  }
  const __m256 inv = set1(1.0f / avx2::hsum(_mm256_add_ps(s0, s1)));
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
  if (i < n) {
    const __m256i t = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, t, _mm256_mul_ps(_mm256_maskload_ps(y + i, t), inv));
  }
}

template <bool kW, bool kB>
void layer_norm_row(const float* x, float* y, size_t n, const float* w, const float* b, float eps) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    add_pd8(a0, a1, _mm256_loadu_ps(x + i));
    add_pd8(a2, a3, _mm256_loadu_ps(x + i + 8));
  }
  for (; i < n; i += 8) add_pd8(a0, a1, _mm256_maskload_ps(x + i, tail_mask(n - i)));
  const double mean = hsum_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3))) / double(n);
  const float mean_hi = static_cast<float>(mean);
  const __m256 mh = set1(mean_hi), ml = set1(static_cast<float>(mean - double(mean_hi)));
  a0 = a1 = a2 = a3 = _mm256_setzero_pd();
  for (i = 0; i + 16 <= n; i += 16) {
    fma_sq_pd8(a0, a1, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mh), ml));
    fma_sq_pd8(a2, a3, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mh), ml));
  }
  for (; i < n; i += 8) {  // lanes past the row centered to 0
    const __m256i t = tail_mask(n - i);
    const __m256 d = _mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, t), mh), ml);
    fma_sq_pd8(a0, a1, _mm256_and_ps(d, _mm256_castsi256_ps(t)));
  }
  const double var = hsum_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3))) / double(n);
  const __m256 inv = set1(static_cast<float>(1.0 / std::sqrt(var + double(eps))));
  auto out = [&](__m256 v, size_t j, __m256i t) {  // w and b read only where present (they may be null)
    __m256 r = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(v, mh), ml), inv);
    if constexpr (kW && kB) r = _mm256_fmadd_ps(r, _mm256_maskload_ps(w + j, t), _mm256_maskload_ps(b + j, t));
    if constexpr (kW && !kB) r = _mm256_mul_ps(r, _mm256_maskload_ps(w + j, t));
    if constexpr (!kW && kB) r = _mm256_add_ps(r, _mm256_maskload_ps(b + j, t));
    return r;
  };
  const __m256i all = _mm256_set1_epi32(-1);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, out(_mm256_loadu_ps(x + i), i, all));
  if (i < n) {
    const __m256i t = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, t, out(_mm256_maskload_ps(x + i, t), i, t));
  }
}

}  // namespace

void pyrt_f32_gelu_erf__avx2(const float* x, float* y, size_t n) { map(gelu_erf_ps, x, y, n); }
void pyrt_f32_gelu_tanh__avx2(const float* x, float* y, size_t n) { map(gelu_tanh_ps, x, y, n); }
void pyrt_f32_silu__avx2(const float* x, float* y, size_t n) { map(silu_ps, x, y, n); }
void pyrt_f32_sigmoid__avx2(const float* x, float* y, size_t n) { map(sigmoid_ps, x, y, n); }
void pyrt_f32_tanh__avx2(const float* x, float* y, size_t n) { map(tanh_ps, x, y, n); }

void pyrt_f32_leaky_relu__avx2(const float* x, float* y, size_t n, float slope) {
  const __m256 s = set1(slope);
  map([s](__m256 v) {  // x >= 0 (false for NaN) keeps x, else slope x
    return _mm256_blendv_ps(_mm256_mul_ps(v, s), v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ));
  }, x, y, n);
}

void pyrt_f32_softmax_rows__avx2(const float* x, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) softmax_row(x + r * cols, y + r * cols, cols);
}

void pyrt_f32_layer_norm_rows__avx2(const float* x, float* y, size_t rows, size_t n, const float* w, const float* b,
                                    float eps) {
  auto row = w ? (b ? layer_norm_row<true, true> : layer_norm_row<true, false>)
               : (b ? layer_norm_row<false, true> : layer_norm_row<false, false>);
  for (size_t r = 0; r < rows; ++r) row(x + r * n, y + r * n, n, w, b, eps);
}

}  // namespace pyrt::kernels
