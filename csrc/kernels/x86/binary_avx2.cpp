// pyruntime: binary kernels at AVX2 (binary_kernels.h). The XNOR GEMM counts bits with the vpshufb nibble
// table (Mula's popcount) and sums each 64-bit lane's bytes with vpsadbw, so a ymm of b1_r8 weights gives the
// mismatch counts of 4 rows in their own lanes; tiles of 2 row blocks (16 rows) x 2 samples.
#include <immintrin.h>

#include "kernels/binary/binary_kernels.h"

namespace pyrt::kernels {
namespace {

struct Popcount {
  __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                   0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  __m256i low = _mm256_set1_epi8(0x0F);
  // per 64-bit lane: the number of set bits of v
  __m256i operator()(__m256i v) const {
    const __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low));
    const __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
    return _mm256_sad_epu8(_mm256_add_epi8(lo, hi), _mm256_setzero_si256());
  }
};

// 8 rows' counts (two ymm of 4 x 64-bit) to the epilogue of the reference.
inline void epilogue(__m256i c0, __m256i c1, size_t rb, size_t r1, const BinaryEpilogue& ep, void* y, size_t b,
                     size_t ldy) {
  const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  const __m256i m = _mm256_permute2x128_si256(_mm256_permutevar8x32_epi32(c0, idx),
                                              _mm256_permutevar8x32_epi32(c1, idx), 0x20);
  const size_t r = rb * 8;
  if (ep.counts) {
    alignas(32) int32_t c[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(c), m);
    int32_t* out = static_cast<int32_t*>(y) + b * ldy + r;
    for (size_t l = 0; l < 8 && r + l < r1; ++l) out[l] = c[l];
    return;
  }
  if (ep.limit) {
    const __m256i lim = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ep.limit + r));
    const __m256i gt = _mm256_cmpgt_epi32(m, lim);  // bit set where m <= limit
    static_cast<uint8_t*>(y)[b * ldy + rb] = uint8_t(~_mm256_movemask_ps(_mm256_castsi256_ps(gt)));
    return;
  }
  const __m256 dot = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_set1_epi32(int32_t(ep.k)), _mm256_slli_epi32(m, 1)));
  alignas(32) float v[8];
  _mm256_store_ps(v, _mm256_fmadd_ps(dot, _mm256_loadu_ps(ep.alpha + r), _mm256_loadu_ps(ep.bias + r)));
  float* out = static_cast<float*>(y) + b * ldy + r;
  for (size_t l = 0; l < 8 && r + l < r1; ++l) out[l] = v[l];
}

template <int RB, int S>
void tile(const uint64_t* w8, size_t kw, size_t rb0, size_t r1, const uint64_t* x, size_t ldx, size_t b0,
          const BinaryEpilogue& ep, void* y, size_t ldy) {
  const Popcount pop;
  __m256i acc[RB][S][2];
  for (int i = 0; i < RB; ++i)
    for (int s = 0; s < S; ++s) acc[i][s][0] = acc[i][s][1] = _mm256_setzero_si256();
  const uint64_t* w = w8 + rb0 * kw * 8;
  const uint64_t* xb = x + b0 * ldx;
  for (size_t j = 0; j < kw; ++j) {
    for (int s = 0; s < S; ++s) {
      const __m256i xv = _mm256_set1_epi64x(int64_t(xb[s * ldx + j]));
      for (int i = 0; i < RB; ++i) {
        const __m256i* p = reinterpret_cast<const __m256i*>(w + (i * kw + j) * 8);
        acc[i][s][0] = _mm256_add_epi64(acc[i][s][0], pop(_mm256_xor_si256(_mm256_load_si256(p), xv)));
        acc[i][s][1] = _mm256_add_epi64(acc[i][s][1], pop(_mm256_xor_si256(_mm256_load_si256(p + 1), xv)));
      }
    }
  }
  for (int i = 0; i < RB; ++i)
    for (int s = 0; s < S; ++s) epilogue(acc[i][s][0], acc[i][s][1], rb0 + i, r1, ep, y, b0 + s, ldy);
}

template <int S>
void samples(const uint64_t* w8, size_t kw, size_t r0, size_t r1, const uint64_t* x, size_t ldx, size_t b0,
             const BinaryEpilogue& ep, void* y, size_t ldy) {
  constexpr int RB = S == 1 ? 4 : 2;
  const size_t rb1 = (r1 + 7) / 8;
  size_t rb = r0 / 8;
  for (; rb + RB <= rb1; rb += RB) tile<RB, S>(w8, kw, rb, r1, x, ldx, b0, ep, y, ldy);
  for (; rb < rb1; ++rb) tile<1, S>(w8, kw, rb, r1, x, ldx, b0, ep, y, ldy);
}

}  // namespace

void pyrt_xnor_gemm__avx2(const uint64_t* w8, size_t kw, size_t r0, size_t r1, const uint64_t* x, size_t ldx,
                          size_t batch, const BinaryEpilogue& ep, void* y, size_t ldy) {
  size_t b = 0;
  for (; b + 2 <= batch; b += 2) samples<2>(w8, kw, r0, r1, x, ldx, b, ep, y, ldy);
  if (b < batch) samples<1>(w8, kw, r0, r1, x, ldx, b, ep, y, ldy);
}

void pyrt_binarize__avx2(const float* x, size_t ldx, size_t batch, size_t cols, float scale, float shift,
                         uint64_t* out, size_t ldo) {
  const __m256 vs = _mm256_set1_ps(scale), vh = _mm256_set1_ps(shift), zero = _mm256_setzero_ps();
  for (size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * ldx;
    uint64_t* o = out + b * ldo;
    for (size_t j = 0; j < ldo; ++j) o[j] = 0;
    size_t c = 0;
    for (; c + 8 <= cols; c += 8) {
      const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + c), vs), vh);
      o[c / 64] |= uint64_t(_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GE_OQ))) << (c % 64);
    }
    for (; c < cols; ++c) o[c / 64] |= uint64_t(sign_bit(xb[c], scale, shift)) << (c % 64);
  }
}

// 8 pixels x one group of 64 channels at a time: each channel's 8 floats compare into lane masks that OR the
// channel's bit into the 8 pixels' words (two ymm); the last pixels of a plane take the scalar sign.
void pyrt_binarize_hwc__avx2(const float* x, size_t batch, size_t channels, size_t pixels, float scale, float shift,
                             uint64_t* out) {
  const size_t cw = (channels + 63) / 64;
  const __m256 vs = _mm256_set1_ps(scale), vh = _mm256_set1_ps(shift), zero = _mm256_setzero_ps();
  for (size_t b = 0; b < batch; ++b, x += channels * pixels, out += pixels * cw) {
    for (size_t g = 0; g < cw; ++g) {
      const size_t c1 = channels < g * 64 + 64 ? channels : g * 64 + 64;
      size_t p = 0;
      for (; p + 8 <= pixels; p += 8) {
        __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
        for (size_t c = g * 64; c < c1; ++c) {
          const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + c * pixels + p), vs), vh);
          const __m256i m = _mm256_castps_si256(_mm256_cmp_ps(v, zero, _CMP_GE_OQ));
          const __m256i bit = _mm256_set1_epi64x(int64_t(uint64_t(1) << (c % 64)));
          lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(m)), bit));
          hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(m, 1)), bit));
        }
        alignas(32) uint64_t w[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(w), lo);
        _mm256_store_si256(reinterpret_cast<__m256i*>(w + 4), hi);
        for (size_t j = 0; j < 8; ++j) out[(p + j) * cw + g] = w[j];
      }
      for (; p < pixels; ++p) {
        uint64_t w = 0;
        for (size_t c = g * 64; c < c1; ++c) w |= uint64_t(sign_bit(x[c * pixels + p], scale, shift)) << (c % 64);
        out[p * cw + g] = w;
      }
    }
  }
}

void pyrt_dot_epilogue__avx2(const int32_t* m, size_t n, size_t o, const int32_t* kv, const float* alpha,
                             const float* bias, const int32_t* lim2, void* y, size_t ldy) {
  for (size_t i = 0; i < n; ++i) {
    const __m256i k = _mm256_set1_epi32(kv[i]);
    const int32_t* mi = m + i * o;
    size_t r = 0;
    if (lim2) {
      uint64_t* w = static_cast<uint64_t*>(y) + i * ldy;
      for (size_t j = 0; j < ldy; ++j) w[j] = 0;
      for (; r + 8 <= o; r += 8) {
        const __m256i dot = _mm256_sub_epi32(k, _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mi + r)), 1));
        const __m256i below = _mm256_cmpgt_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lim2 + r)), dot);
        w[r / 64] |= uint64_t(uint8_t(~_mm256_movemask_ps(_mm256_castsi256_ps(below)))) << (r % 64);
      }
      for (; r < o; ++r) w[r / 64] |= uint64_t(kv[i] - 2 * mi[r] >= lim2[r]) << (r % 64);
      continue;
    }
    float* yi = static_cast<float*>(y) + i * o;
    for (; r + 8 <= o; r += 8) {
      const __m256i dot = _mm256_sub_epi32(k, _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mi + r)), 1));
      _mm256_storeu_ps(yi + r, _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_loadu_ps(alpha + r), _mm256_loadu_ps(bias + r)));
    }
    for (; r < o; ++r)
      yi[r] = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(float(kv[i] - 2 * mi[r])), _mm_set_ss(alpha[r]), _mm_set_ss(bias[r])));
  }
}

void pyrt_bwn_gemm__avx2(const uint64_t* w, size_t kw, size_t cols, size_t r0, size_t r1, const float* x, size_t ldx,
                         size_t batch, const float* alpha, const float* bias, float* y, size_t ldy) {
  const __m256i pick = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i sign = _mm256_set1_epi32(int32_t(0x80000000u));
  for (size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * ldx;
    for (size_t r = r0; r < r1; ++r) {
      __m256 acc = _mm256_setzero_ps();
      size_t c = 0;
      for (; c + 8 <= cols; c += 8) {
        const __m256i bits = _mm256_set1_epi32(int32_t((w[r * kw + c / 64] >> (c % 64)) & 0xFF));
        const __m256i plus = _mm256_cmpeq_epi32(_mm256_and_si256(bits, pick), pick);
        const __m256i flip = _mm256_andnot_si256(plus, sign);
        acc = _mm256_add_ps(acc, _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(_mm256_loadu_ps(xb + c)), flip)));
      }
      const __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
      const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
      float s = _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
      for (; c < cols; ++c) s += (w[r * kw + c / 64] >> (c % 64)) & 1 ? xb[c] : -xb[c];
      y[b * ldy + r] = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(alpha[r]), _mm_set_ss(s), _mm_set_ss(bias[r])));
    }
  }
}

}  // namespace pyrt::kernels
