// pyruntime: direct convolution, AVX-512 F/VL (conv/direct.h, tiles in conv/direct_tiles.h).
// Output rows of at most 8 columns use 8-lane ymm tiles with AVX-512VL masks (a zmm would leave half its
// lanes idle, and Zen 4 splits a zmm operation into two ymm halves anyway); wider rows use zmm.
#include <algorithm>

#include "kernels/x86/avx512_util.h"

#include "kernels/conv/direct_lanes_tiles.h"
#include "kernels/conv/direct_tiles.h"

namespace pyrt::kernels {
namespace {

struct Zmm {
  using vec = __m512;
  using mask = __mmask16;
  static constexpr int kLanes = 16;
  static constexpr bool kCheapMasks = true;
  static mask tail(size_t n) { return avx512::tail_mask(n); }
  static vec zero() { return _mm512_setzero_ps(); }
  static vec set1(float f) { return _mm512_set1_ps(f); }
  static vec load(const float* p) { return _mm512_loadu_ps(p); }
  static vec load(const float* p, mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static vec min(vec a, vec b) { return _mm512_min_ps(a, b); }
  static vec max(vec a, vec b) { return _mm512_max_ps(a, b); }
  static void store(float* p, vec v) { _mm512_storeu_ps(p, v); }
  static void store(float* p, vec v, mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static mask range(int64_t lo, int64_t hi) {
    return tail(size_t(std::clamp<int64_t>(hi, 0, 16))) & mask(~tail(size_t(std::clamp<int64_t>(lo, 0, 16))));
  }
  // direct_lanes (conv/direct_lanes_tiles.h): the P <= 16 pixel vectors px (lane c: channel c) transposed by
  // a 16 x 16 in-register transpose (rows past P zero), then channel c's P pixels to y + c * plane.
  template <int P>
  static void store_columns(const vec (&px)[P], float* y, size_t plane, uint32_t n) {
    static_assert(P >= 1 && P <= 16);
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) r[i] = i < P ? px[i] : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {  // per 128-bit lane: [a0 b0 a1 b1], [a2 b2 a3 b3]
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {  // r[i + j], lane k: column 4k + j of rows i .. i + 3
      const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
      const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
      r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
      r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
      r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
      r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    const __mmask16 m = avx512::tail_mask(P);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {  // columns j, 4 + j, 8 + j, 12 + j: lane k of r[j], r[4 + j], r[8 + j], r[12 + j]
      const __m512 u0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88), u1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
      const __m512 u2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
      const __m512 u3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
      const __m512 col[4] = {_mm512_shuffle_f32x4(u0, u2, 0x88), _mm512_shuffle_f32x4(u1, u3, 0x88),
                             _mm512_shuffle_f32x4(u0, u2, 0xdd), _mm512_shuffle_f32x4(u1, u3, 0xdd)};
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k)
        if (uint32_t(4 * k + j) < n) _mm512_mask_storeu_ps(y + size_t(4 * k + j) * plane, m, col[k]);
    }
  }
  static void deinterleave2(vec a, vec b, vec* even, vec* odd) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    *even = _mm512_permutex2var_ps(a, ie, b);
    *odd = _mm512_permutex2var_ps(a, _mm512_add_epi32(ie, _mm512_set1_epi32(1)), b);
  }
};

struct YmmVL {
  using vec = __m256;
  using mask = __mmask8;
  static constexpr int kLanes = 8;
  static constexpr bool kCheapMasks = true;
  static mask tail(size_t n) { return n >= 8 ? mask(0xFF) : mask((1u << n) - 1u); }
  static vec zero() { return _mm256_setzero_ps(); }
  static vec set1(float f) { return _mm256_set1_ps(f); }
  static vec load(const float* p) { return _mm256_loadu_ps(p); }
  static vec load(const float* p, mask m) { return _mm256_maskz_loadu_ps(m, p); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static vec min(vec a, vec b) { return _mm256_min_ps(a, b); }
  static vec max(vec a, vec b) { return _mm256_max_ps(a, b); }
  static void store(float* p, vec v) { _mm256_storeu_ps(p, v); }
  static void store(float* p, vec v, mask m) { _mm256_mask_storeu_ps(p, m, v); }
  static mask range(int64_t lo, int64_t hi) {
    return tail(size_t(std::clamp<int64_t>(hi, 0, 8))) & mask(~tail(size_t(std::clamp<int64_t>(lo, 0, 8))));
  }
  static void deinterleave2(vec a, vec b, vec* even, vec* odd) {
    const __m256i ie = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    *even = _mm256_permutex2var_ps(a, ie, b);
    *odd = _mm256_permutex2var_ps(a, _mm256_add_epi32(ie, _mm256_set1_epi32(1)), b);
  }
};

}  // namespace

void pyrt_conv_direct__avx512(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                              uint32_t oy0, uint32_t oy1) {
  if (L.out_w <= 8) direct_conv<YmmVL>(L, x, xp, y, bias, oy0, oy1);
  else direct_conv<Zmm>(L, x, xp, y, bias, oy0, oy1);
}

void pyrt_conv_lanes__avx512(const DirectConvLayout& L, const float* x, float* xp, float* y, const float*,
                             uint32_t oy0, uint32_t oy1) {
  lanes_conv<Zmm>(L, x, xp, y, oy0, oy1);
}

}  // namespace pyrt::kernels
