// pyruntime: the f32 max pool (kernels/pool_max_f32.h) with AVX-512 loops: 16 lanes; a tail's loads are
// masked, its stores into scratch full-width (the slack), and only finish() stores masked, into the output.
#include "kernels/pool2d.h"
#include "kernels/pool_max_f32.h"
#include "kernels/x86/avx512_util.h"

namespace pyrt::kernels {
namespace {

// max_or_nan lane by lane: vmaxps gives its second operand when either is NaN, then a NaN m is kept.
inline __m512 max_or_nan16(__m512 m, __m512 v) {
  return _mm512_mask_mov_ps(_mm512_max_ps(m, v), _mm512_cmp_ps_mask(m, m, _CMP_UNORD_Q), m);
}

struct Avx512PoolOps {
  static void max_of(float* y, const float* a, const float* b, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, max_or_nan16(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
    if (i < n) {
      const __mmask16 t = avx512::tail_mask(n - i);
      _mm512_storeu_ps(y + i, max_or_nan16(_mm512_maskz_loadu_ps(t, a + i), _mm512_maskz_loadu_ps(t, b + i)));
    }
  }
  static void split2(const float* row, size_t h, float* even, float* odd) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    for (size_t j = 0; j < h; j += 16) {  // reads up to 31 floats past 2 h: the slack and the phases after it
      const __m512 a = _mm512_loadu_ps(row + 2 * j), b = _mm512_loadu_ps(row + 2 * j + 16);
      _mm512_storeu_ps(even + j, _mm512_permutex2var_ps(a, ie, b));
      _mm512_storeu_ps(odd + j, _mm512_permutex2var_ps(a, io, b));
    }
  }
  static void max3_of(float* y, const float* a, const float* b, const float* c, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
      _mm512_storeu_ps(y + i, max_or_nan16(max_or_nan16(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)),
                                           _mm512_loadu_ps(c + i)));
    if (i < n) {
      const __mmask16 t = avx512::tail_mask(n - i);
      _mm512_storeu_ps(y + i, max_or_nan16(max_or_nan16(_mm512_maskz_loadu_ps(t, a + i), _mm512_maskz_loadu_ps(t, b + i)),
                                           _mm512_maskz_loadu_ps(t, c + i)));
    }
  }
  static void max3_finish(float* y, const float* a, const float* b, const float* c, size_t n) {
    const __m512 qnan = _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN());
    for (size_t i = 0; i < n; i += 16) {
      const __mmask16 t = avx512::tail_mask(n - i);
      const __m512 v = max_or_nan16(max_or_nan16(_mm512_maskz_loadu_ps(t, a + i), _mm512_maskz_loadu_ps(t, b + i)),
                                    _mm512_maskz_loadu_ps(t, c + i));
      _mm512_mask_storeu_ps(y + i, t, _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), qnan));
    }
  }
  static void max3s2_finish(float* y, const float* p, size_t n) {
    const __m512 qnan = _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN());
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1)), in = _mm512_add_epi32(ie, _mm512_set1_epi32(2));
    for (size_t j = 0; j < n; j += 16) {  // p[2 j .. 2 j + 32]: two vectors and one float
      const __m512 a = _mm512_loadu_ps(p + 2 * j), b = _mm512_loadu_ps(p + 2 * j + 16);
      const __m512 even = _mm512_permutex2var_ps(a, ie, b), odd = _mm512_permutex2var_ps(a, io, b);
      // p[2 j + 2]: lane 15's index 32 wraps to a's lane 0, so it takes p[2 j + 32] instead
      const __m512 next = _mm512_mask_mov_ps(_mm512_permutex2var_ps(a, in, b), 0x8000, _mm512_set1_ps(p[2 * j + 32]));
      const __m512 v = max_or_nan16(max_or_nan16(even, odd), next);
      _mm512_mask_storeu_ps(y + j, avx512::tail_mask(n - j), _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), qnan));
    }
  }
  static void finish(float* y, const float* src, size_t n) {
    const __m512 qnan = _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN());
    for (size_t i = 0; i < n; i += 16) {
      const __mmask16 t = avx512::tail_mask(n - i);
      const __m512 v = _mm512_loadu_ps(src + i);
      _mm512_mask_storeu_ps(y + i, t, _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), qnan));
    }
  }
};

}  // namespace

void pyrt_max_pool2d_f32__avx512(const ref::Pool2dGeometry& g, const float* x, size_t batch, float* y) {
  max_pool2d_f32_impl<Avx512PoolOps>(g, x, batch, y);
}

}  // namespace pyrt::kernels
