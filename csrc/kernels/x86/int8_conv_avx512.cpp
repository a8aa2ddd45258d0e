// pyruntime: int8 convolution kernels, AVX-512 (int8_conv.h): the positions-vectorized conv tile for
// AVX-512BW without VNNI (int8_conv_avx512.h: ConvDotBw), and the depthwise body with its tap sums in
// registers: 32 outputs at a time, two taps' int16 products added in int16 (|w x| <= 127 * 127, so a pair
// is at most 32,258: no overflow), then widened into two int32 accumulators. (The transpose uses the AVX2
// one.) And the patch gather: a tile block's 4-byte groups straight from the input with vpgatherdd.

// GCC 12 reports the intrinsics' own undefined pass-through operands as "maybe uninitialized"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include "kernels/int8/int8_dwconv_impl.h"
#include "kernels/x86/int8_conv_avx512.h"

namespace pyrt::kernels {
namespace {

void block_sums(const int8_t* base, const size_t* off, const int16_t* w, size_t nt, size_t n, int32_t* acc) {
  for (size_t i = 0; i < n; i += 32) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0;
    size_t k = 0;
    for (; k + 2 <= nt; k += 2) {
      const __m512i x0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + off[k] + i)));
      const __m512i x1 =
          _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + off[k + 1] + i)));
      const __m512i s = _mm512_add_epi16(_mm512_mullo_epi16(x0, _mm512_set1_epi16(w[k])),
                                         _mm512_mullo_epi16(x1, _mm512_set1_epi16(w[k + 1])));
      a0 = _mm512_add_epi32(a0, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(s)));
      a1 = _mm512_add_epi32(a1, _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(s, 1)));
    }
    if (k < nt) {
      const __m512i x0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + off[k] + i)));
      const __m512i s = _mm512_mullo_epi16(x0, _mm512_set1_epi16(w[k]));
      a0 = _mm512_add_epi32(a0, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(s)));
      a1 = _mm512_add_epi32(a1, _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(s, 1)));
    }
    _mm512_storeu_si512(acc + i, a0);  // acc holds kDwBlock + 32: the last chunk's extra lanes land there
    _mm512_storeu_si512(acc + i + 16, a1);
  }
}

}  // namespace

void pyrt_i8_dwconv__avx512(const Int8DwPlane& p) { detail::dwconv_plane<block_sums>(p); }
void pyrt_i8_conv_tile__avx512(const Int8ConvTile& t) { avx512::conv_tile<avx512::ConvDotBw>(t); }
void pyrt_i8_dw_phases__avx512(const Int8DwPhases& f, const int8_t* src, int8_t* dst) { detail::dw_phases(f, src, dst); }

void pyrt_i8_patch_gather__avx512(const Int8PatchGather& p) {
  const __mmask16 k = avx512::tail_mask(p.m);
  const __m512i pos = _mm512_maskz_loadu_epi32(k, p.pos);
  int8_t* out = p.dst;
  for (uint32_t t = 0; t < p.taps; ++t) {
    const int8_t* s = p.src + p.tap[t];
    for (uint32_t c = 0; c < p.cg; c += 4, out += 64)
      _mm512_storeu_si512(out, _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, pos, s + c, 1));
  }
}

}  // namespace pyrt::kernels
