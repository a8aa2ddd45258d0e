// pyruntime: AVX-512 (F/BW/VL/DQ) helpers shared by the x86/*_avx512.cpp kernels. Include only from files
// compiled with the AVX-512 flags.
#pragma once

#include <immintrin.h>

// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*() and warn about it once
// inlined (GCC bug 105593, fixed in GCC 13); the warning is about the header, not about our code.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <cstddef>
#include <cstdint>

namespace pyrt::kernels::avx512 {
namespace {  // internal linkage: see the note at the top of avx2_util.h

// Lanes [0, n) of 16, n clamped to 0..16.
inline __mmask16 tail_mask(size_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

inline float hsum(__m512 v) {
  // (extract 0 rather than a cast: GCC 12 warns that the cast reads an undefined register)
  __m256 s8 = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 16 zero-extended bytes / 16-bit values -> 16 dwords; the masked forms read no byte outside the mask.
inline __m512i load_u8x16(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m512i load_cols(const uint16_t* p) {
  return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512i load_cols(const uint32_t* p) { return _mm512_loadu_si512(p); }
inline __m512i load_cols(const uint16_t* p, __mmask16 m) {
  return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
}
inline __m512i load_cols(const uint32_t* p, __mmask16 m) { return _mm512_maskz_loadu_epi32(m, p); }

// ---- codebook decoders: 16 dword indices -> 16 floats lut[index] ----------------------------------
// Each reads only the index bits its table size needs (garbage above them is ignored). Tables hold 256
// floats (zero-padded).

// k <= 16: vpermps zmm reads index bits [3:0].
struct Lut16Reg {
  __m512 t0;
  explicit Lut16Reg(const float* lut) : t0(_mm512_loadu_ps(lut)) {}
  __m512 operator()(__m512i i) const { return _mm512_permutexvar_ps(i, t0); }
};

// k <= 32 * N (N = 1, 2, 4, 8): N vpermt2ps, each indexing 32 floats of two registers with bits [4:0],
// then a binary tree of mask blends on index bits 5, 6, 7 picks the chunk. N = 8 (k = 256) takes 16
// registers and is still faster than vgatherdps (Zen 4: 0.23 vs 0.37 ns per weight).
template <int N>
struct LutTreeReg {
  static_assert(N == 1 || N == 2 || N == 4 || N == 8, "chunks of 32 entries: 1, 2, 4 or 8");
  __m512 t[2 * N];
  explicit LutTreeReg(const float* lut) {
    for (int i = 0; i < 2 * N; ++i) t[i] = _mm512_loadu_ps(lut + 16 * i);
  }
  __m512 operator()(__m512i i) const {
    __m512 p[N];
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) p[j] = _mm512_permutex2var_ps(t[2 * j], i, t[2 * j + 1]);
#pragma GCC unroll 3
    for (int level = 0, n = N; n > 1; ++level, n /= 2) {
      const __mmask16 hi = _mm512_test_epi32_mask(i, _mm512_set1_epi32(32 << level));  // bit 5 + level
#pragma GCC unroll 4
      for (int j = 0; j < n / 2; ++j) p[j] = _mm512_mask_blend_ps(hi, p[2 * j], p[2 * j + 1]);
    }
    return p[0];
  }
};
using Lut32Reg = LutTreeReg<1>;
using Lut64Reg = LutTreeReg<2>;
using Lut128Reg = LutTreeReg<4>;
using Lut256Reg = LutTreeReg<8>;

// any k <= 256: gather from the (L1-resident) table. Indices must be clean bytes (0..255).
struct LutGather {
  const float* lut;
  explicit LutGather(const float* l) : lut(l) {}
  __m512 operator()(__m512i i) const { return _mm512_i32gather_ps(i, lut, 4); }
};

}  // namespace
}  // namespace pyrt::kernels::avx512
