// pyruntime: the f32 max pool (kernels/pool_max_f32.h) with AVX2 loops: 8 lanes, tails one by one (AVX2's
// masked stores are slow on some cores).
#include "kernels/pool2d.h"
#include "kernels/pool_max_f32.h"
#include "kernels/x86/avx2_util.h"

namespace pyrt::kernels {
namespace {

// max_or_nan lane by lane: vmaxps gives its second operand when either is NaN, then a NaN m is kept.
inline __m256 max_or_nan8(__m256 m, __m256 v) {
  return _mm256_blendv_ps(_mm256_max_ps(m, v), m, _mm256_cmp_ps(m, m, _CMP_UNORD_Q));
}

struct Avx2PoolOps {
  static void max_of(float* y, const float* a, const float* b, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, max_or_nan8(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    ScalarPoolOps::max_of(y + i, a + i, b + i, n - i);
  }
  static void split2(const float* row, size_t h, float* even, float* odd) {
    size_t j = 0;
    for (; j + 8 <= h; j += 8) {
      const __m256 a = _mm256_loadu_ps(row + 2 * j), b = _mm256_loadu_ps(row + 2 * j + 8);
      // even / odd within 128-bit lanes, then the 64-bit quarters in order
      const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
      _mm256_storeu_ps(even + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0))));
      _mm256_storeu_ps(odd + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0))));
    }
    ScalarPoolOps::split2(row + 2 * j, h - j, even + j, odd + j);
  }
  static void max3_of(float* y, const float* a, const float* b, const float* c, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, max_or_nan8(max_or_nan8(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)),
                                          _mm256_loadu_ps(c + i)));
    ScalarPoolOps::max3_of(y + i, a + i, b + i, c + i, n - i);
  }
  static void max3_finish(float* y, const float* a, const float* b, const float* c, size_t n) {
    const __m256 qnan = _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN());
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 v = max_or_nan8(max_or_nan8(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)), _mm256_loadu_ps(c + i));
      _mm256_storeu_ps(y + i, _mm256_blendv_ps(v, qnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    }
    ScalarPoolOps::max3_finish(y + i, a + i, b + i, c + i, n - i);
  }
  static void max3s2_finish(float* y, const float* p, size_t n) {
    const __m256 qnan = _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN());
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {  // even / odd lanes of p[2 j ..) and of p[2 j + 2 ..), as split2
      const __m256 a = _mm256_loadu_ps(p + 2 * j), b = _mm256_loadu_ps(p + 2 * j + 8);
      const __m256 c = _mm256_loadu_ps(p + 2 * j + 2), d = _mm256_loadu_ps(p + 2 * j + 10);
      const __m256 even = even8(a, b), next = even8(c, d);
      const __m256 odd = _mm256_castpd_ps(_mm256_permute4x64_pd(
          _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
      const __m256 v = max_or_nan8(max_or_nan8(even, odd), next);
      _mm256_storeu_ps(y + j, _mm256_blendv_ps(v, qnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    }
    ScalarPoolOps::max3s2_finish(y + j, p + 2 * j, n - j);
  }
  static __m256 even8(__m256 a, __m256 b) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))),
                                                  _MM_SHUFFLE(3, 1, 2, 0)));
  }
  static void finish(float* y, const float* src, size_t n) {
    const __m256 qnan = _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN());
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 v = _mm256_loadu_ps(src + i);
      _mm256_storeu_ps(y + i, _mm256_blendv_ps(v, qnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    }
    ScalarPoolOps::finish(y + i, src + i, n - i);
  }
};

}  // namespace

void pyrt_max_pool2d_f32__avx2(const ref::Pool2dGeometry& g, const float* x, size_t batch, float* y) {
  max_pool2d_f32_impl<Avx2PoolOps>(g, x, batch, y);
}

}  // namespace pyrt::kernels
