// pyruntime: the body of the depthwise int8 convolution (int8_conv.h), one definition compiled at every ISA
// level (kernels/int8/int8_conv.cpp for the reference, kernels/x86/int8_conv_*.cpp with their flags): plain
// loops over contiguous int8 runs that the compiler vectorizes for the level. The int32 sums are exact in
// any order, and the epilogue is int8_epilogue() and ref::quantize_one(), so every level gives the same bits.
#pragma once

#include <algorithm>
#include <cstring>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "kernels/int8/int8_conv.h"
#include "kernels/int8/int8_layouts.h"

namespace pyrt::kernels::detail {
// Internal linkage: each ISA's file keeps its own copy (one inline definition shared across files compiled
// with different flags could run AVX-512 code on a CPU without it).
namespace {

constexpr size_t kDwBlock = 2048;  // accumulators per block of output rows (int32, on the stack)
constexpr size_t kDwTaps = 64;     // nonzero taps summed by the level's block_sums; more go 64 at a time

// acc[i] = sum_k w[k] * base[off[k] + i] for i < n (the plain loops; the x86 files sum in registers).
inline void block_sums_plain(const int8_t* base, const size_t* off, const int16_t* w, size_t nt, size_t n,
                             int32_t* acc) {
  std::fill(acc, acc + n, 0);
  for (size_t k = 0; k < nt; ++k) {
    const int8_t* x = base + off[k];
    const int32_t wk = w[k];
    for (size_t i = 0; i < n; ++i) acc[i] += wk * int32_t(x[i]);
  }
}

// The int8 epilogue (int8_layouts.h) of n sums a, stored at output index `at` of the plane: 16 or 8 lanes
// where the level has them (AVX-512 masks the last ones; AVX2 leaves them to the scalar loop): the same
// operations, so the same bits.
inline void epilogue_row(const Int8DwPlane& p, const int32_t* a, size_t n, size_t at) {
  size_t i = 0;
  const bool i8 = p.inv_out > 0.0f;
#if defined(__AVX512F__)
  const __m512 s = _mm512_set1_ps(p.scale), b = _mm512_set1_ps(p.bias), lo = _mm512_set1_ps(p.lo),
               hi = _mm512_set1_ps(p.hi), inv = _mm512_set1_ps(p.inv_out);
  for (; i < n; i += 16) {  // the last 16 masked
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, a + i)), s, b);
    v = _mm512_min_ps(hi, _mm512_max_ps(lo, v));  // lo > v ? lo : v, then hi < v ? hi : v (NaN stays)
    if (i8) {
      __m512 t = _mm512_mul_ps(v, inv);
      t = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(t, t, _CMP_ORD_Q), t);  // NaN -> 0
      t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
      _mm512_mask_cvtepi32_storeu_epi8(static_cast<int8_t*>(p.y) + at + i, m, _mm512_cvtps_epi32(t));
    } else {
      _mm512_mask_storeu_ps(static_cast<float*>(p.y) + at + i, m, v);
    }
  }
#elif defined(__AVX2__) && defined(__FMA__)
  const __m256 s = _mm256_set1_ps(p.scale), b = _mm256_set1_ps(p.bias), lo = _mm256_set1_ps(p.lo),
               hi = _mm256_set1_ps(p.hi), inv = _mm256_set1_ps(p.inv_out);
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i))), s, b);
    v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));  // lo > v ? lo : v, then hi < v ? hi : v (NaN stays)
    if (i8) {
      __m256 t = _mm256_mul_ps(v, inv);
      t = _mm256_and_ps(t, _mm256_cmp_ps(t, t, _CMP_ORD_Q));  // NaN -> 0
      t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
      const __m256i q = _mm256_cvtps_epi32(t);  // half to even
      const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(static_cast<int8_t*>(p.y) + at + i), _mm_packs_epi16(w, w));
    } else {
      _mm256_storeu_ps(static_cast<float*>(p.y) + at + i, v);
    }
  }
#endif
  for (; i < n; ++i) {
    const float v = int8_epilogue(a[i], p.scale, p.bias, p.lo, p.hi);
    if (i8) static_cast<int8_t*>(p.y)[at + i] = ref::quantize_one(v, p.inv_out);
    else static_cast<float*>(p.y)[at + i] = v;
  }
}

using BlockSums = void (*)(const int8_t*, const size_t*, const int16_t*, size_t, size_t, int32_t*);

template <BlockSums kSums>
void dwconv_plane(const Int8DwPlane& p) {
  alignas(64) int32_t acc[kDwBlock + 32], part[kDwBlock + 32];  // + the last chunk's extra lanes
  size_t off[kDwTaps];
  int16_t w[kDwTaps];
  const size_t taps = size_t(p.kh) * p.kw, pl = p.phase_len;
  // a block of whole rows when a row fits in kDwBlock accumulators, else one row in column chunks of kDwBlock
  const size_t rows_per_block = std::max<size_t>(1, kDwBlock / pl);
  const size_t chunk = rows_per_block > 1 ? p.out_w : std::min<size_t>(p.out_w, kDwBlock);
  for (size_t oy0 = 0; oy0 < p.out_h; oy0 += rows_per_block) {
    const size_t rows = std::min<size_t>(rows_per_block, p.out_h - oy0);
    for (size_t c0 = 0; c0 < p.out_w; c0 += chunk) {
      const size_t cols = std::min(chunk, p.out_w - c0);
      // rows of phase_len (columns from out_w on are computed and dropped): every tap reads one contiguous run
      const size_t n = (rows - 1) * pl + cols;
      std::fill(acc, acc + n, 0);
      for (size_t t0 = 0; t0 < taps; t0 += kDwTaps) {  // the nonzero taps, 64 at a time
        size_t nt = 0;
        for (size_t t = t0; t < std::min(taps, t0 + kDwTaps); ++t) {
          if (p.w[t] == 0) continue;  // a pruned tap adds nothing
          const size_t dy = size_t(t / p.kw) * p.dilation_h, dx = size_t(t % p.kw) * p.dilation_w;
          off[nt] = ((dy % p.stride_h) * p.stride_w + dx % p.stride_w) * p.sub_bytes +
                    (oy0 + dy / p.stride_h) * pl + dx / p.stride_w + c0;
          w[nt++] = p.w[t];
        }
        if (nt == 0) continue;
        if (t0 == 0) {
          kSums(p.x, off, w, nt, n, acc);
        } else {
          kSums(p.x, off, w, nt, n, part);
          for (size_t i = 0; i < n; ++i) acc[i] += part[i];
        }
      }
      for (size_t r = 0; r < rows; ++r)  // the epilogue straight into the output rows
        epilogue_row(p, acc + r * pl, cols, (oy0 + r) * p.out_w + c0);
    }
  }
}

inline void deinterleave2(const int8_t* src, size_t n, int8_t* even, int8_t* odd) {
  size_t i = 0;
#ifdef __AVX2__
  const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,  //
                                         0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)), split);
    const __m256i p = _mm256_permute4x64_epi64(v, 0xD8);  // evens of both lanes, then odds of both lanes
    _mm_storeu_si128(reinterpret_cast<__m128i*>(even + i / 2), _mm256_castsi256_si128(p));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(odd + i / 2), _mm256_extracti128_si256(p, 1));
  }
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)),
                                       _mm256_castsi256_si128(split));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(even + i / 2), v);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(odd + i / 2), _mm_unpackhi_epi64(v, v));
  }
#endif
  for (; i + 2 <= n; i += 2) {
    even[i / 2] = src[i];
    odd[i / 2] = src[i + 1];
  }
  if (i < n) even[i / 2] = src[i];
}

inline void dw_phases(const Int8DwPhases& f, const int8_t* src, int8_t* dst) {
  const size_t sh = f.stride_h, sw = f.stride_w, pl = f.pad_left;
  std::memset(dst, 0, f.sub_bytes * sh * sw);
  for (size_t iy = 0; iy < f.in_h; ++iy, src += f.in_w) {
    const size_t y = iy + f.pad_top;
    int8_t* row = dst + (y % sh) * sw * f.sub_bytes + (y / sh) * f.phase_len;
    if (sw == 1) {
      std::memcpy(row + pl, src, f.in_w);
    } else if (sw == 2) {  // input column 2k -> padded 2k + pl; 2k + 1 -> 2k + 1 + pl
      deinterleave2(src, f.in_w, row + (pl % 2) * f.sub_bytes + pl / 2, row + ((pl + 1) % 2) * f.sub_bytes + (pl + 1) / 2);
    } else {
      for (size_t ix = 0; ix < f.in_w; ++ix) {
        const size_t x = ix + pl;
        row[(x % sw) * f.sub_bytes + x / sw] = src[ix];
      }
    }
  }
}

}  // namespace
}  // namespace pyrt::kernels::detail
