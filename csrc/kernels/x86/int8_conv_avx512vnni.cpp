// pyruntime: a tile of a dense int8 convolution with positions vectorized (int8_conv.h), AVX-512 VNNI: each
// 64-byte group of 16 positions x 4 columns, flipped to u8 (q + 128), meets each output row's 4 weights
// broadcast, in vpdpbusd; 8 rows x 2 blocks of 16 positions per pass (16 accumulators). The offset is taken
// off with 128 * the row's weight sum (int32 wraps, so the result is exact whenever the true sum fits), then
// the int8 epilogue stores 16 contiguous outputs of a channel plane.
#include <immintrin.h>

#include <cstring>

#include "kernels/int8/int8_conv.h"
#include "kernels/int8/int8_layouts.h"
#include "kernels/x86/avx512_util.h"

namespace pyrt::kernels {
namespace {

void store16(const Int8ConvTile& t, size_t o, __m512i acc, size_t p, __mmask16 m) {
  const __m512 s = _mm512_set1_ps(t.xs * t.wscale[o]);
  const __m512 b = _mm512_set1_ps(t.bias ? t.bias[o] : 0.0f);
  __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), s, b);
  v = _mm512_max_ps(_mm512_set1_ps(t.lo), v);  // lo > v ? lo : v (a NaN v stays)
  v = _mm512_min_ps(_mm512_set1_ps(t.hi), v);  // hi < v ? hi : v
  if (t.inv_out > 0.0f) {
    __m512 q = _mm512_mul_ps(v, _mm512_set1_ps(t.inv_out));
    q = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(q, q, _CMP_ORD_Q), q);  // NaN -> 0
    q = _mm512_min_ps(_mm512_max_ps(q, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
    _mm512_mask_cvtepi32_storeu_epi8(static_cast<int8_t*>(t.y) + o * t.plane + p, m, _mm512_cvtps_epi32(q));
  } else {
    _mm512_mask_storeu_ps(static_cast<float*>(t.y) + o * t.plane + p, m, v);
  }
}

template <int OB, int PB>
void block(const Int8ConvTile& t, size_t o0, size_t j0) {
  const size_t groups = t.kp / 4;
  const int8_t* a[PB];
  for (int i = 0; i < PB; ++i) a[i] = t.a + (j0 + i) * 16 * t.kp;
  const int8_t* w = t.w + o0 * t.kp;
  __m512i acc[OB][PB];
  for (int r = 0; r < OB; ++r)
    for (int i = 0; i < PB; ++i) acc[r][i] = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(-128);
  for (size_t g = 0; g < groups; ++g) {
    __m512i av[PB];
    for (int i = 0; i < PB; ++i) av[i] = _mm512_xor_si512(_mm512_loadu_si512(a[i] + g * 64), flip);
    for (int r = 0; r < OB; ++r) {
      int32_t wd;
      std::memcpy(&wd, w + r * t.kp + g * 4, 4);
      const __m512i wb = _mm512_set1_epi32(wd);
      for (int i = 0; i < PB; ++i) acc[r][i] = _mm512_dpbusd_epi32(acc[r][i], av[i], wb);
    }
  }
  for (int r = 0; r < OB; ++r) {
    const __m512i fix = _mm512_set1_epi32(int32_t(uint32_t(t.wsum[o0 + r]) << 7));
    for (int i = 0; i < PB; ++i) {
      const size_t p = (j0 + i) * 16;
      if (p < t.n) store16(t, o0 + r, _mm512_sub_epi32(acc[r][i], fix), p, avx512::tail_mask(t.n - p));
    }
  }
}

template <int OB>
void rows(const Int8ConvTile& t, size_t o0) {
  const size_t blocks = (t.n + 15) / 16;
  size_t j = 0;
  for (; j + 2 <= blocks; j += 2) block<OB, 2>(t, o0, j);
  if (j < blocks) block<OB, 1>(t, o0, j);
}

}  // namespace

void pyrt_i8_conv_tile__avx512vnni(const Int8ConvTile& t) {
  size_t o = 0;
  for (; o + 8 <= t.og; o += 8) rows<8>(t, o);
  if (o + 4 <= t.og) rows<4>(t, o), o += 4;
  if (o + 2 <= t.og) rows<2>(t, o), o += 2;
  if (o < t.og) rows<1>(t, o);
}

}  // namespace pyrt::kernels
