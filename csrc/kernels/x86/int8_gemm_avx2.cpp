// pyruntime: int8 kernels, AVX2.
//
// Dense (i8_r16k4): a 64-byte block of 16 rows x 4 columns is two ymm halves of 8 rows. vpmaddubsw
// multiplies unsigned by signed bytes and saturates pair sums to int16, so it gets |w| (0..127) against
// vpsignb(q, w) (q with w's sign, 0 where w is 0): a pair sum is at most 2 * 127 * 127 = 32258 and never
// saturates; vpmaddwd with ones widens the pairs to int32. A tile is R row blocks x T samples.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/int8/int8_layouts.h"
#include "kernels/x86/avx2_util.h"

namespace pyrt::kernels {
namespace {

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// The epilogue (int8_layouts.h) of rows r .. r + n - 1 (n <= 8) of one sample, stored at y + at.
void store_rows(const Int8Epilogue& ep, __m256i acc, float xs, uint32_t r, uint32_t n, void* y, size_t at) {
  const __m256 s = _mm256_mul_ps(_mm256_set1_ps(xs), _mm256_loadu_ps(ep.wscale + r));
  const __m256 b = ep.bias ? _mm256_loadu_ps(ep.bias + r) : _mm256_setzero_ps();
  __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), s, b);
  v = _mm256_max_ps(_mm256_set1_ps(ep.lo), v);  // lo > v ? lo : v (a NaN v stays)
  v = _mm256_min_ps(_mm256_set1_ps(ep.hi), v);  // hi < v ? hi : v
  if (ep.inv_out > 0.0f) {
    __m256 t = _mm256_mul_ps(v, _mm256_set1_ps(ep.inv_out));
    t = _mm256_and_ps(t, _mm256_cmp_ps(t, t, _CMP_ORD_Q));  // NaN -> 0
    t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    const __m256i qi = _mm256_cvtps_epi32(t);  // half to even, in -127..127
    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1));
    const __m128i b8 = _mm_packs_epi16(w16, w16);
    alignas(16) int8_t out[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(out), b8);
    std::memcpy(static_cast<int8_t*>(y) + at, out, n);
  } else if (n == 8) {
    _mm256_storeu_ps(static_cast<float*>(y) + at, v);
  } else {
    alignas(32) float out[8];
    _mm256_store_ps(out, v);
    std::memcpy(static_cast<float*>(y) + at, out, n * sizeof(float));
  }
}

template <int R, int T>
void tile(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t rb, size_t b0, uint32_t r1,
          void* y, size_t ldy) {
  const size_t groups = L.kp / 4;
  const int8_t* wp[R];
  const int8_t* qp[T];
  for (int i = 0; i < R; ++i) wp[i] = L.w + (size_t(rb) + i) * groups * 64;
  for (int t = 0; t < T; ++t) qp[t] = a.q + (b0 + t) * a.ldq;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[R][2][T];
  for (int i = 0; i < R; ++i)
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < T; ++t) acc[i][h][t] = _mm256_setzero_si256();
  for (size_t g = 0; g < groups; ++g) {
    __m256i w[R][2], absw[R][2];
    for (int i = 0; i < R; ++i)
      for (int h = 0; h < 2; ++h) {
        w[i][h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp[i] + g * 64 + h * 32));
        absw[i][h] = _mm256_abs_epi8(w[i][h]);
      }
    for (int t = 0; t < T; ++t) {
      const __m256i q = bcast4(qp[t] + g * 4);
      for (int i = 0; i < R; ++i)
        for (int h = 0; h < 2; ++h) {
          const __m256i p16 = _mm256_maddubs_epi16(absw[i][h], _mm256_sign_epi8(q, w[i][h]));
          acc[i][h][t] = _mm256_add_epi32(acc[i][h][t], _mm256_madd_epi16(p16, ones));
        }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int h = 0; h < 2; ++h) {
      const uint32_t r = (rb + i) * 16 + h * 8;
      if (r >= r1) continue;
      for (int t = 0; t < T; ++t)
        store_rows(ep, acc[i][h][t], a.xs[b0 + t], r, std::min<uint32_t>(8, r1 - r), y, (b0 + t) * ldy + r);
    }
}

template <int R>
void tiles_of_rows(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t rb, uint32_t r1, void* y,
                   size_t ldy) {
  size_t b = 0;
  constexpr int T = R == 1 ? 3 : 1;  // 2 R T accumulators, within the 16 ymm registers
  for (; b + T <= a.batch; b += T) tile<R, T>(L, a, ep, rb, b, r1, y, ldy);
  for (; b < a.batch; ++b) tile<R, 1>(L, a, ep, rb, b, r1, y, ldy);
}

}  // namespace

// Batch 1 streams 2 row blocks per pass (4 accumulators); larger batches 1 row block x 3 samples.
void pyrt_i8_gemm__avx2(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                        void* y, size_t ldy) {
  const uint32_t rb_end = (r1 + 15) / 16;
  uint32_t rb = r0 / 16;
  if (a.batch == 1)
    for (; rb + 2 <= rb_end; rb += 2) tiles_of_rows<2>(L, a, ep, rb, r1, y, ldy);
  for (; rb < rb_end; ++rb) tiles_of_rows<1>(L, a, ep, rb, r1, y, ldy);
}

// Sparse (i8_p128): AVX2 has no byte permute over 128 entries, so a step's 64 activations are looked up in
// the panel's 8 chunks of 16 bytes with vpshufb (which uses the low 4 bits of each offset), each result kept
// where the offset's high bits name that chunk; then multiplied as the dense kernel does, 8 rows per half.
void pyrt_i8_spmm__avx2(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                        void* y, size_t ldy) {
  const __m256i ones = _mm256_set1_epi16(1), seven = _mm256_set1_epi8(7);
  for (uint32_t rb = r0 / 16; rb * 16 < r1; ++rb) {
    for (size_t b = 0; b < a.batch; ++b) {
      __m256i acc[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
      const uint8_t* step = L.steps + L.step_start[rb] * kStepBytes;
      for (uint32_t p = 0; p < L.panels; ++p) {
        const uint32_t n = L.nsteps[size_t(rb) * L.panels + p];
        if (n == 0) continue;
        const int8_t* table = a.q + b * a.ldq + size_t(p) * kPanelCols;
        __m256i chunk[8];
        for (int c = 0; c < 8; ++c)
          chunk[c] = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table + 16 * c)));
        for (uint32_t s = 0; s < n; ++s, step += kStepBytes) {
          for (int h = 0; h < 2; ++h) {
            const __m256i idx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(step + 32 * h));
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(idx, 4), seven);  // the chunk of each offset
            __m256i q = _mm256_shuffle_epi8(chunk[0], idx);
            for (int c = 1; c < 8; ++c)
              q = _mm256_blendv_epi8(q, _mm256_shuffle_epi8(chunk[c], idx),
                                     _mm256_cmpeq_epi8(hi, _mm256_set1_epi8(static_cast<char>(c))));
            const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(step + 64 + 32 * h));
            const __m256i p16 = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(q, w));
            acc[h] = _mm256_add_epi32(acc[h], _mm256_madd_epi16(p16, ones));
          }
        }
      }
      for (int h = 0; h < 2; ++h) {
        const uint32_t r = rb * 16 + h * 8;
        if (r < r1) store_rows(ep, acc[h], a.xs[b], r, std::min<uint32_t>(8, r1 - r), y, b * ldy + r);
      }
    }
  }
}

}  // namespace pyrt::kernels
