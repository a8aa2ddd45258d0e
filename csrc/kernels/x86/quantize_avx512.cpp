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
    __m512 m = _mm512_setzero_ps();
    __mmask16 bad = 0;
    for (size_t i = 0; i < cols; i += 16) {
      const __mmask16 t = avx512::tail_mask(cols - i);
      const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(t, x + i));
      bad |= _mm512_mask_cmp_ps_mask(t, a, fmax, _CMP_NLE_UQ);  // NaN or infinity
      m = _mm512_max_ps(m, a);
    }
    const float mx = _mm512_reduce_max_ps(m);
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
