// pyruntime: int8 kernels, AVX2.
//
// Dense (i8_r16k4): a 64-byte block of 16 rows x 4 columns is two ymm halves of 8 rows. vpmaddubsw
// multiplies unsigned by signed bytes and saturates pair sums to int16, so it gets |w| (0..127) against
// vpsignb(q, w) (q with w's sign, 0 where w is 0): a pair sum is at most 2 * 127 * 127 = 32258 and never
// saturates; vpmaddwd with ones widens the pairs to int32. A tile is R row blocks x T samples.
// Sparse (i8_csr): 8 nonzeros of a row at a time, the activations gathered as dwords at their columns and
// sign-extended from their low byte, multiplied by the sign-extended weights in int32.
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

template <class Col>
int32_t row_dot(const Col* col, const int8_t* val, uint32_t j0, uint32_t j1, const int8_t* q) {
  __m256i acc = _mm256_setzero_si256();
  uint32_t j = j0;
  for (; j + 8 <= j1; j += 8) {
    __m256i c;
    if constexpr (sizeof(Col) == 2)
      c = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(col + j)));
    else
      c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col + j));
    // 4 bytes at q + column (kInt8ActPad covers the bytes past the row); the low byte is q[column]
    __m256i x = _mm256_i32gather_epi32(reinterpret_cast<const int*>(q), c, 1);
    x = _mm256_srai_epi32(_mm256_slli_epi32(x, 24), 24);
    int64_t w8;
    std::memcpy(&w8, val + j, 8);
    const __m256i w = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(w8));
    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(x, w));
  }
  const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  const __m128i s2 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
  int32_t sum = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32(s2, 0xB1)));
  for (; j < j1; ++j) sum += int32_t(val[j]) * q[col[j]];
  return sum;
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

void pyrt_i8_spmm__avx2(const Int8Csr& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1,
                        void* y, size_t ldy) {
  for (uint32_t rb = r0; rb < r1; rb += 8) {
    const uint32_t n = std::min<uint32_t>(8, r1 - rb);
    for (size_t b = 0; b < a.batch; ++b) {
      const int8_t* q = a.q + b * a.ldq;
      alignas(32) int32_t acc[8] = {};
      for (uint32_t i = 0; i < n; ++i) {
        const uint32_t r = rb + i, j0 = L.rowptr[r], j1 = L.rowptr[r + 1];
        acc[i] = L.col16 ? row_dot(L.col16, L.val, j0, j1, q) : row_dot(L.col32, L.val, j0, j1, q);
      }
      store_rows(ep, _mm256_load_si256(reinterpret_cast<const __m256i*>(acc)), a.xs[b], rb, n, y, b * ldy + rb);
    }
  }
}

}  // namespace pyrt::kernels
