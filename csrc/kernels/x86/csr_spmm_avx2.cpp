// pyruntime: CSR SpMV / SpMM, AVX2 + FMA, for the three sparse layouts:
//   pyrt_csr_f32_spmm__avx2        f32 value per entry
//   pyrt_csr_lut4_f32_spmm__avx2   4-bit codebook index per entry (CsrLut4 groups), k <= 16
//   pyrt_csr_lut8_f32_spmm__avx2   byte codebook index per entry, k <= 256
// Batch 1 (SpMV): per row, 16 entries per step: the 16 weights as two float vectors (loaded or decoded
// through the codebook), x at the 16 columns (vgatherdps or scalar loads, see gather8 and kernels/isa.h:
// use_hw_gather), two FMA chains, one horizontal
// sum per row; the row's last 1..15 entries one more step, masked.
// Batch > 1 (SpMM): x is transposed per tile of 16 batch rows (8 when at most 8 are left) into
// xt[col][16], so each entry costs one broadcast of its weight and two aligned 8-float loads of xt[col]
// (no gather), with the batch rows of the output in the lanes of 4 rotating pairs of accumulators. The
// weights stream once per tile; their streams are prefetched ahead in software.
#include <algorithm>

#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/x86/avx2_util.h"

namespace pyrt::kernels {
namespace {

using namespace avx2;

constexpr size_t kStep = 16;   // entries per SpMV step (= one CsrLut4 group)
// SpMV (batch 1) prefetch distances in bytes: the weight stream 2 KB ahead, the column stream 4 KB (about 2000
// entries of 16-bit columns, five rows of a 90%-pruned 4096-column layer). A model beyond the LLC (238 layers of
// 4096 x 4096, 90% pruned, 4-bit, 1 GB), one thread, a Xeon with a 480 MB L3, against 512 B / 1 KB:
// AVX2: 8.4 -> 9.6 GB/s. With the AVX-512 kernels, 4 KB / 8 KB was no better and the same layers
// resident in the L3 ran as fast as before.
constexpr size_t kSpmvWeightAhead = 2048, kSpmvColAhead = 4096;
constexpr size_t kTile = 8;    // batch rows per ymm of lanes in an SpMM tile (tiles of 1 or 2 ymm)

// ---- weight sources: the weights of entries [e, e + 16) of the current row ----
// vec(): as two float vectors; scalars(): as 16 floats in memory (for broadcasting). Both may read past
// the row's last entry (padded arrays, see kernels.h); callers discard those lanes. prefetch(): the
// weights of entries about 256 ahead into L1.

struct F32Weights {
  const float* val;
  const float* row = nullptr;
  void start(uint32_t /*r*/, size_t j0) { row = val + j0; }
  void vec(size_t e, __m256& v0, __m256& v1) const {
    v0 = _mm256_loadu_ps(row + e);
    v1 = _mm256_loadu_ps(row + e + 8);
  }
  const float* scalars(size_t e, float* /*buf*/) const { return row + e; }
  static constexpr size_t kNear = 1024;  // bytes ahead in SpMM (256 entries)
  void prefetch(size_t e, size_t ahead) const {
    _mm_prefetch(reinterpret_cast<const char*>(row + e) + ahead, _MM_HINT_T0);
  }
};

template <class Dec>
struct Lut8Weights {
  const uint8_t* idx;
  Dec dec;
  const uint8_t* row = nullptr;
  void start(uint32_t /*r*/, size_t j0) { row = idx + j0; }
  static constexpr size_t kNear = 1024;  // bytes ahead in SpMM (1024 entries)
  void prefetch(size_t e, size_t ahead) const { _mm_prefetch(reinterpret_cast<const char*>(row + e + ahead), _MM_HINT_T0); }
  void vec(size_t e, __m256& v0, __m256& v1) const {
    v0 = dec(load_u8x8(row + e));
    v1 = dec(load_u8x8(row + e + 8));
  }
  const float* scalars(size_t e, float* buf) const {
    __m256 v0, v1;
    vec(e, v0, v1);
    _mm256_store_ps(buf, v0);
    _mm256_store_ps(buf + 8, v1);
    return buf;
  }
};

template <class Dec>
struct Lut4Weights {
  const uint32_t* goff;
  const uint8_t* idx;
  Dec dec;
  const uint8_t* row = nullptr;
  void start(uint32_t r, size_t /*j0*/) { row = idx + size_t(goff[r]) * 8; }
  static constexpr size_t kNear = 512;  // bytes ahead in SpMM (1024 entries)
  void prefetch(size_t e, size_t ahead) const {
    _mm_prefetch(reinterpret_cast<const char*>(row + e / 2 + ahead), _MM_HINT_T0);
  }
  void vec(size_t e, __m256& v0, __m256& v1) const {
    // group e / 16 is the 8 bytes at e / 2; byte j = entry j (low nibble) | entry 8 + j (high nibble).
    const __m256i b = load_u8x8(row + e / 2);
    v0 = dec(b);                          // the decoder reads only the low index bits
    v1 = dec(_mm256_srli_epi32(b, 4));
  }
  const float* scalars(size_t e, float* buf) const {
    __m256 v0, v1;
    vec(e, v0, v1);
    _mm256_store_ps(buf, v0);
    _mm256_store_ps(buf + 8, v1);
    return buf;
  }
};

// ---- SpMV: batch 1 ----

// x at 8 columns: vgatherdps (Hw) or scalar loads (gather8); the same vector (kernels/isa.h: use_hw_gather).
template <bool Hw, class Col>
inline __m256 gather_x(const float* x, const Col* c) {
  if constexpr (Hw) return _mm256_i32gather_ps(x, load_cols(c), 4);
  else return gather8(x, c);
}

// x at a row's last columns in the lanes where `mask` is set (a prefix); the caller's blend ignores the
// others. A masked vgatherdps (Hw) or the 8-column scalar-load gather. The column loads and the columns past
// the row stay within the array's 64-byte padding (kernels.h) and within x. The masked lanes are the same
// either way (the AVX-512 file has the gain over scalar products).
template <bool Hw, class Col>
inline __m256 gather_x_tail(const float* x, const Col* c, __m256 mask) {
  if constexpr (Hw) return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), x, load_cols(c), mask, 4);
  else return gather8(x, c);
}

template <bool Hw, class Col, class W>
void spmv(const CsrIndex& ix, const Col* col, W wsrc, const float* x, float* y, const float* bias) {
  for (uint32_t r = 0; r < ix.rows; ++r) {
    const size_t j0 = ix.rowptr[r], n = ix.rowptr[r + 1] - j0;
    const Col* cr = col + j0;
    wsrc.start(r, j0);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    size_t e = 0;
    for (; e + kStep <= n; e += kStep) {
      // beyond the LLC the streams come from DRAM: ask for them well ahead
      wsrc.prefetch(e, kSpmvWeightAhead);
      _mm_prefetch(reinterpret_cast<const char*>(cr + e) + kSpmvColAhead, _MM_HINT_T0);
      __m256 v0, v1;
      wsrc.vec(e, v0, v1);
      acc0 = _mm256_fmadd_ps(v0, gather_x<Hw>(x, cr + e), acc0);
      acc1 = _mm256_fmadd_ps(v1, gather_x<Hw>(x, cr + e + 8), acc1);
    }
    if (e < n) {  // the last 1..15 entries, the lanes past the row left as they were (their weights may be inf)
      const size_t m = n - e;
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256 m0 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(m)), lane));
      const __m256 m1 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(m) - 8), lane));
      __m256 v0, v1;
      wsrc.vec(e, v0, v1);
      acc0 = _mm256_blendv_ps(acc0, _mm256_fmadd_ps(v0, gather_x_tail<Hw>(x, cr + e, m0), acc0), m0);
      if (m > 8)
        acc1 = _mm256_blendv_ps(acc1, _mm256_fmadd_ps(v1, gather_x_tail<Hw>(x, cr + e + 8, m1), acc1), m1);
    }
    y[r] = hsum(_mm256_add_ps(acc0, acc1)) + (bias ? bias[r] : 0.0f);
  }
}

// ---- SpMM: batch > 1, tiles of 16 (or, for at most 8 left, 8) batch rows over a transposed copy of x ----

// xt[c * lanes + t] = x[b0 + t][c] for t < bt, 0 for the unused lanes.
void transpose_tile(const float* x, size_t cols, size_t bt, size_t lanes, float* xt) {
  if (bt < lanes) std::fill(xt, xt + cols * lanes, 0.0f);
  for (size_t t = 0; t < bt; ++t) {
    const float* xs = x + t * cols;
    for (size_t c = 0; c < cols; ++c) xt[c * lanes + t] = xs[c];
  }
}

// acc[v] += w * xt[c][8 v .. 8 v + 8) for the NV vectors of lanes (one broadcast).
template <int NV, class Col>
inline void fma_entry(__m256 (&acc)[NV], float w, const float* xt, Col c) {
  const __m256 wb = _mm256_set1_ps(w);
  const float* p = xt + size_t(c) * (8 * NV);
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) acc[v] = _mm256_fmadd_ps(wb, _mm256_load_ps(p + 8 * v), acc[v]);
}

template <class Col>
inline void prefetch_cols(const Col* c) {
  _mm_prefetch(reinterpret_cast<const char*>(c + 512 / sizeof(Col)), _MM_HINT_T0);
}

// One tile: y[b0 + t][r] for t < bt <= 8 NV, all rows.
template <int NV, class Col, class W>
void spmm_tile(const CsrIndex& ix, const Col* col, W& wsrc, const float* xt, size_t bt, float* y, size_t b0,
               const float* bias) {
  constexpr size_t L = 8 * NV;
  const size_t rows = ix.rows;
  alignas(32) float buf[kStep];
  alignas(32) float out[L];
  for (uint32_t r = 0; r < rows; ++r) {
    const size_t j0 = ix.rowptr[r], n = ix.rowptr[r + 1] - j0;
    const Col* cr = col + j0;
    wsrc.start(r, j0);
    // 4 accumulators so consecutive FMAs do not wait on each other's latency
    __m256 a0[NV], a1[NV], a2[NV], a3[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) a0[v] = a1[v] = a2[v] = a3[v] = _mm256_setzero_ps();
    size_t e = 0;
    for (; e + kStep <= n; e += kStep) {
      // this row's weight and column streams ahead (prefetches never fault): the hardware prefetchers
      // lose them among the x tile reads
      wsrc.prefetch(e, W::kNear);
      prefetch_cols(cr + e);
      const float* w = wsrc.scalars(e, buf);
      const Col* c = cr + e;
#pragma GCC unroll 4
      for (size_t k = 0; k < kStep; k += 4) {
        fma_entry(a0, w[k], xt, c[k]);
        fma_entry(a1, w[k + 1], xt, c[k + 1]);
        fma_entry(a2, w[k + 2], xt, c[k + 2]);
        fma_entry(a3, w[k + 3], xt, c[k + 3]);
      }
    }
    if (e < n) {
      const float* w = wsrc.scalars(e, buf);
      for (size_t k = 0; e + k < n; ++k) fma_entry(a0, w[k], xt, cr[e + k]);
    }
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v)
      _mm256_store_ps(out + 8 * v, _mm256_add_ps(_mm256_add_ps(a0[v], a1[v]), _mm256_add_ps(a2[v], a3[v])));
    const float b = bias ? bias[r] : 0.0f;
    for (size_t t = 0; t < bt; ++t) y[(b0 + t) * rows + r] = out[t] + b;
  }
}

template <class Col, class W>
void spmm(const CsrIndex& ix, const Col* col, W wsrc, const float* x, size_t batch, float* y, const float* bias) {
  const size_t cols = ix.cols;
  float* xt = thread_scratch(cols * 2 * kTile);
  for (size_t b0 = 0; b0 < batch;) {
    const size_t left = batch - b0;
    if (left > kTile) {
      const size_t bt = std::min(2 * kTile, left);
      transpose_tile(x + b0 * cols, cols, bt, 2 * kTile, xt);
      spmm_tile<2>(ix, col, wsrc, xt, bt, y, b0, bias);
      b0 += bt;
    } else {
      transpose_tile(x + b0 * cols, cols, left, kTile, xt);
      spmm_tile<1>(ix, col, wsrc, xt, left, y, b0, bias);
      b0 += left;
    }
  }
}

template <class Col, class W>
void spmv_gather(const CsrIndex& ix, const Col* col, const W& wsrc, const float* x, float* y, const float* bias) {
  if (use_hw_gather(Isa::avx2)) return spmv<true>(ix, col, wsrc, x, y, bias);
  spmv<false>(ix, col, wsrc, x, y, bias);
}

template <class W>
void run(const CsrIndex& ix, W wsrc, const float* x, size_t batch, float* y, const float* bias) {
  if (ix.col16 != nullptr) {
    if (batch == 1) return spmv_gather(ix, ix.col16, wsrc, x, y, bias);
    return spmm(ix, ix.col16, wsrc, x, batch, y, bias);
  }
  if (batch == 1) return spmv_gather(ix, ix.col32, wsrc, x, y, bias);
  spmm(ix, ix.col32, wsrc, x, batch, y, bias);
}

}  // namespace

void pyrt_csr_f32_spmm__avx2(const CsrF32& w, const float* x, size_t batch, float* y, const float* bias) {
  run(w.ix, F32Weights{w.val}, x, batch, y, bias);
}

void pyrt_csr_lut4_f32_spmm__avx2(const CsrLut4& w, const float* x, size_t batch, float* y, const float* bias) {
  if (w.k <= 8) return run(w.ix, Lut4Weights<Lut8Reg>{w.goff, w.idx, Lut8Reg(w.lut)}, x, batch, y, bias);
  run(w.ix, Lut4Weights<Lut16Reg>{w.goff, w.idx, Lut16Reg(w.lut)}, x, batch, y, bias);
}

void pyrt_csr_lut8_f32_spmm__avx2(const CsrLut8& w, const float* x, size_t batch, float* y, const float* bias) {
  if (w.k <= 32) return run(w.ix, Lut8Weights<Lut32Reg>{w.idx, Lut32Reg(w.lut)}, x, batch, y, bias);
  run(w.ix, Lut8Weights<LutGather>{w.idx, LutGather(w.lut)}, x, batch, y, bias);
}

}  // namespace pyrt::kernels
