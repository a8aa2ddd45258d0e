// pyruntime: dynamic quantization of activation rows, AVX-512 (the definition: kernels/ref/quantize.h), as
// quantize_avx2.cpp with 16 lanes and masked tails.
#include <cstring>
#include <limits>

#include "kernels/int8/int8_layouts.h"
#include "kernels/x86/avx512_util.h"

namespace pyrt::kernels {

void pyrt_quantize_rows__avx512(const float* x, size_t batch, size_t cols, size_t ldq, int8_t* q, float* xs) {
  const __m512 fmax = _mm512_set1_ps(std::numeric_limits<float>::max());
  for (size_t b = 0; b < batch; ++b, x += cols, q += ldq) {
    // max |x| over the bit patterns of |x| as int32 (their order is the floats' for x >= 0, and infinity and
    // NaN are above every finite value): four chains, then one test for "above FLT_MAX"
    const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF);
    __m512i m0 = _mm512_setzero_si512(), m1 = m0, m2 = m0, m3 = m0;
    size_t i = 0;
    for (; i + 64 <= cols; i += 64) {
      m0 = _mm512_max_epi32(m0, _mm512_and_si512(_mm512_loadu_si512(x + i), absmask));
      m1 = _mm512_max_epi32(m1, _mm512_and_si512(_mm512_loadu_si512(x + i + 16), absmask));
      m2 = _mm512_max_epi32(m2, _mm512_and_si512(_mm512_loadu_si512(x + i + 32), absmask));
      m3 = _mm512_max_epi32(m3, _mm512_and_si512(_mm512_loadu_si512(x + i + 48), absmask));
    }
    for (; i < cols; i += 16) {
      const __mmask16 t = avx512::tail_mask(cols - i);
      m0 = _mm512_max_epi32(m0, _mm512_and_si512(_mm512_maskz_loadu_epi32(t, x + i), absmask));
    }
    const __m512i mi = _mm512_max_epi32(_mm512_max_epi32(m0, m1), _mm512_max_epi32(m2, m3));
    const bool bad = _mm512_cmpgt_epi32_mask(mi, _mm512_castps_si512(fmax)) != 0;  // NaN or infinity
    const int32_t mbits = _mm512_reduce_max_epi32(mi);
    float mx;
    std::memcpy(&mx, &mbits, 4);
    std::memset(q + cols, 0, ldq - cols);
    if (bad || mx == 0.0f) {
      xs[b] = bad ? std::numeric_limits<float>::quiet_NaN() : 0.0f;
      std::memset(q, 0, cols);
      continue;
    }
    xs[b] = mx / 127.0f;
    const __m512 vinv = _mm512_set1_ps(127.0f / mx), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    for (size_t i = 0; i < cols; i += 16) {
      const __mmask16 t = avx512::tail_mask(cols - i);
      const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(t, x + i), vinv), lo), hi);
      _mm512_mask_cvtepi32_storeu_epi8(q + i, t, _mm512_cvtps_epi32(v));  // half to even
    }
  }
}

}  // namespace pyrt::kernels

namespace pyrt::kernels {

// quantize(x, inv_scale) of n floats (ref::quantize_s8), 16 lanes, the tail masked; NaN lanes give 0.
void pyrt_quantize_s8__avx512(const float* x, size_t n, float inv_scale, int8_t* q) {
  const __m512 vinv = _mm512_set1_ps(inv_scale), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 t = avx512::tail_mask(n - i);
    const __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(t, x + i), vinv);
    const __m512 v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(p, p, _CMP_ORD_Q), _mm512_min_ps(_mm512_max_ps(p, lo), hi));
    _mm512_mask_cvtepi32_storeu_epi8(q + i, t, _mm512_cvtps_epi32(v));  // half to even
  }
}

}  // namespace pyrt::kernels
