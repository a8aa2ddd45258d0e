// pyruntime: batch-1 codebook GEMV with byte-plane table lookups (AVX2). Include only from lut_gemm_avx2.cpp.
//
// vpermps, the register-table decoder of avx2_util.h, crosses 128-bit lanes and issues on one port of
// Intel cores; vpshufb and vpunpck stay in their lane and issue on two (Ice Lake and later, AMD Zen).
// Here each 16 floats of the table (k <= 16, 32 or 64) are split into 4 byte planes of 16 bytes, each
// broadcast to both lanes. For 32 index bytes, one vpshufb per plane gives byte m of every weight; two levels of
// unpacks (bytes -> words -> dwords) interleave the planes into 4 vectors of 8 floats:
//
//     index byte j of lane l (j = 0..15)  ->  vector j / 4, element 4 l + j % 4
//
// The result is in a fixed permuted column order, so x is packed once per call into the same order
// (thread scratch) and the FMAs read it contiguously; x is zero past cols, and the weights of the last
// block are masked, so that an infinite table entry never meets a zero x lane (inf * 0 = NaN).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/kernels.h"
#include "kernels/x86/avx2_util.h"

namespace pyrt::kernels::avx2 {
namespace {  // internal linkage: see the note at the top of avx2_util.h

// The 4 byte planes of 16 consecutive table entries lut[0..15], each broadcast to both lanes.
struct Planes16 {
  __m256i p[4];
  Planes16() = default;
  explicit Planes16(const float* lut) {
    alignas(16) uint8_t b[4][16];
    for (int i = 0; i < 16; ++i) {
      uint32_t u;
      std::memcpy(&u, lut + i, 4);
      for (int m = 0; m < 4; ++m) b[m][i] = uint8_t(u >> (8 * m));
    }
    for (int m = 0; m < 4; ++m)
      p[m] = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(b[m])));
  }
};

// Interleaves 4 byte planes (byte m of each float) into 4 float vectors (order: see the top of the file).
inline void interleave_planes(__m256i b0, __m256i b1, __m256i b2, __m256i b3, __m256 (&w)[4]) {
  const __m256i l01 = _mm256_unpacklo_epi8(b0, b1), h01 = _mm256_unpackhi_epi8(b0, b1);  // words, j 0-7 / 8-15
  const __m256i l23 = _mm256_unpacklo_epi8(b2, b3), h23 = _mm256_unpackhi_epi8(b2, b3);
  w[0] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(l01, l23));  // dwords, j 0-3
  w[1] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(l01, l23));  // j 4-7
  w[2] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(h01, h23));  // j 8-11
  w[3] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(h01, h23));  // j 12-15
}

// k <= 16 N: N tables per plane (N = 1, 2, 4). For table q, (i ^ 16 q) + 0x70 has bit 7 clear exactly when
// i is in [16 q, 16 q + 16) and keeps i's low nibble, so vpshufb zeroes the entries of the other tables and
// an or merges them (N = 2: table 1 takes (i + 0x70) ^ 0x80, one op less). Index bytes must be < 16 N.
template <int N>
struct PlanesNDec {
  Planes16 t[N];
  explicit PlanesNDec(const float* lut) {
#pragma GCC unroll 4
    for (int q = 0; q < N; ++q) t[q] = Planes16(lut + 16 * q);
  }
  void operator()(__m256i i, __m256 (&w)[4]) const {
    const __m256i k70 = _mm256_set1_epi8(0x70);
    __m256i p[4], i0 = i;
#pragma GCC unroll 4
    for (int q = 0; q < N; ++q) {
      __m256i iq;
      if (N == 1)
        iq = i;  // one table: no selection bit
      else if (q == 0)
        iq = i0 = _mm256_add_epi8(i, k70);
      else if (N == 2)
        iq = _mm256_xor_si256(i0, _mm256_set1_epi8(char(0x80)));  // i < 32: i + 0x70 is 0x7_ or 0x8_
      else
        iq = _mm256_add_epi8(_mm256_xor_si256(i, _mm256_set1_epi8(char(16 * q))), k70);
#pragma GCC unroll 4
      for (int m = 0; m < 4; ++m) {
        const __m256i v = _mm256_shuffle_epi8(t[q].p[m], iq);
        p[m] = q == 0 ? v : _mm256_or_si256(p[m], v);
      }
    }
    interleave_planes(p[0], p[1], p[2], p[3], w);
  }
};

// ---- packed x ----
// A block of 32 index bytes covers 64 columns of Lut4 (bytes 0..15: a group, low nibbles c0 + j, high
// nibbles c0 + 16 + j; bytes 16..31: the next group, + 32) or 32 columns of Lut8 (byte j: c0 + j).
// Decoded, vector v of the block holds the columns
//     Lut4 (H = 32): [c0 + 4v .. +3, c0 + H + 4v .. +3], v = 0..7 (low nibbles: v < 4)
//     Lut8 (H = 16): [c0 + 4v .. +3, c0 + H + 4v .. +3], v = 0..3
// H = half the block width. xs gets that order, zero past cols.
template <size_t kBlock>
void pack_x_planes(const float* x, size_t cols, float* xs) {
  constexpr size_t H = kBlock / 2;
  const size_t full = cols / kBlock * kBlock;
  size_t c0 = 0;
  for (; c0 < full; c0 += kBlock, xs += kBlock) {
#pragma GCC unroll 4
    for (size_t q = 0; q < H / 8; ++q) {  // x[c0 + 8q ..] and x[c0 + H + 8q ..] -> vectors 2q, 2q + 1
      const __m256 a = _mm256_loadu_ps(x + c0 + 8 * q), b = _mm256_loadu_ps(x + c0 + H + 8 * q);
      _mm256_store_ps(xs + 16 * q, _mm256_permute2f128_ps(a, b, 0x20));
      _mm256_store_ps(xs + 16 * q + 8, _mm256_permute2f128_ps(a, b, 0x31));
    }
  }
  if (c0 < cols) {
    for (size_t v = 0; v < kBlock / 8; ++v)
      for (size_t e = 0; e < 8; ++e) {
        const size_t c = c0 + 4 * v + e % 4 + (e < 4 ? 0 : H);
        xs[8 * v + e] = c < cols ? x[c] : 0.0f;
      }
  }
}

// Lane masks of the last (partial) block: column < cols, in the packed order.
template <size_t kBlock>
void tail_masks(size_t c0, size_t cols, __m256 (&m)[kBlock / 8]) {
  constexpr size_t H = kBlock / 2;
  alignas(32) int32_t b[kBlock];
  for (size_t v = 0; v < kBlock / 8; ++v)
    for (size_t e = 0; e < 8; ++e) b[8 * v + e] = c0 + 4 * v + e % 4 + (e < 4 ? 0 : H) < cols ? -1 : 0;
  for (size_t v = 0; v < kBlock / 8; ++v) m[v] = _mm256_load_ps(reinterpret_cast<const float*>(b + 8 * v));
}

// acc[r] += dec(w[r]) . xv over one block. Lut4: 32 bytes = 64 columns (nibbles); Lut8: 32 columns.
template <int R, bool Nibbles, bool Tail, class Dec>
inline void planes_block(__m256 (&acc)[R][2], const Dec& dec, const uint8_t* const (&p)[R], size_t off,
                         const float* xs, const __m256* mask) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[r] + off));
    __m256 w[4];
    if constexpr (Nibbles) {
      const __m256i m4 = _mm256_set1_epi8(0x0f);
      dec(_mm256_and_si256(b, m4), w);  // low nibbles
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        const __m256 wq = Tail ? _mm256_and_ps(w[q], mask[q]) : w[q];
        acc[r][q & 1] = _mm256_fmadd_ps(wq, _mm256_load_ps(xs + 8 * q), acc[r][q & 1]);
      }
      dec(_mm256_and_si256(_mm256_srli_epi16(b, 4), m4), w);  // high nibbles
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        const __m256 wq = Tail ? _mm256_and_ps(w[q], mask[4 + q]) : w[q];
        acc[r][q & 1] = _mm256_fmadd_ps(wq, _mm256_load_ps(xs + 32 + 8 * q), acc[r][q & 1]);
      }
    } else {
      dec(b, w);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        const __m256 wq = Tail ? _mm256_and_ps(w[q], mask[q]) : w[q];
        acc[r][q & 1] = _mm256_fmadd_ps(wq, _mm256_load_ps(xs + 8 * q), acc[r][q & 1]);
      }
    }
  }
}

// Index bytes ahead of the current block prefetched into L1, one line per row every 64 bytes.
constexpr size_t kPrefetch = 512;

// y[r] = W[r] . x + bias[r] for all rows; idx: rows of `stride` index bytes, read in blocks of 32 bytes
// (the last block of a row may read up to 31 bytes past it: the next row or the array's padding, masked).

template <int R, bool Nibbles, class Dec>
void planes_gemv(const uint8_t* idx, size_t stride, uint32_t rows, uint32_t cols, const Dec& dec, const float* x,
                 float* y, const float* bias) {
  constexpr size_t kBlock = Nibbles ? 64 : 32;  // columns per 32 index bytes
  const size_t nb = (size_t(cols) + kBlock - 1) / kBlock, full = cols / kBlock;
  float* xs = thread_scratch(nb * kBlock);
  pack_x_planes<kBlock>(x, cols, xs);
  __m256 mask[kBlock / 8];
  if (full < nb) tail_masks<kBlock>(full * kBlock, cols, mask);
  auto run = [&](auto rt, size_t r0) {
    constexpr int RT = decltype(rt)::value;
    const uint8_t* p[RT];
#pragma GCC unroll 8
    for (int r = 0; r < RT; ++r) p[r] = idx + (r0 + r) * stride;
    __m256 acc[RT][2];
#pragma GCC unroll 8
    for (int r = 0; r < RT; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (size_t s = 0; s < full; ++s) {
      if ((s & 1) == 0) {
#pragma GCC unroll 8
        for (int r = 0; r < RT; ++r)
          _mm_prefetch(reinterpret_cast<const char*>(p[r] + 32 * s + kPrefetch), _MM_HINT_T0);
      }
      planes_block<RT, Nibbles, false>(acc, dec, p, 32 * s, xs + kBlock * s, mask);
    }
    if (full < nb) planes_block<RT, Nibbles, true>(acc, dec, p, 32 * full, xs + kBlock * full, mask);
#pragma GCC unroll 8
    for (int r = 0; r < RT; ++r)
      y[r0 + r] = hsum(_mm256_add_ps(acc[r][0], acc[r][1])) + (bias ? bias[r0 + r] : 0.0f);
  };
  size_t r = 0;
  for (; r + R <= rows; r += R) run(std::integral_constant<int, R>{}, r);
  for (; r < rows; ++r) run(std::integral_constant<int, 1>{}, r);
}

}  // namespace
}  // namespace pyrt::kernels::avx2
