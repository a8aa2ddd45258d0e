// pyruntime: AVX2 small-batch GEMM (dot-product tiles), shared by the dense and codebook kernels. Same
// structure as dot_batch_avx512.h with 8-float vectors and 16 registers: tiles of R weight rows x T <=
// kDotMaxBatch batch rows with R * T <= 12 accumulators, x packed per pass (8-float chunks of the bt rows
// adjacent and 32-byte aligned, zero past cols), passes over blocks of weight rows from a RowSource, the
// next tile's weights prefetched into L2 while a tile runs.
//
//   y[b][r] = sum_c W[r][c] * x[b][c] + bias[r]
//
// RowSource: const float* rows(size_t r0, size_t m, float* buf, size_t* ld) const
//   returns rows r0 .. r0 + m - 1, columns [0, cols) at result + i * *ld (rows may be read up to the
//   next multiple of 8 columns; lanes past cols are masked); buf has room for m * padded_cols floats;
//   static constexpr bool kInPlace: the rows are the weight itself (contiguous, prefetched ahead).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"
#include "kernels/x86/avx2_util.h"

namespace pyrt::kernels::avx2 {
namespace {  // internal linkage: see the note at the top of avx2_util.h

constexpr size_t kDotMaxBatch = 6;            // T: batch rows per pass
constexpr size_t kDotBlockBytes = 384 << 10;  // weight rows per block in place: about this many bytes (L2)
constexpr size_t kDotDecodedRows = 12;        // rows per block decoded into the buffer
constexpr size_t kDotScratchBytes = 8 << 20;  // packed x per chunk of batch rows: at most about this

// Batch rows per chunk (x packed at once): a multiple of kDotMaxBatch, up to 128, within kDotScratchBytes.
inline size_t dot_chunk_rows(size_t padded) {
  const size_t n = kDotScratchBytes / (padded * sizeof(float)) / kDotMaxBatch * kDotMaxBatch;
  return std::clamp<size_t>(n, kDotMaxBatch, 128 / kDotMaxBatch * kDotMaxBatch);
}

// xs[(k * bt + t) * 8 + l] = x[t * ldx + 8 k + l] for 8 k + l < cols, 0 for cols <= 8 k + l < padded
// (padded a multiple of 8). Reads no x element at or past cols.
inline void pack_x(const float* x, size_t ldx, size_t bt, size_t cols, size_t padded, float* xs) {
  const size_t full = cols / 8, nk = padded / 8;
  for (size_t t = 0; t < bt; ++t) {
    const float* xr = x + t * ldx;
    float* o = xs + t * 8;
    size_t k = 0;
    for (; k < full; ++k) _mm256_store_ps(o + k * bt * 8, _mm256_loadu_ps(xr + 8 * k));
    if (k < nk && 8 * k < cols) {
      _mm256_store_ps(o + k * bt * 8, _mm256_maskload_ps(xr + 8 * k, tail_mask(cols - 8 * k)));
      ++k;
    }
    for (; k < nk; ++k) _mm256_store_ps(o + k * bt * 8, _mm256_setzero_ps());
  }
}

// Pass p covers batch rows [begin(p), begin(p + 1)): at most max_t, sizes differing by at most one.
struct DotPasses {
  size_t batch, passes;
  explicit DotPasses(size_t b, size_t max_t = kDotMaxBatch) : batch(b), passes((b + max_t - 1) / max_t) {}
  size_t begin(size_t p) const { return batch * p / passes; }
  size_t size(size_t p) const { return begin(p + 1) - begin(p); }
};

// Packs every pass of x (pass p at xs + begin(p) * padded).
inline void pack_passes(const DotPasses& ps, const float* x, size_t cols, size_t padded, float* xs) {
  for (size_t p = 0; p < ps.passes; ++p)
    pack_x(x + ps.begin(p) * cols, cols, ps.size(p), cols, padded, xs + ps.begin(p) * padded);
}

// L2 prefetch of `Lines` consecutive cache lines from p (never faults: p may point past the weights).
template <int Lines>
inline void prefetch_l2(const void* p) {
#pragma GCC unroll 8
  for (int i = 0; i < Lines; ++i) _mm_prefetch(static_cast<const char*>(p) + 64 * i, _MM_HINT_T1);
}

// y[b0 + t][r0 + r] = out[r * T + t] + bias[r0 + r] for r < nr, t < T.
template <int T>
inline void store_tile(const float* out, int nr, size_t r0, size_t b0, size_t rows, float* y, const float* bias) {
  for (int r = 0; r < nr; ++r) {
    const float b = bias ? bias[r0 + size_t(r)] : 0.0f;
    for (int t = 0; t < T; ++t) y[(b0 + size_t(t)) * rows + r0 + size_t(r)] = out[r * T + t] + b;
  }
}

// out[r * T + t] = W[r] . x[t] for W rows at w + r * ldw, x packed (pass of T rows). Prefetch: the next
// R rows (at w + R * ldw, contiguous) into L2, one line per 16 floats of each row.
template <int R, int T, bool Prefetch>
inline void dense_dot(const float* w, size_t ldw, size_t cols, const float* xs, float* out) {
  __m256 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  const float* next = w + R * ldw;
  const size_t full = cols / 8;
  for (size_t k = 0; k < full; ++k) {
    __m256 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = _mm256_loadu_ps(w + r * ldw + 8 * k);
    if constexpr (Prefetch) {
      if (k % 2 == 0) prefetch_l2<R>(next + 16 * R * (k / 2));
    }
    const float* xk = xs + k * T * 8;
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_load_ps(xk + t * 8);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  if (full * 8 < cols) {  // W masked (past cols: the next row, or padding); the packed x is 0 there
    const __m256i m = tail_mask(cols - full * 8);
    __m256 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = _mm256_maskload_ps(w + r * ldw + 8 * full, m);
    const float* xk = xs + full * T * 8;
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_load_ps(xk + t * 8);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) out[r * T + t] = hsum(acc[r][t]);
}

// Weight rows per dense tile for a pass of T batch rows (measured on Zen 4; R = 3 is consistently slower
// than 2 or 4), R divides kDotDecodedRows (12) so that blocks hold whole tiles.
template <int T>
constexpr int dense_tile_rows() {
  return T <= 2 ? 6 : T <= 3 ? 4 : 2;
}

// One pass of T batch rows over the block of weight rows [r0, r0 + m) at w (row stride ldw).
template <int T, bool Prefetch>
void dense_pass(const float* w, size_t ldw, size_t cols, size_t r0, size_t m, const float* xs, size_t b0,
                size_t rows, float* y, const float* bias) {
  constexpr int R = dense_tile_rows<T>();
  float out[R * T];
  size_t i = 0;
  for (; i + R <= m; i += R) {
    dense_dot<R, T, Prefetch>(w + i * ldw, ldw, cols, xs, out);
    store_tile<T>(out, R, r0 + i, b0, rows, y, bias);
  }
  for (; i < m; ++i) {
    dense_dot<1, T, Prefetch>(w + i * ldw, ldw, cols, xs, out);
    store_tile<T>(out, 1, r0 + i, b0, rows, y, bias);
  }
}

// dense_pass<bt> for a run-time bt in 1..T.
template <bool Prefetch, int T = int(kDotMaxBatch)>
void dense_pass_any(size_t bt, const float* w, size_t ldw, size_t cols, size_t r0, size_t m, const float* xs,
                    size_t b0, size_t rows, float* y, const float* bias) {
  if constexpr (T > 1) {
    if (bt < size_t(T)) return dense_pass_any<Prefetch, T - 1>(bt, w, ldw, cols, r0, m, xs, b0, rows, y, bias);
  }
  dense_pass<T, Prefetch>(w, ldw, cols, r0, m, xs, b0, rows, y, bias);
}

// The whole product for batch >= 2: chunks of at most dot_chunk_rows batch rows, each in passes of dense
// dot tiles over blocks of rows from src.
template <class RowSource>
void dot_gemm(const RowSource& src, size_t rows, size_t cols, const float* x, size_t batch, float* y,
              const float* bias) {
  const size_t padded = (cols + 7) / 8 * 8, chunk = dot_chunk_rows(padded);
  const size_t nx = std::min(batch, chunk) * padded;
  float* xs = thread_scratch(nx + (RowSource::kInPlace ? 0 : kDotDecodedRows * padded));
  float* wbuf = xs + nx;
  for (size_t c0 = 0; c0 < batch; c0 += chunk) {
    const DotPasses ps(std::min(chunk, batch - c0));
    pack_passes(ps, x + c0 * cols, cols, padded, xs);
    size_t block = kDotDecodedRows;  // rows per block: a multiple of every dense_tile_rows
    if constexpr (RowSource::kInPlace)
      block = ps.passes == 1 ? rows : std::max<size_t>(12, kDotBlockBytes / (padded * sizeof(float)) / 12 * 12);
    for (size_t r0 = 0; r0 < rows; r0 += block) {
      const size_t m = std::min(block, rows - r0);
      size_t ldw = 0;
      const float* w = src.rows(r0, m, wbuf, &ldw);
      for (size_t p = 0; p < ps.passes; ++p)
        dense_pass_any<RowSource::kInPlace>(ps.size(p), w, ldw, cols, r0, m, xs + ps.begin(p) * padded,
                                            c0 + ps.begin(p), rows, y, bias);
    }
  }
}

}  // namespace
}  // namespace pyrt::kernels::avx2
