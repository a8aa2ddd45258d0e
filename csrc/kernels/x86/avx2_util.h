// pyruntime: AVX2 + FMA helpers shared by the x86/*_avx2.cpp kernels (and usable from *_avx512.cpp, which
// are compiled with a superset of the flags). Include only from files compiled with -mavx2 -mfma.
//
// Everything in the x86 helper headers has internal linkage (anonymous namespace). An ordinary inline
// function included from an AVX2 file and from an AVX-512 file would be one ODR entity: the linker may
// keep the AVX-512-compiled copy (EVEX-encoded) for both, and an AVX2-only CPU would fault on it.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace pyrt::kernels::avx2 {
namespace {  // internal linkage: see the note at the top of avx2_util.h

// All-ones in lanes [0, n), n in 0..8: an 8-lane window into eight -1 followed by eight 0.
inline __m256i tail_mask(size_t n) {
  alignas(64) static const int32_t kWindow[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kWindow + 8 - n));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));        // lanes 0+2, 1+3
  s = _mm_add_ss(s, _mm_movehdup_ps(s));         // lane 0 + lane 1
  return _mm_cvtss_f32(s);
}

// Four horizontal sums at once: [sum a, sum b, sum c, sum d].
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 ab = _mm256_hadd_ps(a, b);          // a01 a23 b01 b23 | a45 a67 b45 b67
  const __m256 cd = _mm256_hadd_ps(c, d);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);      // a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// 8 zero-extended bytes -> 8 dwords (vpmovzxbd from memory).
inline __m256i load_u8x8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
// 8 zero-extended 16-bit values -> 8 dwords.
inline __m256i load_u16x8(const uint16_t* p) {
  return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256i load_u32x8(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m256i load_cols(const uint16_t* p) { return load_u16x8(p); }
inline __m256i load_cols(const uint32_t* p) { return load_u32x8(p); }

// x[c[0]], ..., x[c[7]] from eight scalar loads assembled with vinsertps. On AMD Zen 2-4 and on Intel
// cores running the GDS ("Downfall") microcode mitigation this is faster than vgatherdps (measured on
// Zen 4: 0.24 vs 0.36 ns per element); elsewhere it is close. All 8 columns must be valid.
template <class Col>
inline __m256 gather8(const float* x, const Col* c) {
  const __m128 lo = _mm_set_ps(x[c[3]], x[c[2]], x[c[1]], x[c[0]]);
  const __m128 hi = _mm_set_ps(x[c[7]], x[c[6]], x[c[5]], x[c[4]]);
  return _mm256_set_m128(hi, lo);
}

// ---- codebook decoders: 8 dword indices -> 8 floats lut[index] -----------------------------------
// Each reads only the index bits its table size needs, so callers may leave garbage above them (e.g.
// the high nibble of a byte when decoding the low one). Tables hold 256 floats (zero-padded).

// k <= 8: one register, vpermps reads index bits [2:0].
struct Lut8Reg {
  __m256 t0;
  explicit Lut8Reg(const float* lut) : t0(_mm256_loadu_ps(lut)) {}
  __m256 operator()(__m256i i) const { return _mm256_permutevar8x32_ps(t0, i); }
};

// k <= 16: two vpermps, then bit 3 picks the table: shifted to the sign bit, which blendvps tests.
struct Lut16Reg {
  __m256 t0, t1;
  explicit Lut16Reg(const float* lut) : t0(_mm256_loadu_ps(lut)), t1(_mm256_loadu_ps(lut + 8)) {}
  __m256 operator()(__m256i i) const {
    const __m256 sel = _mm256_castsi256_ps(_mm256_slli_epi32(i, 28));  // bit 3 -> bit 31
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, i), _mm256_permutevar8x32_ps(t1, i), sel);
  }
};

// k <= 32: four vpermps and a two-level blend on bits 3 and 4.
struct Lut32Reg {
  __m256 t0, t1, t2, t3;
  explicit Lut32Reg(const float* lut)
      : t0(_mm256_loadu_ps(lut)), t1(_mm256_loadu_ps(lut + 8)), t2(_mm256_loadu_ps(lut + 16)),
        t3(_mm256_loadu_ps(lut + 24)) {}
  __m256 operator()(__m256i i) const {
    const __m256 b3 = _mm256_castsi256_ps(_mm256_slli_epi32(i, 28));  // bit 3 -> sign
    const __m256 b4 = _mm256_castsi256_ps(_mm256_slli_epi32(i, 27));  // bit 4 -> sign
    const __m256 lo = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, i), _mm256_permutevar8x32_ps(t1, i), b3);
    const __m256 hi = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t2, i), _mm256_permutevar8x32_ps(t3, i), b3);
    return _mm256_blendv_ps(lo, hi, b4);
  }
};

// any k <= 256: gather from the (L1-resident) table. Indices must be clean bytes (0..255).
struct LutGather {
  const float* lut;
  explicit LutGather(const float* l) : lut(l) {}
  __m256 operator()(__m256i i) const { return _mm256_i32gather_ps(lut, i, 4); }
};

}  // namespace
}  // namespace pyrt::kernels::avx2
