// pyruntime: int8 convolution kernels, AVX2 (int8_conv.h): the depthwise body compiled for AVX2 + FMA, the
// transpose of a tile into planes by 8 x 8 floats in registers (unpack / shuffle / permute), and the
// channels-last copy by 16 x 16 bytes in registers (four rounds of "interleave row i with row i + 8").
#include <immintrin.h>

#include "kernels/int8/int8_dwconv_impl.h"

namespace pyrt::kernels {

void pyrt_i8_dwconv__avx2(const Int8DwPlane& p) { detail::dwconv_plane(p); }
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

void pyrt_i8_channels_last__avx2(const int8_t* src, size_t channels, size_t h, size_t w, int8_t* dst, size_t dst_row,
                                 size_t dst_stride) {
  const size_t plane = h * w;
  for (size_t y = 0; y < h; ++y) {
    size_t c0 = 0;
    for (; c0 + 16 <= channels; c0 += 16) {
      const int8_t* s = src + c0 * plane + y * w;
      int8_t* d = dst + y * dst_row + c0;
      size_t x0 = 0;
      for (; x0 + 16 <= w; x0 += 16) {
        __m128i r[16], n[16];
        for (int k = 0; k < 16; ++k) r[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k * plane + x0));
        for (int round = 0; round < 4; ++round) {
          for (int k = 0; k < 8; ++k) {
            n[2 * k] = _mm_unpacklo_epi8(r[k], r[k + 8]);
            n[2 * k + 1] = _mm_unpackhi_epi8(r[k], r[k + 8]);
          }
          for (int k = 0; k < 16; ++k) r[k] = n[k];
        }
        for (int k = 0; k < 16; ++k) _mm_storeu_si128(reinterpret_cast<__m128i*>(d + (x0 + k) * dst_stride), r[k]);
      }
      for (size_t c = 0; c < 16; ++c)
        for (size_t x = x0; x < w; ++x) d[x * dst_stride + c] = s[c * plane + x];
    }
    for (size_t c = c0; c < channels; ++c) {
      const int8_t* s = src + c * plane + y * w;
      int8_t* d = dst + y * dst_row + c;
      for (size_t x = 0; x < w; ++x) d[x * dst_stride] = s[x];
    }
  }
}

}  // namespace pyrt::kernels
