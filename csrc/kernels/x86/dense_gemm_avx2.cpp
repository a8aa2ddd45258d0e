// pyruntime: dense f32 GEMV / GEMM, AVX2 + FMA.
//   pyrt_f32_gemm__avx2: y[b][r] = W[r] . x[b] + bias[r]
// Batch 1: both operands are contiguous along the reduction, so each output is a vector dot product: a
// register tile of 8 weight rows shares each x vector and reduces horizontally at the end. Batches
// 2 .. kBcastMinBatch - 1: dot-product tiles of R weight rows x up to 6 batch rows on packed x
// (dot_batch_avx2.h). From kBcastMinBatch on, whole tiles of 16 batch rows go through the batch-in-lanes
// GEMM of gemm_bcast_avx2.h (broadcast W, x transposed per tile) and the remaining rows through the dot
// tiles again.
#include <algorithm>

#include "kernels/kernels.h"
#include "kernels/x86/avx2_util.h"
#include "kernels/x86/dot_batch_avx2.h"
#include "kernels/x86/gemm_bcast_avx2.h"

namespace pyrt::kernels {
namespace {

using avx2::tail_mask;

constexpr int kGemvRows = 8;  // batch 1: 8 rows share each x vector; 8 independent FMA chains
// Zen 4, 4096 x 4096: dot tiles vs batch-in-lanes at batch 8: 5.0 vs 5.5 ms, 12: 6.1 vs 6.8, 16: 8.1 vs
// 6.9, 32: 15.3 vs 13.2.
constexpr size_t kBcastMinBatch = 16;

// out[r * ldo + t] = sum_{c in [c0, c1)} w[r * ldw + c] * x[t * ldx + c]
template <int R, int T>
inline void dot_tile(const float* w, size_t ldw, const float* x, size_t ldx, size_t c0, size_t c1, float* out,
                     size_t ldo) {
  __m256 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  size_t c = c0;
  for (; c + 8 <= c1; c += 8) {
    __m256 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = _mm256_loadu_ps(w + r * ldw + c);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_loadu_ps(x + t * ldx + c);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  if (c < c1) {  // subtile: masked loads read nothing past c1
    const __m256i m = tail_mask(c1 - c);
    __m256 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = _mm256_maskload_ps(w + r * ldw + c, m);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_maskload_ps(x + t * ldx + c, m);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) out[r * ldo + t] = avx2::hsum(acc[r][t]);
}

// W rows for gemm_bcast and dot_gemm: the dense weight itself.
struct DenseRows {
  static constexpr bool kInPlace = true;
  const DenseF32& w;
  const float* rows(size_t r0, size_t /*m*/, float* /*buf*/, size_t* ld) const {
    *ld = w.cols;
    return w.w + r0 * w.cols;
  }
  const float* rows(size_t r0, size_t /*m*/, size_t c0, size_t /*c1*/, float* /*buf*/, size_t* ld) const {
    *ld = w.cols;
    return w.w + r0 * w.cols + c0;
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

void pyrt_f32_gemm__avx2(const DenseF32& L, const float* x, size_t batch, float* y, const float* bias) {
  if (batch == 1) return gemv(L, x, y, bias);
  if (batch >= kBcastMinBatch) {
    const size_t nb = batch / 16 * 16;
    avx2::gemm_bcast(DenseRows{L}, L.rows, L.cols, x, nb, y, bias);
    x += nb * L.cols;
    y += nb * L.rows;
    batch -= nb;
    if (batch == 0) return;
    if (batch == 1) return gemv(L, x, y, bias);
  }
  avx2::dot_gemm(DenseRows{L}, L.rows, L.cols, x, batch, y, bias);
}

}  // namespace pyrt::kernels
