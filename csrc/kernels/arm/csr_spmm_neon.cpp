// pyruntime: CSR SpMV / SpMM, aarch64 Advanced SIMD (the NEON twin of x86/csr_spmm_avx2.cpp), for the three
// sparse layouts:
//   pyrt_csr_f32_spmm__neon        f32 value per entry
//   pyrt_csr_lut4_f32_spmm__neon   4-bit codebook index per entry (CsrLut4 groups), k <= 16
//   pyrt_csr_lut8_f32_spmm__neon   byte codebook index per entry, k <= 256
// Weights come 16 entries at a time as four float vectors: loaded, or decoded from their indices with
// table lookups on the codebook's byte planes (neon_util.h; a CsrLut4 group's 8 bytes split into low and
// high nibbles are exactly its 16 entries in order).
// Batch 1 (SpMV): per row, 16 entries per step: x at the 16 columns from scalar lane loads (gather4), four
// FMA chains, one horizontal sum per row; the row's last 1..15 entries in a scalar loop on two chains.
// Batch > 1 (SpMM): x is transposed per tile of 16, 8 or 4 batch rows into xt[col][lanes], so each entry
// costs one to four vector loads of xt[col] and as many FMAs by the weight's lane (vfmaq_laneq_f32, no
// broadcast), on rotating sets of accumulators.
// Rows are independent and summed the same way wherever they fall, so a block of rows gives the bits of
// the whole. The 16-entry steps may read weights or indices past a row (padded arrays, kernels.h); x is
// read only at the columns of real entries.
#include <arm_neon.h>

#include <algorithm>
#include <cmath>

#include "kernels/arm/neon_util.h"
#include "kernels/kernels.h"

namespace pyrt::kernels {
namespace {

using namespace neon;

constexpr size_t kStep = 16;  // entries per step (= one CsrLut4 group)

// ---- weight sources: entries [e, e + 16) of the current row as four float vectors ----

struct F32Weights {
  const float* val;
  const float* row = nullptr;
  void start(uint32_t /*r*/, size_t j0) { row = val + j0; }
  void vec(size_t e, float32x4_t (&w)[4]) const {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) w[v] = vld1q_f32(row + e + 4 * v);
  }
};

template <class Dec>
struct Lut8Weights {
  const uint8_t* idx;
  Dec dec;
  const uint8_t* row = nullptr;
  void start(uint32_t /*r*/, size_t j0) { row = idx + j0; }
  void vec(size_t e, float32x4_t (&w)[4]) const { dec(vld1q_u8(row + e), w); }
};

struct Lut4Weights {
  const uint32_t* goff;
  const uint8_t* idx;
  Tbl16 dec;
  const uint8_t* row = nullptr;
  void start(uint32_t r, size_t /*j0*/) { row = idx + size_t(goff[r]) * 8; }
  void vec(size_t e, float32x4_t (&w)[4]) const {
    // group e / 16 is the 8 bytes at e / 2: byte j = entry j (low nibble) | entry 8 + j (high nibble)
    const uint8x8_t b = vld1_u8(row + e / 2);
    dec(vcombine_u8(vand_u8(b, vdup_n_u8(0x0F)), vshr_n_u8(b, 4)), w);
  }
};

// The weights of entries [e, e + 16) as floats in buf.
template <class W>
inline const float* scalars(const W& wsrc, size_t e, float* buf) {
  float32x4_t w[4];
  wsrc.vec(e, w);
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) vst1q_f32(buf + 4 * v, w[v]);
  return buf;
}

// ---- SpMV: batch 1 ----

template <class Col, class W>
void spmv(const CsrIndex& ix, const Col* col, W wsrc, const float* x, float* y, const float* bias) {
  alignas(16) float buf[kStep];
  for (uint32_t r = 0; r < ix.rows; ++r) {
    const size_t j0 = ix.rowptr[r], n = ix.rowptr[r + 1] - j0;
    const Col* cr = col + j0;
    wsrc.start(r, j0);
    float32x4_t a[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) a[v] = vdupq_n_f32(0.0f);
    size_t e = 0;
    for (; e + kStep <= n; e += kStep) {
      float32x4_t w[4];
      wsrc.vec(e, w);
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) a[v] = vfmaq_f32(a[v], w[v], gather4(x, cr + e + 4 * v));
    }
    float s0 = 0.0f, s1 = 0.0f;
    if (e < n) {  // the last 1..15 entries: weights past n are decoded but never used
      const float* w = scalars(wsrc, e, buf);
      const Col* c = cr + e;
      const size_t m = n - e;
      size_t k = 0;
      for (; k + 2 <= m; k += 2) {
        s0 = std::fma(w[k], x[c[k]], s0);
        s1 = std::fma(w[k + 1], x[c[k + 1]], s1);
      }
      if (k < m) s0 = std::fma(w[k], x[c[k]], s0);
    }
    const float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a[0], a[1]), vaddq_f32(a[2], a[3])));
    y[r] = sum + (s0 + s1) + (bias ? bias[r] : 0.0f);
  }
}

// ---- SpMM: batch > 1, tiles of 4 NV batch rows over a transposed copy of x ----

// xt[c * lanes + t] = x[t][c] for t < bt, 0 for the unused lanes.
void transpose_tile(const float* x, size_t cols, size_t bt, size_t lanes, float* xt) {
  if (bt < lanes) std::fill(xt, xt + cols * lanes, 0.0f);
  for (size_t t = 0; t < bt; ++t) {
    const float* xs = x + t * cols;
    for (size_t c = 0; c < cols; ++c) xt[c * lanes + t] = xs[c];
  }
}

// acc[v] += xt[c][4 v .. 4 v + 4) * lane `Lane` of w.
template <int Lane, int NV>
inline void fma_lane(float32x4_t (&acc)[NV], const float* p, float32x4_t w) {
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) acc[v] = vfmaq_laneq_f32(acc[v], vld1q_f32(p + 4 * v), w, Lane);
}

// One tile: y[b0 + t][r] for t < bt <= 4 NV, all rows. Entry k of a step goes to accumulator set k % S,
// so consecutive FMAs do not wait on each other's latency: 4 sets of NV <= 2 vectors, 2 sets of 4 (16
// accumulators and their 16 loads per step would not fit the registers).
template <int NV, class Col, class W>
void spmm_tile(const CsrIndex& ix, const Col* col, W& wsrc, const float* xt, size_t bt, float* y, size_t b0,
               const float* bias) {
  constexpr size_t L = 4 * NV;
  constexpr int S = NV == 4 ? 2 : 4;
  const size_t rows = ix.rows;
  alignas(16) float buf[kStep];
  alignas(16) float out[L];
  for (uint32_t r = 0; r < rows; ++r) {
    const size_t j0 = ix.rowptr[r], n = ix.rowptr[r + 1] - j0;
    const Col* cr = col + j0;
    wsrc.start(r, j0);
    float32x4_t a[S][NV];
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) a[s][v] = vdupq_n_f32(0.0f);
    size_t e = 0;
    for (; e + kStep <= n; e += kStep) {
      float32x4_t w[4];
      wsrc.vec(e, w);
      const Col* c = cr + e;
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        fma_lane<0>(a[0], xt + size_t(c[4 * q]) * L, w[q]);
        fma_lane<1>(a[1 % S], xt + size_t(c[4 * q + 1]) * L, w[q]);
        fma_lane<2>(a[2 % S], xt + size_t(c[4 * q + 2]) * L, w[q]);
        fma_lane<3>(a[3 % S], xt + size_t(c[4 * q + 3]) * L, w[q]);
      }
    }
    if (e < n) {
      const float* w = scalars(wsrc, e, buf);
      for (size_t k = 0; e + k < n; ++k) {
        const float* p = xt + size_t(cr[e + k]) * L;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) a[0][v] = vfmaq_n_f32(a[0][v], vld1q_f32(p + 4 * v), w[k]);
      }
    }
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float32x4_t sum = vaddq_f32(a[0][v], a[1][v]);
      if constexpr (S == 4) sum = vaddq_f32(sum, vaddq_f32(a[2][v], a[3][v]));
      vst1q_f32(out + 4 * v, sum);
    }
    const float b = bias ? bias[r] : 0.0f;
    for (size_t t = 0; t < bt; ++t) y[(b0 + t) * rows + r] = out[t] + b;
  }
}

template <class Col, class W>
void spmm(const CsrIndex& ix, const Col* col, W wsrc, const float* x, size_t batch, float* y, const float* bias) {
  const size_t cols = ix.cols;
  float* xt = thread_scratch(cols * 16);
  for (size_t b0 = 0; b0 < batch;) {
    const size_t left = batch - b0;
    if (left > 8) {
      const size_t bt = std::min<size_t>(16, left);
      transpose_tile(x + b0 * cols, cols, bt, 16, xt);
      spmm_tile<4>(ix, col, wsrc, xt, bt, y, b0, bias);
      b0 += bt;
    } else if (left > 4) {
      transpose_tile(x + b0 * cols, cols, left, 8, xt);
      spmm_tile<2>(ix, col, wsrc, xt, left, y, b0, bias);
      b0 += left;
    } else {
      transpose_tile(x + b0 * cols, cols, left, 4, xt);
      spmm_tile<1>(ix, col, wsrc, xt, left, y, b0, bias);
      b0 += left;
    }
  }
}

template <class W>
void run(const CsrIndex& ix, W wsrc, const float* x, size_t batch, float* y, const float* bias) {
  if (ix.col16 != nullptr) {
    if (batch == 1) return spmv(ix, ix.col16, wsrc, x, y, bias);
    return spmm(ix, ix.col16, wsrc, x, batch, y, bias);
  }
  if (batch == 1) return spmv(ix, ix.col32, wsrc, x, y, bias);
  spmm(ix, ix.col32, wsrc, x, batch, y, bias);
}

}  // namespace

void pyrt_csr_f32_spmm__neon(const CsrF32& w, const float* x, size_t batch, float* y, const float* bias) {
  run(w.ix, F32Weights{w.val}, x, batch, y, bias);
}

void pyrt_csr_lut4_f32_spmm__neon(const CsrLut4& w, const float* x, size_t batch, float* y, const float* bias) {
  run(w.ix, Lut4Weights{w.goff, w.idx, Tbl16(w.lut)}, x, batch, y, bias);
}

void pyrt_csr_lut8_f32_spmm__neon(const CsrLut8& w, const float* x, size_t batch, float* y, const float* bias) {
  if (w.k <= 32) return run(w.ix, Lut8Weights<Tbl32>{w.idx, Tbl32(w.lut)}, x, batch, y, bias);
  if (w.k <= 64) return run(w.ix, Lut8Weights<Tbl64>{w.idx, Tbl64(w.lut)}, x, batch, y, bias);
  run(w.ix, Lut8Weights<TblScalar>{w.idx, TblScalar(w.lut)}, x, batch, y, bias);
}

}  // namespace pyrt::kernels
