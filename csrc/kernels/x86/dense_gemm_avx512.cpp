// pyruntime: dense f32 GEMV / GEMM, AVX-512F (same structure as dense_gemm_avx2.cpp, 16-float vectors,
// a larger register tile and mask registers for the column tail).
//   pyrt_f32_gemm__avx512: y[b][r] = W[r] . x[b] + bias[r]
// Batch 1 and small batches: both operands are contiguous along the reduction, so each output is a vector
// dot product: a register tile of R weight rows x T batch rows keeps R*T accumulators, loads each W and x
// vector once per tile and reduces horizontally at the end; columns are blocked (kColBlock) so the x
// block of all batch rows stays in L2 while W streams from memory once. From kBcastMinBatch on, the
// batch-in-lanes GEMM of gemm_bcast_avx512.h (broadcast W, x transposed per tile) is faster.
#include <algorithm>

#include "kernels/kernels.h"
#include "kernels/x86/avx512_util.h"
#include "kernels/x86/gemm_bcast_avx512.h"

namespace pyrt::kernels {
namespace {

using avx512::tail_mask;

constexpr int kGemvRows = 8;       // batch 1: 8 rows share each x vector; 8 independent FMA chains
constexpr int kTileRows = 4;       // batch > 1: 4 x 6 tile = 24 of the 32 registers, 10 loads per 24 FMAs
constexpr int kTileBatch = 6;
constexpr size_t kColBlock = 1024; // floats: 4 KB per row, x block of 64 rows = 256 KB
constexpr size_t kBcastMinBatch = 8;  // from here the batch-in-lanes GEMM (gemm_bcast_avx512.h) is faster

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

// dot_tile<R, t> for a run-time t in 1..T.
template <int R, int T>
inline void dot_rt(size_t bt, const float* w, size_t ldw, const float* x, size_t ldx, size_t c0, size_t c1,
                   float* out, size_t ldo) {
  if constexpr (T > 1) {
    if (bt < size_t(T)) return dot_rt<R, T - 1>(bt, w, ldw, x, ldx, c0, c1, out, ldo);
  }
  dot_tile<R, T>(w, ldw, x, ldx, c0, c1, out, ldo);
}

// A tile of rr <= R rows and bt <= T batch rows; out[r * T + t].
template <int R, int T>
void dot_any(size_t rr, size_t bt, const float* w, size_t ldw, const float* x, size_t ldx, size_t c0, size_t c1,
             float* out) {
  if (rr == size_t(R)) return dot_rt<R, T>(bt, w, ldw, x, ldx, c0, c1, out, T);
  for (size_t r = 0; r < rr; ++r) dot_rt<1, T>(bt, w + r * ldw, ldw, x, ldx, c0, c1, out + r * T, T);
}

// W rows for gemm_bcast: the dense weight itself.
struct DenseRows {
  const DenseF32& w;
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

void pyrt_f32_gemm__avx512(const DenseF32& L, const float* x, size_t batch, float* y, const float* bias) {
  if (batch == 1) return gemv(L, x, y, bias);
  if (batch >= kBcastMinBatch) return avx512::gemm_bcast(DenseRows{L}, L.rows, L.cols, x, batch, y, bias);
  const size_t rows = L.rows, cols = L.cols;
  for (size_t c0 = 0; c0 < cols; c0 += kColBlock) {
    const size_t c1 = std::min(cols, c0 + kColBlock);
    const bool first = c0 == 0;
    for (size_t r0 = 0; r0 < rows; r0 += kTileRows) {
      const size_t rr = std::min<size_t>(kTileRows, rows - r0);
      for (size_t b0 = 0; b0 < batch; b0 += kTileBatch) {
        const size_t bt = std::min<size_t>(kTileBatch, batch - b0);
        float out[kTileRows * kTileBatch];
        dot_any<kTileRows, kTileBatch>(rr, bt, L.w + r0 * cols, cols, x + b0 * cols, cols, c0, c1, out);
        for (size_t r = 0; r < rr; ++r) {
          for (size_t t = 0; t < bt; ++t) {
            float& dst = y[(b0 + t) * rows + r0 + r];
            const float s = out[r * kTileBatch + t];
            dst = first ? s + (bias ? bias[r0 + r] : 0.0f) : dst + s;
          }
        }
      }
    }
  }
}

}  // namespace pyrt::kernels
