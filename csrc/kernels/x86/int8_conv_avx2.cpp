// pyruntime: int8 convolution kernels, AVX2 (int8_conv.h): the depthwise body compiled for AVX2 + FMA, the
// transpose of a tile into planes by 8 x 8 floats in registers (unpack / shuffle / permute), and the
// channels-last copy by 16 x 16 bytes in registers (four rounds of "interleave row i with row i + 8"), and
// the positions-vectorized conv tile: vpmaddubsw of |w| (broadcast) against the activations with w's sign
// (vpsignb), which cannot saturate (2 * 127 * 127 < 2^15), then vpmaddwd by ones: 4 rows x 16 positions.
// And the patch gather, 8 positions per vpgatherdd.
#include <immintrin.h>

#include <cstring>

#include "kernels/int8/int8_dwconv_impl.h"

namespace pyrt::kernels {

namespace {

// As int8_conv_avx512.cpp's, 16 outputs at a time.
void dw_block_sums(const int8_t* base, const size_t* off, const int16_t* w, size_t nt, size_t n, int32_t* acc) {
  for (size_t i = 0; i < n; i += 16) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0;
    size_t k = 0;
    for (; k + 2 <= nt; k += 2) {
      const __m256i x0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(base + off[k] + i)));
      const __m256i x1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(base + off[k + 1] + i)));
      const __m256i s = _mm256_add_epi16(_mm256_mullo_epi16(x0, _mm256_set1_epi16(w[k])),
                                         _mm256_mullo_epi16(x1, _mm256_set1_epi16(w[k + 1])));
      a0 = _mm256_add_epi32(a0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s)));
      a1 = _mm256_add_epi32(a1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s, 1)));
    }
    if (k < nt) {
      const __m256i x0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(base + off[k] + i)));
      const __m256i s = _mm256_mullo_epi16(x0, _mm256_set1_epi16(w[k]));
      a0 = _mm256_add_epi32(a0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s)));
      a1 = _mm256_add_epi32(a1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s, 1)));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + i), a0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + i + 8), a1);
  }
}

}  // namespace

void pyrt_i8_dwconv__avx2(const Int8DwPlane& p) { detail::dwconv_plane<dw_block_sums>(p); }
void pyrt_i8_dw_phases__avx2(const Int8DwPhases& f, const int8_t* src, int8_t* dst) { detail::dw_phases(f, src, dst); }

void pyrt_transpose_planes__avx2(const float* tile, size_t n, size_t og, float* y, size_t plane) {
  size_t o0 = 0;
  for (; o0 + 8 <= og; o0 += 8) {
    size_t i0 = 0;
    for (; i0 + 8 <= n; i0 += 8) {
      __m256 r[8];
      for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(tile + (i0 + k) * og + o0);  // position i0 + k
      const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
      const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
      const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
      const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
      const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      const __m256 c[8] = {_mm256_permute2f128_ps(s0, s4, 0x20), _mm256_permute2f128_ps(s1, s5, 0x20),
                           _mm256_permute2f128_ps(s2, s6, 0x20), _mm256_permute2f128_ps(s3, s7, 0x20),
                           _mm256_permute2f128_ps(s0, s4, 0x31), _mm256_permute2f128_ps(s1, s5, 0x31),
                           _mm256_permute2f128_ps(s2, s6, 0x31), _mm256_permute2f128_ps(s3, s7, 0x31)};
      for (int k = 0; k < 8; ++k) _mm256_storeu_ps(y + (o0 + k) * plane + i0, c[k]);  // channel o0 + k
    }
    for (; i0 < n; ++i0)
      for (size_t o = o0; o < o0 + 8; ++o) y[o * plane + i0] = tile[i0 * og + o];
  }
  for (; o0 < og; ++o0)
    for (size_t i = 0; i < n; ++i) y[o0 * plane + i] = tile[i * og + o0];
}

namespace {

// 16 channels (rows plane apart from s) x `cols` positions from x0 (16, or 8 with the upper half of each load
// zero) transposed by four rounds of byte unpacks into position rows dst_stride apart at d. Fully unrolled,
// so that the 16 rows live in registers (GCC otherwise keeps both arrays on the stack).
template <int Cols>
inline void transpose16(const int8_t* s, size_t plane, int8_t* d, size_t dst_stride) {
  __m128i r[16], n[16];
#pragma GCC unroll 16
  for (int k = 0; k < 16; ++k) {
    const auto* p = reinterpret_cast<const __m128i*>(s + k * plane);
    r[k] = Cols == 16 ? _mm_loadu_si128(p) : _mm_loadl_epi64(p);
  }
#pragma GCC unroll 4
  for (int round = 0; round < 4; ++round) {
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      n[2 * k] = _mm_unpacklo_epi8(r[k], r[k + 8]);
      n[2 * k + 1] = _mm_unpackhi_epi8(r[k], r[k + 8]);
    }
#pragma GCC unroll 16
    for (int k = 0; k < 16; ++k) r[k] = n[k];
  }
#pragma GCC unroll 16
  for (int k = 0; k < Cols; ++k) _mm_storeu_si128(reinterpret_cast<__m128i*>(d + k * dst_stride), r[k]);
}

}  // namespace

// A row's last w % 16 positions are one more block ending at w (16 or 8 wide, overlapping the previous one:
// the same bytes written twice), so only rows narrower than 8 and channels past a multiple of 16 copy bytes.
void pyrt_i8_channels_last__avx2(const int8_t* src, size_t channels, size_t h, size_t w, int8_t* dst, size_t dst_row,
                                 size_t dst_stride) {
  const size_t plane = h * w;
  for (size_t y = 0; y < h; ++y) {
    size_t c0 = 0;
    for (; c0 + 16 <= channels; c0 += 16) {
      const int8_t* s = src + c0 * plane + y * w;
      int8_t* d = dst + y * dst_row + c0;
      size_t x0 = 0;
      for (; x0 + 16 <= w; x0 += 16) transpose16<16>(s + x0, plane, d + x0 * dst_stride, dst_stride);
      if (x0 == w) continue;
      if (w >= 16) {
        transpose16<16>(s + w - 16, plane, d + (w - 16) * dst_stride, dst_stride);
      } else if (w >= 8) {
        transpose16<8>(s, plane, d, dst_stride);
        transpose16<8>(s + w - 8, plane, d + (w - 8) * dst_stride, dst_stride);
      } else {
        for (size_t c = 0; c < 16; ++c)
          for (size_t x = 0; x < w; ++x) d[x * dst_stride + c] = s[c * plane + x];
      }
    }
    for (size_t c = c0; c < channels; ++c) {
      const int8_t* s = src + c * plane + y * w;
      int8_t* d = dst + y * dst_row + c;
      for (size_t x = 0; x < w; ++x) d[x * dst_stride] = s[x];
    }
  }
}

namespace {

// The epilogue of 8 positions of row o, lanes [0, m) stored.
void store8(const Int8ConvTile& t, size_t o, __m256i acc, size_t p, size_t m) {
  const __m256 s = _mm256_set1_ps(t.xs * t.wscale[o]);
  const __m256 b = _mm256_set1_ps(t.bias ? t.bias[o] : 0.0f);
  __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), s, b);
  v = _mm256_max_ps(_mm256_set1_ps(t.lo), v);  // lo > v ? lo : v (a NaN v stays)
  v = _mm256_min_ps(_mm256_set1_ps(t.hi), v);  // hi < v ? hi : v
  if (t.inv_out > 0.0f) {
    const __m256 q = _mm256_mul_ps(v, _mm256_set1_ps(t.inv_out));
    const __m256 c = _mm256_and_ps(_mm256_min_ps(_mm256_max_ps(q, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f)),
                                   _mm256_cmp_ps(q, q, _CMP_ORD_Q));  // NaN -> 0
    const __m256i d = _mm256_cvtps_epi32(c);                             // half to even
    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
    alignas(16) int8_t out[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(out), _mm_packs_epi16(w16, w16));
    std::memcpy(static_cast<int8_t*>(t.y) + o * t.plane + p, out, m);
  } else if (m == 8) {
    _mm256_storeu_ps(static_cast<float*>(t.y) + o * t.plane + p, v);
  } else {
    alignas(32) float out[8];
    _mm256_store_ps(out, v);
    std::memcpy(static_cast<float*>(t.y) + o * t.plane + p, out, m * sizeof(float));
  }
}

template <int OB>
void conv_block(const Int8ConvTile& t, size_t o0, size_t j) {
  const size_t groups = t.kp / 4;
  const int8_t* a = t.a + j * 16 * t.kp;
  const int8_t* w = t.w + o0 * t.kp;
  __m256i acc[OB][2];
  for (int r = 0; r < OB; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (size_t g = 0; g < groups; ++g) {
    const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + g * 64));       // positions 0..7
    const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + g * 64 + 32));  // 8..15
    for (int r = 0; r < OB; ++r) {
      int32_t wd;
      std::memcpy(&wd, w + r * t.kp + g * 4, 4);
      const __m256i ws = _mm256_set1_epi32(wd), wa = _mm256_abs_epi8(ws);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(wa, _mm256_sign_epi8(a0, ws)), ones));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(wa, _mm256_sign_epi8(a1, ws)), ones));
    }
  }
  for (int r = 0; r < OB; ++r)
    for (int h = 0; h < 2; ++h) {
      const size_t p = j * 16 + h * 8;
      if (p < t.n) store8(t, o0 + r, acc[r][h], p, std::min<size_t>(8, t.n - p));
    }
}

template <int OB>
void conv_rows(const Int8ConvTile& t, size_t o0) {
  for (size_t j = 0; j * 16 < t.n; ++j) conv_block<OB>(t, o0, j);
}

}  // namespace

void pyrt_i8_conv_tile__avx2(const Int8ConvTile& t) {
  size_t o = 0;
  for (; o + 4 <= t.og; o += 4) conv_rows<4>(t, o);
  if (o + 2 <= t.og) conv_rows<2>(t, o), o += 2;
  if (o < t.og) conv_rows<1>(t, o);
}

// The patch gather (int8_conv.h), 8 positions per vpgatherdd: two per 4-column group.
void pyrt_i8_patch_gather__avx2(const Int8PatchGather& p) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i pos[2], keep[2];
  for (int h = 0; h < 2; ++h) {
    const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(p.m) - 8 * h), lane);  // position < m
    keep[h] = live;
    pos[h] = _mm256_and_si256(_mm256_maskload_epi32(p.pos + 8 * h, live), live);
  }
  int8_t* out = p.dst;
  for (uint32_t t = 0; t < p.taps; ++t) {
    const int* s = reinterpret_cast<const int*>(p.src + p.tap[t]);
    for (uint32_t c = 0; c < p.cg; c += 4, out += 64, s += 1)
      for (int h = 0; h < 2; ++h)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * h),
                            _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), s, pos[h], keep[h], 1));
  }
}

}  // namespace pyrt::kernels
