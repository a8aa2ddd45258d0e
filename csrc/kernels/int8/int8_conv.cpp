// pyruntime: the int8 convolution kernels' dispatch (int8_conv.h) and their scalar references.
#include "kernels/int8/int8_conv.h"

#include <algorithm>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cstring>

#include "kernels/int8/int8_dwconv_impl.h"

namespace pyrt::kernels {

void pyrt_i8_dwconv__ref(const Int8DwPlane& p) { detail::dwconv_plane<detail::block_sums_plain>(p); }

void pyrt_i8_conv_tile__ref(const Int8ConvTile& t) {
  for (size_t o = 0; o < t.og; ++o)
    for (size_t p = 0; p < t.n; ++p) {
      const int8_t* a = t.a + (p / 16) * 16 * t.kp + (p % 16) * 4;
      int32_t acc = 0;
      for (size_t k = 0; k < t.kp; ++k) acc += int32_t(t.w[o * t.kp + k]) * a[(k / 4) * 64 + k % 4];
      const float v = int8_epilogue(acc, t.xs * t.wscale[o], t.bias ? t.bias[o] : 0.0f, t.lo, t.hi);
      if (t.inv_out > 0.0f)
        static_cast<int8_t*>(t.y)[o * t.plane + p] = ref::quantize_one(v, t.inv_out);
      else
        static_cast<float*>(t.y)[o * t.plane + p] = v;
    }
}

size_t int8_conv_w64(const int8_t* w, size_t og, size_t kp, std::vector<int8_t>& out) {
  const size_t at = out.size(), ld = (kp + 63) / 64 * 64;
  out.resize(at + (og + 15) / 16 * 16 * ld, 0);
  for (size_t o = 0; o < og; ++o) std::copy(w + o * kp, w + (o + 1) * kp, out.begin() + at + o * ld);
  return at;
}

Int8PatchGatherFn int8_patch_gather_kernel(Isa isa) {
#if PYRT_HAVE_X86_KERNELS
  if (isa >= Isa::avx512) return use_hw_gather(Isa::avx512) ? &pyrt_i8_patch_gather__avx512 : nullptr;
  if (isa >= Isa::avx2 && use_hw_gather(Isa::avx2)) return &pyrt_i8_patch_gather__avx2;
#endif
  (void)isa;
  return nullptr;
}

void int8_planar_block(const int8_t* q, size_t plane, size_t cg, size_t m, int8_t* dst) {
#if defined(__SSE2__)
  if (m == 16) {  // 4 rows of 16 bytes -> 16 positions x 4 bytes, by byte then word interleaves
    for (size_t c = 0; c < cg; c += 4, dst += 64) {
      const int8_t* r = q + c * plane;
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r + plane));
      const __m128i c2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r + 2 * plane));
      const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r + 3 * plane));
      const __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
      const __m128i cd0 = _mm_unpacklo_epi8(c2, d), cd1 = _mm_unpackhi_epi8(c2, d);
      __m128i* o = reinterpret_cast<__m128i*>(dst);
      _mm_storeu_si128(o, _mm_unpacklo_epi16(ab0, cd0));
      _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(ab0, cd0));
      _mm_storeu_si128(o + 2, _mm_unpacklo_epi16(ab1, cd1));
      _mm_storeu_si128(o + 3, _mm_unpackhi_epi16(ab1, cd1));
    }
    return;
  }
#endif
  for (size_t c = 0; c < cg; c += 4, dst += 64)
    for (size_t i = 0; i < 16; ++i)
      for (size_t k = 0; k < 4; ++k) dst[i * 4 + k] = i < m ? q[(c + k) * plane + i] : 0;
}

void int8_conv_tile(Isa isa, const Int8ConvTile& t) {
#if PYRT_HAVE_X86_KERNELS
#if PYRT_HAVE_AMX
  if (isa >= Isa::amx) return pyrt_i8_conv_tile__amx(t);
#endif
  if (isa >= Isa::avx512vnni) return pyrt_i8_conv_tile__avx512vnni(t);
  if (isa >= Isa::avx512) return pyrt_i8_conv_tile__avx512(t);
  if (isa >= Isa::avx2) return pyrt_i8_conv_tile__avx2(t);
#endif
#if PYRT_HAVE_ARM_KERNELS
  if (isa >= Isa::neon_dot) return pyrt_i8_conv_tile__neon_dot(t);
  if (isa >= Isa::neon) return pyrt_i8_conv_tile__neon(t);
#endif
  pyrt_i8_conv_tile__ref(t);
}
void pyrt_i8_dw_phases__ref(const Int8DwPhases& f, const int8_t* src, int8_t* dst) { detail::dw_phases(f, src, dst); }

void int8_dw_phases(Isa isa, const Int8DwPhases& f, const int8_t* src, int8_t* dst) {
#if PYRT_HAVE_X86_KERNELS
  if (isa >= Isa::avx512) return pyrt_i8_dw_phases__avx512(f, src, dst);
  if (isa >= Isa::avx2) return pyrt_i8_dw_phases__avx2(f, src, dst);
#endif
#if PYRT_HAVE_ARM_KERNELS
  if (isa >= Isa::neon) return pyrt_i8_dw_phases__neon(f, src, dst);
#endif
  pyrt_i8_dw_phases__ref(f, src, dst);
}

void int8_dwconv_plane(Isa isa, const Int8DwPlane& p) {
#if PYRT_HAVE_X86_KERNELS
  if (isa >= Isa::avx512) return pyrt_i8_dwconv__avx512(p);
  if (isa >= Isa::avx2) return pyrt_i8_dwconv__avx2(p);
#endif
#if PYRT_HAVE_ARM_KERNELS
  if (isa >= Isa::neon) return pyrt_i8_dwconv__neon(p);
#endif
  pyrt_i8_dwconv__ref(p);
}

void int8_channels_last(Isa isa, const int8_t* src, size_t channels, size_t h, size_t w, int8_t* dst, size_t dst_row,
                        size_t dst_stride) {
#if PYRT_HAVE_X86_KERNELS
  if (isa >= Isa::avx2) return pyrt_i8_channels_last__avx2(src, channels, h, w, dst, dst_row, dst_stride);
#endif
#if PYRT_HAVE_ARM_KERNELS
  if (isa >= Isa::neon) return pyrt_i8_channels_last__neon(src, channels, h, w, dst, dst_row, dst_stride);
#endif
  const size_t plane = h * w;
  for (size_t y = 0; y < h; ++y)
    for (size_t c = 0; c < channels; ++c) {
      const int8_t* s = src + c * plane + y * w;
      int8_t* d = dst + y * dst_row + c;
      for (size_t x = 0; x < w; ++x) d[x * dst_stride] = s[x];
    }
}

void transpose_to_planes(Isa isa, const float* tile, size_t n, size_t og, float* y, size_t plane) {
#if PYRT_HAVE_X86_KERNELS
  if (isa >= Isa::avx2) return pyrt_transpose_planes__avx2(tile, n, og, y, plane);
#endif
#if PYRT_HAVE_ARM_KERNELS
  if (isa >= Isa::neon) return pyrt_transpose_planes__neon(tile, n, og, y, plane);
#endif
  constexpr size_t kB = 16;  // blocks of 16 x 16: the strided reads stay within 16 cache lines
  for (size_t o0 = 0; o0 < og; o0 += kB)
    for (size_t i0 = 0; i0 < n; i0 += kB)
      for (size_t o = o0; o < std::min(og, o0 + kB); ++o)
        for (size_t i = i0; i < std::min(n, i0 + kB); ++i)
          std::memcpy(y + o * plane + i, tile + i * og + o, 4);  // the bits as they are (int8 groups too)
}

}  // namespace pyrt::kernels
