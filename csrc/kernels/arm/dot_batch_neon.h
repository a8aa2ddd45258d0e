// pyruntime: NEON small-batch GEMM (dot-product tiles), shared by the dense and codebook kernels
// (batch >= 2). Tiles of R = 4 weight rows x T <= kDotMaxBatch (4) batch rows: per 4 columns, R weight
// loads and T x loads feed R * T FMAs into one accumulator per (row, batch row); 16 accumulators + 8
// operands stay within the 32 vector registers. Batch rows go in passes of at most 4 (sizes differing by
// at most one); with several passes the weight rows go in blocks of about kDotBlockBytes so that the
// later passes find them in L2.
//
//   y[b][r] = sum_c W[r][c] * x[b][c] + bias[r]
//
// Each (row, batch row) is summed the same way whatever tile or pass it falls in: one 4-lane accumulator
// over the columns [0, cols / 4 * 4), reduced with vaddvq, then the last cols % 4 columns in order with
// fmaf. So a block of rows (a thread's share of a layer) gives the bits of the whole. Nothing is read
// past column cols - 1 of a W row or an x row.
//
// RowSource: const float* rows(size_t r0, size_t m, float* buf, size_t* ld) const
//   returns rows r0 .. r0 + m - 1, columns [0, cols) at result + i * *ld; buf has room for
//   block_rows(cols) * cols floats. static constexpr bool kInPlace: the rows are the weight itself
//   (blocked only to keep them in L2 across passes); otherwise they are decoded into buf, blocks of
//   decoded_block_rows(cols) rows.
#pragma once

#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "kernels/arm/neon_util.h"
#include "kernels/kernels.h"

namespace pyrt::kernels::neon {
namespace {  // internal linkage: see neon_util.h

constexpr size_t kDotMaxBatch = 4;            // T: batch rows per pass
constexpr int kDotRows = 4;                   // R: weight rows per tile
constexpr size_t kDotBlockBytes = 256 << 10;  // in-place weight rows per block with several passes
constexpr size_t kDecodedFloats = 16 << 10;   // decoded rows per block: about this many floats (64 KB, L1/L2)

// Rows per block of decoded weights: a multiple of kDotRows, at least kDotRows.
inline size_t decoded_block_rows(size_t cols) {
  return std::max<size_t>(kDotRows, kDecodedFloats / std::max<size_t>(cols, 1) / kDotRows * kDotRows);
}

// Pass p covers batch rows [begin(p), begin(p + 1)).
struct DotPasses {
  size_t batch, passes;
  explicit DotPasses(size_t b) : batch(b), passes((b + kDotMaxBatch - 1) / kDotMaxBatch) {}
  size_t begin(size_t p) const { return batch * p / passes; }
  size_t size(size_t p) const { return begin(p + 1) - begin(p); }
};

// out[r * T + t] = W[r] . x[t] for W rows at w + r * ldw, x rows at x + t * ldx.
template <int R, int T>
inline void dot_tile(const float* w, size_t ldw, const float* x, size_t ldx, size_t cols, float* out) {
  float32x4_t acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[r][t] = vdupq_n_f32(0.0f);
  const size_t full = cols / 4 * 4;
  for (size_t c = 0; c < full; c += 4) {
    float32x4_t xv[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) xv[t] = vld1q_f32(x + t * ldx + c);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const float32x4_t wv = vld1q_f32(w + r * ldw + c);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) acc[r][t] = vfmaq_f32(acc[r][t], wv, xv[t]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      float s = vaddvq_f32(acc[r][t]);
      for (size_t c = full; c < cols; ++c) s = std::fma(w[r * ldw + c], x[t * ldx + c], s);
      out[r * T + t] = s;
    }
}

// y[b0 + t][r0 + r] = out[r * T + t] + bias[r0 + r] for r < nr, t < T.
template <int T>
inline void store_tile(const float* out, int nr, size_t r0, size_t b0, size_t rows, float* y, const float* bias) {
  for (int r = 0; r < nr; ++r) {
    const float b = bias ? bias[r0 + size_t(r)] : 0.0f;
    for (int t = 0; t < T; ++t) y[(b0 + size_t(t)) * rows + r0 + size_t(r)] = out[r * T + t] + b;
  }
}

// One pass of T batch rows (x rows at x, stride cols) over the weight rows [r0, r0 + m) at w (stride ldw).
template <int T>
void dot_pass(const float* w, size_t ldw, size_t cols, size_t r0, size_t m, const float* x, size_t b0, size_t rows,
              float* y, const float* bias) {
  float out[kDotRows * T];
  size_t i = 0;
  for (; i + kDotRows <= m; i += kDotRows) {
    dot_tile<kDotRows, T>(w + i * ldw, ldw, x, cols, cols, out);
    store_tile<T>(out, kDotRows, r0 + i, b0, rows, y, bias);
  }
  for (; i < m; ++i) {
    dot_tile<1, T>(w + i * ldw, ldw, x, cols, cols, out);
    store_tile<T>(out, 1, r0 + i, b0, rows, y, bias);
  }
}

// dot_pass<bt> for a run-time bt in 1..T.
template <int T = int(kDotMaxBatch)>
void dot_pass_any(size_t bt, const float* w, size_t ldw, size_t cols, size_t r0, size_t m, const float* x, size_t b0,
                  size_t rows, float* y, const float* bias) {
  if constexpr (T > 1) {
    if (bt < size_t(T)) return dot_pass_any<T - 1>(bt, w, ldw, cols, r0, m, x, b0, rows, y, bias);
  }
  dot_pass<T>(w, ldw, cols, r0, m, x, b0, rows, y, bias);
}

// The whole product: blocks of weight rows from src, each run by every pass of batch rows.
template <class RowSource>
void dot_gemm(const RowSource& src, size_t rows, size_t cols, const float* x, size_t batch, float* y,
              const float* bias) {
  const DotPasses ps(batch);
  size_t block;
  float* buf = nullptr;
  if constexpr (RowSource::kInPlace) {
    block = ps.passes == 1 ? rows
                           : std::max<size_t>(kDotRows, kDotBlockBytes / (std::max<size_t>(cols, 1) * sizeof(float)) /
                                                            kDotRows * kDotRows);
  } else {
    block = decoded_block_rows(cols);
    buf = thread_scratch(std::min<size_t>(block, rows) * cols);
  }
  for (size_t r0 = 0; r0 < rows; r0 += block) {
    const size_t m = std::min(block, rows - r0);
    size_t ldw = 0;
    const float* w = src.rows(r0, m, buf, &ldw);
    for (size_t p = 0; p < ps.passes; ++p)
      dot_pass_any(ps.size(p), w, ldw, cols, r0, m, x + ps.begin(p) * cols, ps.begin(p), rows, y, bias);
  }
}

}  // namespace
}  // namespace pyrt::kernels::neon
