// pyruntime: direct convolution, AVX2 + FMA (conv/direct.h, tiles in conv/direct_tiles.h). Masked loads
// (vmaskmovps: masked lanes read nothing) at the edges of input rows and for partial sums; a partial last
// vector of a tile is written by plain stores of 4, 2 and 1 floats.
#include <immintrin.h>

#include <algorithm>

#include "kernels/conv/direct_lanes_tiles.h"
#include "kernels/conv/direct_tiles.h"

namespace pyrt::kernels {
namespace {

struct Ymm {
  using vec = __m256;
  using mask = __m256i;
  static constexpr int kLanes = 8;
  static constexpr bool kCheapMasks = false;
  static mask tail(size_t n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n > 8 ? 8 : n)), lane);
  }
  static vec zero() { return _mm256_setzero_ps(); }
  static vec set1(float f) { return _mm256_set1_ps(f); }
  static vec load(const float* p) { return _mm256_loadu_ps(p); }
  static vec load(const float* p, mask m) { return _mm256_maskload_ps(p, m); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static vec min(vec a, vec b) { return _mm256_min_ps(a, b); }
  static vec max(vec a, vec b) { return _mm256_max_ps(a, b); }
  static void store(float* p, vec v) { _mm256_storeu_ps(p, v); }
  // m is always a prefix of lanes (tail(n)) here: up to three plain stores (4, 2, 1 floats) instead of
  // vmaskmovps, which costs tens of cycles on Zen 3.
  static void store(float* p, vec v, mask m) {
    const int n = __builtin_popcount(unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(m))));
    __m128 h = _mm256_castps256_ps128(v);
    if (n & 4) {
      _mm_storeu_ps(p, h);
      h = _mm256_extractf128_ps(v, 1);
      p += 4;
    }
    if (n & 2) {
      _mm_storel_pi(reinterpret_cast<__m64*>(p), h);
      h = _mm_movehl_ps(h, h);
      p += 2;
    }
    if (n & 1) _mm_store_ss(p, h);
  }
  static mask range(int64_t lo, int64_t hi) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int l = int(std::clamp<int64_t>(lo, -1, 8)), h = int(std::clamp<int64_t>(hi, 0, 8));
    return _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(h), lane),
                            _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(l - 1)));
  }
  // direct_lanes (conv/direct_lanes_tiles.h): the P <= 8 pixel vectors px (lane c: channel c) transposed by
  // an 8 x 8 in-register transpose (rows past P zero), then channel c's P pixels to y + c * plane (plain
  // stores of 4, 2 and 1 floats, as store above).
  template <int P>
  static void store_columns(const vec (&px)[P], float* y, size_t plane, uint32_t n) {
    static_assert(P >= 1 && P <= 8);
    __m256 r[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) r[i] = i < P ? px[i] : _mm256_setzero_ps();
    __m256 t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {  // per 128-bit lane: [a0 b0 a1 b1], [a2 b2 a3 b3]
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 8; i += 4) {  // u[i + j], lane k: column 4k + j of rows i .. i + 3
      u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
      u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
      u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      if (uint32_t(j) < n) store_prefix<P>(y + size_t(j) * plane, _mm256_permute2f128_ps(u[j], u[4 + j], 0x20));
      if (uint32_t(4 + j) < n) store_prefix<P>(y + size_t(4 + j) * plane, _mm256_permute2f128_ps(u[j], u[4 + j], 0x31));
    }
  }
  template <int P>  // lanes [0, P) to p: plain stores of 8, or 4, 2 and 1 floats
  static void store_prefix(float* p, vec v) {
    if constexpr (P == 8) {
      _mm256_storeu_ps(p, v);
    } else {
      __m128 h = _mm256_castps256_ps128(v);
      if constexpr ((P & 4) != 0) {
        _mm_storeu_ps(p, h);
        h = _mm256_extractf128_ps(v, 1);
        p += 4;
      }
      if constexpr ((P & 2) != 0) {
        _mm_storel_pi(reinterpret_cast<__m64*>(p), h);
        h = _mm_movehl_ps(h, h);
        p += 2;
      }
      if constexpr ((P & 1) != 0) _mm_store_ss(p, h);
    }
  }
  static void deinterleave2(vec a, vec b, vec* even, vec* odd) {
    // [a0 a2 b0 b2 | a4 a6 b4 b6] -> 64-bit lanes 0, 2, 1, 3 -> [a0 a2 a4 a6 b0 b2 b4 b6]
    const __m256 e = _mm256_shuffle_ps(a, b, 0x88), o = _mm256_shuffle_ps(a, b, 0xDD);
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8));
  }
};

}  // namespace

void pyrt_conv_direct__avx2(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                            uint32_t oy0, uint32_t oy1) {
  direct_conv<Ymm>(L, x, xp, y, bias, oy0, oy1);
}

void pyrt_conv_lanes__avx2(const DirectConvLayout& L, const float* x, float* xp, float* y, const float*,
                           uint32_t oy0, uint32_t oy1) {
  lanes_conv<Ymm>(L, x, xp, y, oy0, oy1);
}

}  // namespace pyrt::kernels
