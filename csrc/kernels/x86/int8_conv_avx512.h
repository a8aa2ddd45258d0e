// pyruntime: the positions-vectorized int8 conv tile on AVX-512 (int8_conv.h), templated on how 64 bytes of
// 16 positions x 4 columns meet one output row's 4 weights broadcast: DotVnni (vpdpbusd of the activations
// flipped to u8, the offset taken off with 128 * the row's weight sum; int32 wraps, so the result is exact
// whenever the true sum fits) or DotBw (AVX-512BW: vpmaddubsw of |w| against the activations negated where
// w is negative, then vpmaddwd by ones; a pair is at most 2 * 127 * 127: no saturation). 6 rows x 4 blocks of
// 16 positions per pass (24 accumulators); the int8 epilogue stores 16 contiguous outputs of a channel plane.
// Included by int8_conv_avx512.cpp and int8_conv_avx512vnni.cpp (internal linkage: one copy per level).
#pragma once

#include <immintrin.h>

#include <cstring>

#include "kernels/int8/int8_conv.h"
#include "kernels/int8/int8_layouts.h"
#include "kernels/x86/avx512_util.h"
#include "kernels/x86/int8_avx512.h"  // epilogue_store

namespace pyrt::kernels::avx512 {
namespace {

inline void conv_store16(const Int8ConvTile& t, size_t o, __m512i acc, size_t p, __mmask16 m) {
  epilogue_store(acc, _mm512_set1_ps(t.xs * t.wscale[o]), _mm512_set1_ps(t.bias ? t.bias[o] : 0.0f), t.lo, t.hi,
                 t.inv_out, t.y, o * t.plane + p, m);
}

struct ConvDotBw {
  struct W {
    __m512i absw;
    __mmask64 neg;
  };
  static __m512i act(__m512i a) { return a; }
  static W weight(int32_t wd) {
    const __m512i w = _mm512_set1_epi32(wd);
    return {_mm512_abs_epi8(w), _mm512_movepi8_mask(w)};
  }
  static __m512i dot(__m512i acc, __m512i a, const W& w) {
    const __m512i as = _mm512_mask_sub_epi8(a, w.neg, _mm512_setzero_si512(), a);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(w.absw, as), _mm512_set1_epi16(1)));
  }
  static int32_t fix(int32_t) { return 0; }
};

#if defined(__AVX512VNNI__)
struct ConvDotVnni {
  struct W {
    __m512i w;
  };
  static __m512i act(__m512i a) { return _mm512_xor_si512(a, _mm512_set1_epi8(-128)); }
  static W weight(int32_t wd) { return {_mm512_set1_epi32(wd)}; }
  static __m512i dot(__m512i acc, __m512i a, const W& w) { return _mm512_dpbusd_epi32(acc, a, w.w); }
  static int32_t fix(int32_t wsum) { return int32_t(uint32_t(wsum) << 7); }
};
#endif

inline constexpr int kConvRows = 6;  // output rows per full tile

template <class Dot, int OB, int PB>
void conv_block(const Int8ConvTile& t, size_t o0, size_t j0) {
  const size_t groups = t.kp / 4;
  const int8_t* a[PB];
  for (int i = 0; i < PB; ++i) a[i] = t.a + (j0 + i) * 16 * t.kp;
  const int8_t* w = t.w + o0 * t.kp;
  // Fully unrolled: GCC otherwise moves the accumulators through the stack at every group.
  __m512i acc[OB][PB];
#pragma GCC unroll 8
  for (int r = 0; r < OB; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < PB; ++i) acc[r][i] = _mm512_setzero_si512();
  for (size_t g = 0; g < groups; ++g) {
    __m512i av[PB];
#pragma GCC unroll 4
    for (int i = 0; i < PB; ++i) av[i] = Dot::act(_mm512_loadu_si512(a[i] + g * 64));
#pragma GCC unroll 8
    for (int r = 0; r < OB; ++r) {
      int32_t wd;
      std::memcpy(&wd, w + r * t.kp + g * 4, 4);
      const typename Dot::W wb = Dot::weight(wd);
#pragma GCC unroll 4
      for (int i = 0; i < PB; ++i) acc[r][i] = Dot::dot(acc[r][i], av[i], wb);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < OB; ++r) {
    const __m512i fix = _mm512_set1_epi32(Dot::fix(t.wsum[o0 + r]));
#pragma GCC unroll 4
    for (int i = 0; i < PB; ++i) {
      const size_t p = (j0 + i) * 16;
      if (p < t.n) conv_store16(t, o0 + r, _mm512_sub_epi32(acc[r][i], fix), p, tail_mask(t.n - p));
    }
  }
}

// Blocks of 16 positions: 4 at a time with the full row tile (6 rows x 4 blocks = 24 accumulators: 4 + 6 loads
// per 24 dots, where 8 x 2 took 10 per 16; 1.05x-1.6x on ResNet-20 and MobileNet-V2 shapes), then 2, then 1.
template <class Dot, int OB>
void conv_rows(const Int8ConvTile& t, size_t o0) {
  const size_t blocks = (t.n + 15) / 16;
  size_t j = 0;
  if constexpr (OB == kConvRows)
    for (; j + 4 <= blocks; j += 4) conv_block<Dot, OB, 4>(t, o0, j);
  for (; j + 2 <= blocks; j += 2) conv_block<Dot, OB, 2>(t, o0, j);
  if (j < blocks) conv_block<Dot, OB, 1>(t, o0, j);
}

template <class Dot>
void conv_tile(const Int8ConvTile& t) {
  size_t o = 0;
  for (; o + kConvRows <= t.og; o += kConvRows) conv_rows<Dot, kConvRows>(t, o);
  if (o + 4 <= t.og) conv_rows<Dot, 4>(t, o), o += 4;
  if (o + 2 <= t.og) conv_rows<Dot, 2>(t, o), o += 2;
  if (o < t.og) conv_rows<Dot, 1>(t, o);
}

}  // namespace
}  // namespace pyrt::kernels::avx512
