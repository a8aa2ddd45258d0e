// pyruntime: the XNOR GEMM with AVX512_VPOPCNTDQ (binary_kernels.h, layout b1_r8). A tile of RB row blocks
// (8 rows each) x S samples keeps RB * S zmm of per-row mismatch counts: per weight word j, RB loads of 8 rows'
// words, S broadcasts of the samples' word j, and RB * S xor + vpopcntq + add. The counts stay in the rows'
// lanes, so the epilogue is 8 rows at a time: the same fma (f32) or compare (bits) as the reference.
#include <immintrin.h>

// GCC 12's AVX-512 headers trip its own (maybe-)uninitialized warnings in the conversions and reductions
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include "kernels/binary/binary_kernels.h"

namespace pyrt::kernels {
namespace {

inline void epilogue(__m512i count, size_t rb, size_t r1, const BinaryEpilogue& ep, void* y, size_t b, size_t ldy) {
  const __m256i m = _mm512_cvtepi64_epi32(count);
  const size_t r = rb * 8;
  const __mmask8 keep = r + 8 <= r1 ? __mmask8(0xFF) : __mmask8((1u << (r1 - r)) - 1);
  if (ep.counts) {
    _mm256_mask_storeu_epi32(static_cast<int32_t*>(y) + b * ldy + r, keep, m);
    return;
  }
  if (ep.limit) {
    const __mmask8 bits = _mm256_cmple_epi32_mask(m, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ep.limit + r)));
    static_cast<uint8_t*>(y)[b * ldy + rb] = bits;
    return;
  }
  const __m256 dot = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_set1_epi32(int32_t(ep.k)), _mm256_slli_epi32(m, 1)));
  const __m256 v = _mm256_fmadd_ps(dot, _mm256_loadu_ps(ep.alpha + r), _mm256_loadu_ps(ep.bias + r));
  _mm256_mask_storeu_ps(static_cast<float*>(y) + b * ldy + r, keep, v);
}

template <int RB, int S>
void tile(const uint64_t* w8, size_t kw, size_t rb0, size_t r1, const uint64_t* x, size_t ldx, size_t b0,
          const BinaryEpilogue& ep, void* y, size_t ldy) {
  __m512i acc[RB][S];
  for (int i = 0; i < RB; ++i)
    for (int s = 0; s < S; ++s) acc[i][s] = _mm512_setzero_si512();
  const uint64_t* w = w8 + rb0 * kw * 8;
  const uint64_t* xb = x + b0 * ldx;
  for (size_t j = 0; j < kw; ++j) {
    __m512i wv[RB];
    for (int i = 0; i < RB; ++i) wv[i] = _mm512_load_si512(w + (i * kw + j) * 8);
    for (int s = 0; s < S; ++s) {
      const __m512i xv = _mm512_set1_epi64(int64_t(xb[s * ldx + j]));
      for (int i = 0; i < RB; ++i)
        acc[i][s] = _mm512_add_epi64(acc[i][s], _mm512_popcnt_epi64(_mm512_xor_si512(wv[i], xv)));
    }
  }
  for (int i = 0; i < RB; ++i)
    for (int s = 0; s < S; ++s) epilogue(acc[i][s], rb0 + i, r1, ep, y, b0 + s, ldy);
}

template <int S>
void samples(const uint64_t* w8, size_t kw, size_t r0, size_t r1, const uint64_t* x, size_t ldx, size_t b0,
             const BinaryEpilogue& ep, void* y, size_t ldy) {
  constexpr int RB = S == 1 ? 8 : 4;
  const size_t rb1 = (r1 + 7) / 8;
  size_t rb = r0 / 8;
  for (; rb + RB <= rb1; rb += RB) tile<RB, S>(w8, kw, rb, r1, x, ldx, b0, ep, y, ldy);
  for (; rb < rb1; ++rb) tile<1, S>(w8, kw, rb, r1, x, ldx, b0, ep, y, ldy);
}

}  // namespace

void pyrt_xnor_gemm__avx512popcnt(const uint64_t* w8, size_t kw, size_t r0, size_t r1, const uint64_t* x, size_t ldx,
                                  size_t batch, const BinaryEpilogue& ep, void* y, size_t ldy) {
  size_t b = 0;
  for (; b + 4 <= batch; b += 4) samples<4>(w8, kw, r0, r1, x, ldx, b, ep, y, ldy);
  switch (batch - b) {
    case 3: samples<3>(w8, kw, r0, r1, x, ldx, b, ep, y, ldy); break;
    case 2: samples<2>(w8, kw, r0, r1, x, ldx, b, ep, y, ldy); break;
    case 1: samples<1>(w8, kw, r0, r1, x, ldx, b, ep, y, ldy); break;
    default: break;
  }
}

}  // namespace pyrt::kernels
