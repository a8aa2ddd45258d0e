// pyruntime: dynamic quantization of activation rows, AVX2 (the definition: kernels/ref/quantize.h). The row's
// max |x| is exact in any order, the scale and its reciprocal are computed as the reference does, and each
// element is multiplied, clamped to +-127 and rounded half to even by cvtps2dq: the reference's bytes.
#include <immintrin.h>

#include <cstring>
#include <limits>

#include "kernels/int8/int8_layouts.h"

namespace pyrt::kernels {

void pyrt_quantize_rows__avx2(const float* x, size_t batch, size_t cols, size_t ldq, int8_t* q, float* xs) {
  const __m256 sign = _mm256_set1_ps(-0.0f), fmax = _mm256_set1_ps(std::numeric_limits<float>::max());
  for (size_t b = 0; b < batch; ++b, x += cols, q += ldq) {
    __m256 m = _mm256_setzero_ps();
    __m256 finite = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    size_t i = 0;
    for (; i + 8 <= cols; i += 8) {
      const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i));
      finite = _mm256_and_ps(finite, _mm256_cmp_ps(a, fmax, _CMP_LE_OQ));  // false for NaN and infinity
      m = _mm256_max_ps(m, a);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, m);
    float mx = 0.0f;
    for (float v : lanes) mx = v > mx ? v : mx;
    bool ok = _mm256_movemask_ps(finite) == 0xFF;
    for (; i < cols; ++i) {
      const float a = x[i] < 0 ? -x[i] : x[i];
      ok &= a <= std::numeric_limits<float>::max();
      mx = a > mx ? a : mx;
    }
    std::memset(q + cols, 0, ldq - cols);
    if (!ok || mx == 0.0f) {
      xs[b] = ok ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      std::memset(q, 0, cols);
      continue;
    }
    xs[b] = mx / 127.0f;
    const float inv = 127.0f / mx;
    const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    for (i = 0; i + 8 <= cols; i += 8) {
      const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv), lo), hi);
      const __m256i d = _mm256_cvtps_epi32(v);  // half to even
      const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
      const __m128i b8 = _mm_packs_epi16(w16, w16);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), b8);
    }
    for (; i < cols; ++i) q[i] = ref::quantize_one(x[i], inv);
  }
}

}  // namespace pyrt::kernels

namespace pyrt::kernels {

// quantize(x, inv_scale) of n floats (ref::quantize_s8): NaN lanes masked to 0 before the conversion.
void pyrt_quantize_s8__avx2(const float* x, size_t n, float inv_scale, int8_t* q) {
  const __m256 vinv = _mm256_set1_ps(inv_scale), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv);
    const __m256 v = _mm256_and_ps(_mm256_min_ps(_mm256_max_ps(p, lo), hi), _mm256_cmp_ps(p, p, _CMP_ORD_Q));
    const __m256i d = _mm256_cvtps_epi32(v);  // half to even
    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), _mm_packs_epi16(w16, w16));
  }
  for (; i < n; ++i) q[i] = ref::quantize_one(x[i], inv_scale);
}

}  // namespace pyrt::kernels
