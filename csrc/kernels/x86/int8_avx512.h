// pyruntime: the AVX-512 int8 GEMM on the i8_r16k4 layout (int8/int8_layouts.h), templated on how a block
// of 16 rows x 4 columns meets 4 broadcast activations (the Dot policy): int8_gemm_avx512.cpp (AVX-512BW:
// vpmaddubsw + vpmaddwd) and int8_gemm_avx512vnni.cpp (vpdpbusd) instantiate it. Include only from files
// compiled with the AVX-512 flags.
//
// A tile is R row blocks (16 R rows) x T samples, R * T int32 accumulators of 16 lanes (one lane per row),
// over every group of 4 columns: R weight vectors loaded, T activation words broadcast, R * T dot steps.
// Sums are exact in int32, so the tiling never changes a result.
#pragma once

#include <cstring>

#include "kernels/int8/int8_layouts.h"
#include "kernels/x86/avx512_util.h"

namespace pyrt::kernels::avx512 {
namespace {

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// The epilogue (int8_layouts.h) of 16 rows r .. r + n - 1 (n <= 16) of one sample, stored at y + at.
inline void store_rows(const Int8Epilogue& ep, __m512i acc, float xs, uint32_t r, uint32_t n, void* y, size_t at) {
  const __mmask16 m = tail_mask(n);
  const __m512 s = _mm512_mul_ps(_mm512_set1_ps(xs), _mm512_loadu_ps(ep.wscale + r));
  const __m512 b = ep.bias ? _mm512_loadu_ps(ep.bias + r) : _mm512_setzero_ps();
  __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), s, b);
  v = _mm512_max_ps(_mm512_set1_ps(ep.lo), v);  // lo > v ? lo : v (a NaN v stays)
  v = _mm512_min_ps(_mm512_set1_ps(ep.hi), v);  // hi < v ? hi : v
  if (ep.inv_out > 0.0f) {
    __m512 t = _mm512_mul_ps(v, _mm512_set1_ps(ep.inv_out));
    t = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(t, t, _CMP_ORD_Q), t);  // NaN -> 0
    t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
    _mm512_mask_cvtepi32_storeu_epi8(static_cast<int8_t*>(y) + at, m, _mm512_cvtps_epi32(t));  // half to even
  } else {
    _mm512_mask_storeu_ps(static_cast<float*>(y) + at, m, v);
  }
}

template <class Dot, int R, int T>
void tile(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t rb, size_t b0, uint32_t r1,
          void* y, size_t ldy) {
  const size_t groups = L.kp / 4;
  const int8_t* wp[R];
  const int8_t* qp[T];
  for (int i = 0; i < R; ++i) wp[i] = L.w + (size_t(rb) + i) * groups * 64;
  for (int t = 0; t < T; ++t) qp[t] = a.q + (b0 + t) * a.ldq;
  __m512i acc[R][T];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) acc[i][t] = _mm512_setzero_si512();
  for (size_t g = 0; g < groups; ++g) {
    typename Dot::W w[R];
    for (int i = 0; i < R; ++i) w[i] = Dot::prep(_mm512_loadu_si512(wp[i] + g * 64));
    for (int t = 0; t < T; ++t) {
      const __m512i q = Dot::bcast(qp[t] + g * 4);
      for (int i = 0; i < R; ++i) acc[i][t] = Dot::dot(acc[i][t], w[i], q);
    }
  }
  for (int i = 0; i < R; ++i) {
    const uint32_t r = (rb + i) * 16;
    const __m512i fix = Dot::correction(L.rowsum + r);
    for (int t = 0; t < T; ++t)
      store_rows(ep, _mm512_sub_epi32(acc[i][t], fix), a.xs[b0 + t], r, std::min<uint32_t>(16, r1 - r), y,
                 (b0 + t) * ldy + r);
  }
}

template <class Dot, int R>
void tiles_of_rows(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t rb, uint32_t r1, void* y,
                   size_t ldy) {
  size_t b = 0;
  for (; b + 4 <= a.batch; b += 4) tile<Dot, R, 4>(L, a, ep, rb, b, r1, y, ldy);
  switch (a.batch - b) {
    case 3: return tile<Dot, R, 3>(L, a, ep, rb, b, r1, y, ldy);
    case 2: return tile<Dot, R, 2>(L, a, ep, rb, b, r1, y, ldy);
    case 1: return tile<Dot, R, 1>(L, a, ep, rb, b, r1, y, ldy);
    default: return;
  }
}

// Batch 1 streams 4 row blocks per pass (4 independent accumulators hide the dot latency); larger batches
// 2 row blocks x 4 samples (8 accumulators, each weight vector used 4 times from a register).
template <class Dot>
void gemm(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1, void* y,
          size_t ldy) {
  const uint32_t rb_end = (r1 + 15) / 16;
  uint32_t rb = r0 / 16;
  const uint32_t step = a.batch == 1 ? 4 : 2;
  for (; rb + step <= rb_end; rb += step) {
    if (step == 4) tiles_of_rows<Dot, 4>(L, a, ep, rb, r1, y, ldy);
    else tiles_of_rows<Dot, 2>(L, a, ep, rb, r1, y, ldy);
  }
  switch (rb_end - rb) {
    case 3: return tiles_of_rows<Dot, 3>(L, a, ep, rb, r1, y, ldy);
    case 2: return tiles_of_rows<Dot, 2>(L, a, ep, rb, r1, y, ldy);
    case 1: return tiles_of_rows<Dot, 1>(L, a, ep, rb, r1, y, ldy);
    default: return;
  }
}

}  // namespace
}  // namespace pyrt::kernels::avx512
