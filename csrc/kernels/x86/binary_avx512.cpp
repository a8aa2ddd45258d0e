// pyruntime: binary kernels at AVX-512F/BW (binary_kernels.h): the sign of 16 floats is one compare into a
// mask (4 masks a word), and binary weights with real activations flip the sign bit of 16 activations by
// 16 weight bits (xor) and add. The XNOR GEMM is binary_avx512popcnt.cpp (or the AVX2 one without VPOPCNTDQ).
#include <immintrin.h>

// GCC 12's AVX-512 headers trip its own (maybe-)uninitialized warnings in the conversions and reductions
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <algorithm>

#include "kernels/binary/binary_kernels.h"

namespace pyrt::kernels {

void pyrt_binarize__avx512(const float* x, size_t ldx, size_t batch, size_t cols, float scale, float shift,
                           uint64_t* out, size_t ldo) {
  const __m512 vs = _mm512_set1_ps(scale), vh = _mm512_set1_ps(shift), zero = _mm512_setzero_ps();
  for (size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * ldx;
    uint64_t* o = out + b * ldo;
    for (size_t j = 0; j < ldo; ++j) {
      uint64_t word = 0;
      for (size_t q = 0; q < 4; ++q) {
        const size_t c = j * 64 + q * 16;
        if (c >= cols) break;
        const __mmask16 valid = cols - c >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (cols - c)) - 1);
        const __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(valid, xb + c), vs), vh);
        word |= uint64_t(_mm512_mask_cmp_ps_mask(valid, v, zero, _CMP_GE_OQ)) << (q * 16);
      }
      o[j] = word;
    }
  }
}

// 8 pixels x one group of 64 channels at a time: each channel's 8 floats compare into an 8-bit mask that sets
// the channel's bit in the 8 pixels' words (one zmm), stored whole (a scatter when a pixel holds several words).
void pyrt_binarize_hwc__avx512(const float* x, size_t batch, size_t channels, size_t pixels, float scale, float shift,
                               uint64_t* out) {
  const size_t cw = (channels + 63) / 64;
  const __m256 vs = _mm256_set1_ps(scale), vh = _mm256_set1_ps(shift), zero = _mm256_setzero_ps();
  const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  for (size_t b = 0; b < batch; ++b, x += channels * pixels, out += pixels * cw) {
    for (size_t g = 0; g < cw; ++g) {
      const size_t c1 = std::min(channels, g * 64 + 64);
      for (size_t p = 0; p < pixels; p += 8) {
        const __mmask8 valid = pixels - p >= 8 ? __mmask8(0xFF) : __mmask8((1u << (pixels - p)) - 1);
        __m512i acc = _mm512_setzero_si512();
        for (size_t c = g * 64; c < c1; ++c) {
          const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_maskz_loadu_ps(valid, x + c * pixels + p), vs), vh);
          const __mmask8 m = _mm256_mask_cmp_ps_mask(valid, v, zero, _CMP_GE_OQ);
          acc = _mm512_mask_or_epi64(acc, m, acc, _mm512_set1_epi64(int64_t(uint64_t(1) << (c % 64))));
        }
        if (cw == 1) {
          _mm512_mask_storeu_epi64(out + p, valid, acc);
        } else {
          const __m512i idx = _mm512_mullo_epi64(_mm512_add_epi64(lane, _mm512_set1_epi64(int64_t(p))),
                                                 _mm512_set1_epi64(int64_t(cw)));
          _mm512_mask_i64scatter_epi64(out + g, valid, idx, acc, 8);
        }
      }
    }
  }
}

void pyrt_dot_epilogue__avx512(const int32_t* m, size_t n, size_t o, const int32_t* kv, const float* alpha,
                               const float* bias, const int32_t* lim2, void* y, size_t ldy) {
  for (size_t i = 0; i < n; ++i) {
    const __m512i k = _mm512_set1_epi32(kv[i]);
    uint64_t word = 0;
    for (size_t r = 0; r < o; r += 16) {
      const __mmask16 valid = o - r >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (o - r)) - 1);
      const __m512i dot = _mm512_sub_epi32(k, _mm512_slli_epi32(_mm512_maskz_loadu_epi32(valid, m + i * o + r), 1));
      if (lim2) {
        const __mmask16 bits = _mm512_mask_cmpge_epi32_mask(valid, dot, _mm512_maskz_loadu_epi32(valid, lim2 + r));
        word |= uint64_t(bits) << (r % 64);
        if (r % 64 == 48 || r + 16 >= o) {
          static_cast<uint64_t*>(y)[i * ldy + r / 64] = word;
          word = 0;
        }
      } else {
        const __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_maskz_loadu_ps(valid, alpha + r),
                                         _mm512_maskz_loadu_ps(valid, bias + r));
        _mm512_mask_storeu_ps(static_cast<float*>(y) + i * o + r, valid, v);
      }
    }
    for (size_t w = (o + 63) / 64; lim2 && w < ldy; ++w) static_cast<uint64_t*>(y)[i * ldy + w] = 0;
  }
}

void pyrt_bwn_gemm__avx512(const uint64_t* w, size_t kw, size_t cols, size_t r0, size_t r1, const float* x, size_t ldx,
                           size_t batch, const float* alpha, const float* bias, float* y, size_t ldy) {
  const __m512i sign = _mm512_set1_epi32(int32_t(0x80000000u));
  constexpr size_t S = 4;
  for (size_t b0 = 0; b0 < batch; b0 += S) {
    const size_t ns = batch - b0 < S ? batch - b0 : S;
    for (size_t r = r0; r < r1; ++r) {
      __m512 acc[S] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      for (size_t c = 0; c < cols; c += 16) {
        const __mmask16 valid = cols - c >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (cols - c)) - 1);
        const __mmask16 bits = __mmask16(w[r * kw + c / 64] >> (c % 64));
        const __m512i flip = _mm512_maskz_mov_epi32(__mmask16(~bits), sign);  // -x where the weight is -1
        for (size_t s = 0; s < ns; ++s) {
          const __m512 v = _mm512_maskz_loadu_ps(valid, x + (b0 + s) * ldx + c);
          acc[s] = _mm512_add_ps(acc[s], _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), flip)));
        }
      }
      for (size_t s = 0; s < ns; ++s)
        y[(b0 + s) * ldy + r] = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(alpha[r]), _mm_set_ss(_mm512_reduce_add_ps(acc[s])),
                                                           _mm_set_ss(bias[r])));
    }
  }
}

}  // namespace pyrt::kernels
