// pyruntime: dense f32 GEMV / GEMM, aarch64 Advanced SIMD (the NEON twin of x86/dense_gemm_avx2.cpp).
//   pyrt_f32_gemm__neon: y[b][r] = W[r] . x[b] + bias[r]
// Batch 1: both operands are contiguous along the reduction, so each output is a vector dot product: a
// register tile of 8 weight rows shares each pair of x vectors, two FMA chains per row (16 in flight), one
// horizontal sum per row; the last cols % 8 columns go through one more vector step and fmaf, so nothing
// past the row is read (the weight may be mapped file memory without padding).
// Batch >= 2: dot-product tiles of 4 weight rows x up to 4 batch rows (dot_batch_neon.h).
#include <arm_neon.h>

#include <cmath>

#include "kernels/arm/dot_batch_neon.h"
#include "kernels/arm/neon_util.h"
#include "kernels/kernels.h"

namespace pyrt::kernels {
namespace {

using namespace neon;

constexpr int kGemvRows = 8;

// out[r] = W[r] . x for the R rows at w (stride cols). Each row: columns [0, 8 n) on two chains (even and
// odd 4-column halves), then one 4-column step on the first, the sum of the lanes, the last 0..3 columns
// in order. The same for every R, so a row's bits do not depend on the tile it falls in.
template <int R>
inline void gemv_tile(const float* w, size_t cols, const float* x, float* out) {
  float32x4_t a0[R], a1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = vdupq_n_f32(0.0f);
  size_t c = 0;
  for (; c + 8 <= cols; c += 8) {
    const float32x4_t x0 = vld1q_f32(x + c), x1 = vld1q_f32(x + c + 4);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      a0[r] = vfmaq_f32(a0[r], vld1q_f32(w + r * cols + c), x0);
      a1[r] = vfmaq_f32(a1[r], vld1q_f32(w + r * cols + c + 4), x1);
    }
  }
  if (c + 4 <= cols) {
    const float32x4_t x0 = vld1q_f32(x + c);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) a0[r] = vfmaq_f32(a0[r], vld1q_f32(w + r * cols + c), x0);
    c += 4;
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float s = hsum2(a0[r], a1[r]);
    for (size_t k = c; k < cols; ++k) s = std::fma(w[r * cols + k], x[k], s);
    out[r] = s;
  }
}

void gemv(const DenseF32& L, const float* x, float* y, const float* bias) {
  const size_t rows = L.rows, cols = L.cols;
  float out[kGemvRows];
  size_t r = 0;
  for (; r + kGemvRows <= rows; r += kGemvRows) {
    gemv_tile<kGemvRows>(L.w + r * cols, cols, x, out);
    for (int i = 0; i < kGemvRows; ++i) y[r + i] = out[i] + (bias ? bias[r + i] : 0.0f);
  }
  for (; r < rows; ++r) {
    gemv_tile<1>(L.w + r * cols, cols, x, out);
    y[r] = out[0] + (bias ? bias[r] : 0.0f);
  }
}

// W rows for dot_gemm: the dense weight itself.
struct DenseRows {
  static constexpr bool kInPlace = true;
  const DenseF32& w;
  const float* rows(size_t r0, size_t /*m*/, float* /*buf*/, size_t* ld) const {
    *ld = w.cols;
    return w.w + r0 * w.cols;
  }
};

}  // namespace

void pyrt_f32_gemm__neon(const DenseF32& L, const float* x, size_t batch, float* y, const float* bias) {
  if (batch == 1) return gemv(L, x, y, bias);
  dot_gemm(DenseRows{L}, L.rows, L.cols, x, batch, y, bias);
}

}  // namespace pyrt::kernels
