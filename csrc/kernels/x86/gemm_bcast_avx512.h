// pyruntime: AVX-512 GEMM driver for larger batches (used by the dense kernel for whole tiles of 32
// batch rows; the codebook kernels use the dot tiles of dot_batch_avx512.h at every batch).
//
//   y[b][r] = sum_c W[r][c] * x[b][c] + bias[r]
//
// Outer-product formulation with the batch in the vector lanes: a tile of 16 * NV batch rows of x is
// transposed once into xt[c][lane] (thread scratch); the micro-kernel keeps an M x NV register tile of
// accumulators (M weight rows x 16 * NV batch lanes) and per column does NV aligned loads of xt, M
// broadcasts of W[r][c] and M * NV FMAs (12 x 2: 24 FMAs per 14 loads, no horizontal sums). Columns are
// blocked by kColBlock so the xt block and the M weight rows stay in L2 while all row tiles reuse them.
// W rows come from a RowSource: the dense weight itself, or a codebook kernel's decode of the block into
// a scratch buffer (each weight decoded once per batch tile).
//
// RowSource: const float* rows(size_t r0, size_t m, size_t c0, size_t c1, float* buf, size_t* ld) const
//   returns row r0 + i, columns [c0, c1) at result + i * *ld (+ column offset c - c0); buf has room for
//   kGemmRows * kColBlock floats.
#pragma once

#include <algorithm>
#include <cstddef>

#include "kernels/kernels.h"
#include "kernels/x86/avx512_util.h"
#include "kernels/x86/gemm_bcast_avx2.h"

namespace pyrt::kernels::avx512 {
namespace {  // internal linkage: see the note at the top of avx2_util.h

constexpr int kGemmRows = 12;        // M: weight rows per micro-tile
constexpr size_t kColBlock = 1024;   // columns per block: xt block 32 lanes x 4 KB = 128 KB

// acc tile for rows [0, M) x lanes [0, 16 * NV), columns [0, kc): w[i * ldw + c], xt[c * 16 * NV + lane].
// Stores the tile to out[i * 16 * NV + lane].
template <int M, int NV>
void micro(const float* w, size_t ldw, const float* xt, size_t kc, float* out) {
  constexpr size_t L = 16 * NV;
  __m512 acc[M][NV];
#pragma GCC unroll 12
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (size_t c = 0; c < kc; ++c) {
    __m512 xv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) xv[v] = _mm512_load_ps(xt + c * L + 16 * v);
#pragma GCC unroll 12
    for (int i = 0; i < M; ++i) {
      const __m512 wb = _mm512_set1_ps(w[i * ldw + c]);  // vbroadcastss from memory
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(wb, xv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) _mm512_store_ps(out + i * L + 16 * v, acc[i][v]);
}

// micro<m, NV> for a run-time m in 1..kGemmRows.
template <int NV, int M = kGemmRows>
inline void micro_any(int m, const float* w, size_t ldw, const float* xt, size_t kc, float* out) {
  if constexpr (M > 1) {
    if (m < M) return micro_any<NV, M - 1>(m, w, ldw, xt, kc, out);
  }
  micro<M, NV>(w, ldw, xt, kc, out);
}

// xt[c * lanes + t] = x[t][c0 + c] for c in [0, c1 - c0), t < bt; 0 in the unused lanes.
inline void transpose_block(const float* x, size_t ldx, size_t bt, size_t lanes, size_t c0, size_t c1, float* xt) {
  const size_t kc = c1 - c0;
  if (bt < lanes) std::fill(xt, xt + kc * lanes, 0.0f);
  for (size_t t = 0; t < bt; ++t) {
    const float* xs = x + t * ldx + c0;
    for (size_t c = 0; c < kc; ++c) xt[c * lanes + t] = xs[c];
  }
}

template <int NV, class RowSource>
void gemm_bcast_tile(const RowSource& src, size_t rows, size_t cols, const float* x, size_t b0, size_t bt, float* y,
                     const float* bias, float* xt, float* wbuf) {
  constexpr size_t L = 16 * NV;
  alignas(64) float out[kGemmRows * L];
  for (size_t c0 = 0; c0 < cols; c0 += kColBlock) {
    const size_t c1 = std::min(cols, c0 + kColBlock);
    transpose_block(x + b0 * cols, cols, bt, L, c0, c1, xt);
    for (size_t r0 = 0; r0 < rows; r0 += kGemmRows) {
      const int m = int(std::min<size_t>(kGemmRows, rows - r0));
      size_t ldw = 0;
      const float* w = src.rows(r0, size_t(m), c0, c1, wbuf, &ldw);
      micro_any<NV>(m, w, ldw, xt, c1 - c0, out);
      for (size_t t = 0; t < bt; ++t) {  // the tile is [row][batch lane]; y is [batch][row]
        float* yr = y + (b0 + t) * rows + r0;
        for (int i = 0; i < m; ++i) {
          const float v = out[size_t(i) * L + t];
          yr[i] = c0 == 0 ? v + (bias ? bias[r0 + size_t(i)] : 0.0f) : yr[i] + v;
        }
      }
    }
  }
}

// The whole product in tiles of 32 batch rows. A remainder of at most 16 goes through the AVX2 tile
// (6 rows x 2 ymm): with one zmm of lanes the micro-kernel would do one broadcast per FMA, which on Zen 4
// runs at half the speed of the ymm tile.
template <class RowSource>
void gemm_bcast(const RowSource& src, size_t rows, size_t cols, const float* x, size_t batch, float* y,
                const float* bias) {
  static_assert(avx2::kColBlock == kColBlock && avx2::kGemmRows <= kGemmRows, "scratch shared with the AVX2 tile");
  float* scratch = thread_scratch(kColBlock * 32 + kGemmRows * kColBlock);
  float* xt = scratch;
  float* wbuf = scratch + kColBlock * 32;
  for (size_t b0 = 0; b0 < batch;) {
    const size_t left = batch - b0;
    if (left > 16) {
      const size_t bt = std::min<size_t>(32, left);
      gemm_bcast_tile<2>(src, rows, cols, x, b0, bt, y, bias, xt, wbuf);
      b0 += bt;
    } else {
      avx2::gemm_bcast_tile<2>(src, rows, cols, x, b0, left, y, bias, xt, wbuf);
      b0 += left;
    }
  }
}

}  // namespace
}  // namespace pyrt::kernels::avx512
