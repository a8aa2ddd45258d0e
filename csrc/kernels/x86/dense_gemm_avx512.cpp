// pyruntime: dense f32 GEMV / GEMM, AVX-512F (same structure as dense_gemm_avx2.cpp, 16-float vectors,
// a larger register tile and mask registers for the column tail).
//   pyrt_f32_gemm__avx512: y[b][r] = W[r] . x[b] + bias[r]
// Batch 1: each output is a dot product along the reduction (both operands contiguous): a register tile
// of 8 weight rows shares each x vector. Batches 2 .. kBcastMinBatch - 1: dot-product tiles of R weight
// rows x up to 8 batch rows on packed x (dot_batch_avx512.h). From kBcastMinBatch on, whole tiles of 32
// batch rows go through the batch-in-lanes GEMM of gemm_bcast_avx512.h (broadcast W, x transposed per
// tile) and the remaining rows through the dot tiles again.
#include <algorithm>

#include "kernels/kernels.h"
#include "kernels/x86/avx512_util.h"
#include "kernels/x86/dot_batch_avx512.h"
#include "kernels/x86/gemm_bcast_avx512.h"

namespace pyrt::kernels {
namespace {

using avx512::tail_mask;

constexpr int kGemvRows = 8;           // batch 1: 8 rows share each x vector; 8 independent FMA chains
// From here, whole tiles of 32 batch rows go through the batch-in-lanes GEMM (gemm_bcast_avx512.h); below,
// and for the rest of a larger batch (a partial lane tile wastes lanes), dot tiles are faster (Zen 4,
// 4096 x 4096: batch 16 6.5 vs 7.0 ms, 24: 9.6 vs 12.2, 32: 13.6 vs 12.2, 40: 16.6 vs 19.5 for bcast alone).
constexpr size_t kBcastMinBatch = 32;

// out[r * ldo + t] = sum_{c in [c0, c1)} w[r * ldw + c] * x[t * ldx + c]
template <int R, int T>
inline void dot_tile(const float* w, size_t ldw, const float* x, size_t ldx, size_t c0, size_t c1, float* out,
                     size_t ldo) {
  __m512 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  size_t c = c0;
  for (; c + 16 <= c1; c += 16) {
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = _mm512_loadu_ps(w + r * ldw + c);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_loadu_ps(x + t * ldx + c);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  if (c < c1) {  // subtile: masked loads read nothing past c1
    const __mmask16 m = tail_mask(c1 - c);
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = _mm512_maskz_loadu_ps(m, w + r * ldw + c);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + t * ldx + c);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) out[r * ldo + t] = avx512::hsum(acc[r][t]);
}

// W rows for gemm_bcast and dot_gemm: the dense weight itself.
struct DenseRows {
  static constexpr bool kInPlace = true;
  const DenseF32& w;
  const float* rows(size_t r0, size_t /*m*/, size_t c0, size_t /*c1*/, float* /*buf*/, size_t* ld) const {
    *ld = w.cols;
    return w.w + r0 * w.cols + c0;
  }
  const float* rows(size_t r0, size_t /*m*/, float* /*buf*/, size_t* ld) const {
    *ld = w.cols;
    return w.w + r0 * w.cols;
  }
};

void gemv(const DenseF32& L, const float* x, float* y, const float* bias) {
  const size_t rows = L.rows, cols = L.cols;
  float out[kGemvRows];
  size_t r = 0;
  for (; r + kGemvRows <= rows; r += kGemvRows) {
    dot_tile<kGemvRows, 1>(L.w + r * cols, cols, x, cols, 0, cols, out, 1);
    for (int i = 0; i < kGemvRows; ++i) y[r + i] = out[i] + (bias ? bias[r + i] : 0.0f);
  }
  for (; r < rows; ++r) {
    dot_tile<1, 1>(L.w + r * cols, cols, x, cols, 0, cols, out, 1);
    y[r] = out[0] + (bias ? bias[r] : 0.0f);
  }
}

}  // namespace

void pyrt_f32_gemm__avx512(const DenseF32& L, const float* x, size_t batch, float* y, const float* bias) {
  if (batch == 1) return gemv(L, x, y, bias);
  if (batch >= kBcastMinBatch) {
    const size_t nb = batch / 32 * 32;
    avx512::gemm_bcast(DenseRows{L}, L.rows, L.cols, x, nb, y, bias);
    x += nb * L.cols;
    y += nb * L.rows;
    batch -= nb;
    if (batch == 0) return;
    if (batch == 1) return gemv(L, x, y, bias);
  }
  avx512::dot_gemm(DenseRows{L}, L.rows, L.cols, x, batch, y, bias);
}

}  // namespace pyrt::kernels
