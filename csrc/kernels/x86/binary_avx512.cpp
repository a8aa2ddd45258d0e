// pyruntime: binary kernels at AVX-512F/BW (binary_kernels.h): the sign of 16 floats is one compare into a
// mask (4 masks a word), and binary weights with real activations flip the sign bit of 16 activations by
// 16 weight bits (xor) and add. The XNOR GEMM is binary_avx512popcnt.cpp (or the AVX2 one without VPOPCNTDQ).
#include <immintrin.h>

// GCC 12's AVX-512 headers trip its own (maybe-)uninitialized warnings in the conversions and reductions
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

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
