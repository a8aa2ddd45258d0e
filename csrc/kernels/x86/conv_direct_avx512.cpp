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
