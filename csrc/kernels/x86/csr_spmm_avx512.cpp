// pyruntime: CSR SpMV / SpMM, AVX-512, for the three sparse layouts:
//   pyrt_csr_f32_spmm__avx512        f32 value per entry
//   pyrt_csr_lut4_f32_spmm__avx512   4-bit codebook index per entry (CsrLut4 groups), k <= 16
//   pyrt_csr_lut8_f32_spmm__avx512   byte codebook index per entry, k <= 256
// Same plan as csr_spmm_avx2.cpp with 16-entry vectors: a CsrLut4 group of 16 indices decodes with one
// vpermps, byte indices with 1..8 vpermt2ps (LutTreeReg); x at 16 columns is a vgatherdps or two
// scalar-load gathers (avx2::gather8), whichever this CPU runs faster (kernels/isa.h: use_hw_gather), a
// row's last 1..15 entries one more masked step. SpMM tiles are 32 batch rows in two zmm
// (one weight broadcast for both), 16 in a zmm when at most 16 batch rows are left, or 8 in a ymm when at
// most 8 are.
#include <algorithm>

#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/x86/avx2_util.h"
#include "kernels/x86/avx512_util.h"

namespace pyrt::kernels {
namespace {

using namespace avx512;
using avx2::gather8;

constexpr size_t kStep = 16;  // entries per step (= one CsrLut4 group)
// SpMV (batch 1) prefetch distances in bytes: the weight stream 2 KB ahead, the column stream 4 KB (about 2000
// entries of 16-bit columns, five rows of a 90%-pruned 4096-column layer). A model beyond the LLC (238 layers of
// 4096 x 4096, 90% pruned, 4-bit, 1 GB), one thread, a Xeon with a 480 MB L3, against 512 B / 1 KB:
// AVX-512: 9.3-9.6 -> 10.2-10.3 GB/s. With the AVX-512 kernels, 4 KB / 8 KB was no better and the same layers
// resident in the L3 ran as fast as before.
constexpr size_t kSpmvWeightAhead = 2048, kSpmvColAhead = 4096;

// ---- weight sources: the weights of entries [e, e + 16) of the current row as a zmm ----
// vec(): as a zmm; scalars(): as 16 floats in memory (for broadcasting). Both may read past the row's
// last entry (padded arrays, see kernels.h); callers discard those lanes. prefetch(): the weights of
// entries about 256 ahead into L1.

struct F32Weights {
  const float* val;
  const float* row = nullptr;
  void start(uint32_t /*r*/, size_t j0) { row = val + j0; }
  __m512 vec(size_t e) const { return _mm512_loadu_ps(row + e); }
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
  __m512 vec(size_t e) const { return dec(load_u8x16(row + e)); }
  static constexpr size_t kNear = 1024;  // bytes ahead in SpMM (1024 entries)
  void prefetch(size_t e, size_t ahead) const { _mm_prefetch(reinterpret_cast<const char*>(row + e + ahead), _MM_HINT_T0); }
  const float* scalars(size_t e, float* buf) const {
    _mm512_store_ps(buf, vec(e));
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
  __m512 vec(size_t e) const {
    // group e / 16 = 8 bytes at e / 2, byte j = entry j (low nibble) | entry 8 + j (high nibble):
    // zero-extend to 8 dwords, and put the same dwords shifted right by 4 in the upper half.
    const __m256i b = avx2::load_u8x8(row + e / 2);
    return dec(_mm512_inserti64x4(_mm512_castsi256_si512(b), _mm256_srli_epi32(b, 4), 1));
  }
  const float* scalars(size_t e, float* buf) const {
    _mm512_store_ps(buf, vec(e));
    return buf;
  }
};

// ---- SpMV: batch 1 ----

// x at 16 columns: vgatherdps (Hw), or two 8-element scalar-load gathers (see avx2::gather8) joined; the
// same vector either way (kernels/isa.h: use_hw_gather).
template <bool Hw, class Col>
inline __m512 gather16(const float* x, const Col* c) {
  if constexpr (!Hw) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(gather8(x, c)), gather8(x, c + 8), 1);
  } else if constexpr (sizeof(Col) == 2) {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF,
                                    _mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c))), x, 4);
  } else {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, _mm512_loadu_si512(c), x, 4);
  }
}

// x at the row's last m (1..15) columns in the first m lanes; the caller's masked FMA ignores the others.
// One masked vgatherdps (Hw, the column load masked too), or the 16-column scalar-load gather: its columns
// past the row are the next row's or the array's zero padding (kernels.h), all within x. The first m lanes
// are the same either way. Against scalar products on two chains for these entries (a 90%-pruned 4-bit
// 4096 x 4096 chain, rows of about 410 entries, 10 of them in the tail; Sapphire Rapids, one thread, Hw):
// 0.96-1.08x from memory (five of six interleaved pairs faster, median 1.04x) and 0.96-1.09x from the L3
// (median 1.07x); AVX2 1.03x from memory (one pair); two threads 1.00-1.03x.
template <bool Hw, class Col>
inline __m512 gather16_tail(const float* x, const Col* c, size_t m) {
  if constexpr (Hw) {
    const __mmask16 k = __mmask16((1u << m) - 1);
    __m512i i;
    if constexpr (sizeof(Col) == 2) i = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, c));
    else i = _mm512_maskz_loadu_epi32(k, c);
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, i, x, 4);
  } else {
    return gather16<false>(x, c);
  }
}

template <bool Hw, class Col, class W>
void spmv(const CsrIndex& ix, const Col* col, W wsrc, const float* x, float* y, const float* bias) {
  for (uint32_t r = 0; r < ix.rows; ++r) {
    const size_t j0 = ix.rowptr[r], n = ix.rowptr[r + 1] - j0;
    const Col* cr = col + j0;
    wsrc.start(r, j0);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    size_t e = 0;
    for (; e + 2 * kStep <= n; e += 2 * kStep) {
      // beyond the LLC the streams come from DRAM: ask for them well ahead
      wsrc.prefetch(e, kSpmvWeightAhead);
      _mm_prefetch(reinterpret_cast<const char*>(cr + e) + kSpmvColAhead, _MM_HINT_T0);
      acc0 = _mm512_fmadd_ps(wsrc.vec(e), gather16<Hw>(x, cr + e), acc0);
      acc1 = _mm512_fmadd_ps(wsrc.vec(e + kStep), gather16<Hw>(x, cr + e + kStep), acc1);
    }
    if (e + kStep <= n) {
      acc0 = _mm512_fmadd_ps(wsrc.vec(e), gather16<Hw>(x, cr + e), acc0);
      e += kStep;
    }
    if (e < n)  // the last 1..15 entries, the lanes past the row left as they were (their weights may be inf)
      acc1 = _mm512_mask3_fmadd_ps(wsrc.vec(e), gather16_tail<Hw>(x, cr + e, n - e), acc1, __mmask16((1u << (n - e)) - 1));
    y[r] = hsum(_mm512_add_ps(acc0, acc1)) + (bias ? bias[r] : 0.0f);
  }
}

// ---- SpMM: batch > 1, tiles of V::kLanes batch rows over a transposed copy of x ----

struct Zmm {
  using V = __m512;
  static constexpr size_t kLanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V fma_bcast(float w, const float* p, V acc) { return _mm512_fmadd_ps(_mm512_set1_ps(w), _mm512_load_ps(p), acc); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static void store(float* p, V v) { _mm512_store_ps(p, v); }
};
struct Zmm2 {  // 32 lanes: two zmm per weight broadcast
  struct V {
    __m512 a, b;
  };
  static constexpr size_t kLanes = 32;
  static V zero() { return {_mm512_setzero_ps(), _mm512_setzero_ps()}; }
  static V fma_bcast(float w, const float* p, V acc) {
    const __m512 wb = _mm512_set1_ps(w);
    return {_mm512_fmadd_ps(wb, _mm512_load_ps(p), acc.a), _mm512_fmadd_ps(wb, _mm512_load_ps(p + 16), acc.b)};
  }
  static V add(V x, V y) { return {_mm512_add_ps(x.a, y.a), _mm512_add_ps(x.b, y.b)}; }
  static void store(float* p, V v) {
    _mm512_store_ps(p, v.a);
    _mm512_store_ps(p + 16, v.b);
  }
};
struct Ymm {
  using V = __m256;
  static constexpr size_t kLanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V fma_bcast(float w, const float* p, V acc) { return _mm256_fmadd_ps(_mm256_set1_ps(w), _mm256_load_ps(p), acc); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static void store(float* p, V v) { _mm256_store_ps(p, v); }
};

// xt[c * lanes + t] = x[t][c] for t < bt, 0 for the unused lanes.
void transpose_tile(const float* x, size_t cols, size_t bt, size_t lanes, float* xt) {
  if (bt < lanes) std::fill(xt, xt + cols * lanes, 0.0f);
  for (size_t t = 0; t < bt; ++t) {
    const float* xs = x + t * cols;
    for (size_t c = 0; c < cols; ++c) xt[c * lanes + t] = xs[c];
  }
}

// One tile: y[b0 + t][r] for t < bt, all rows.
template <class Vec, class Col, class W>
void spmm_tile(const CsrIndex& ix, const Col* col, W& wsrc, const float* xt, size_t bt, float* y, size_t b0,
               const float* bias) {
  using V = typename Vec::V;
  constexpr size_t L = Vec::kLanes;
  alignas(64) float buf[kStep];
  alignas(64) float out[L];
  const size_t rows = ix.rows;
  for (uint32_t r = 0; r < rows; ++r) {
    const size_t j0 = ix.rowptr[r], n = ix.rowptr[r + 1] - j0;
    const Col* cr = col + j0;
    wsrc.start(r, j0);
    V a0 = Vec::zero(), a1 = a0, a2 = a0, a3 = a0;  // 4 chains hide the FMA latency
    size_t e = 0;
    for (; e + kStep <= n; e += kStep) {
      // this row's weight and column streams, ~1 KB / 512 B ahead (prefetches never fault): the hardware
      // prefetchers lose them among the x tile reads (Zen 4, 4096 x 4096, 50%, batch 64: 31 -> 24 ms)
      wsrc.prefetch(e, W::kNear);
      _mm_prefetch(reinterpret_cast<const char*>(cr + e + 512 / sizeof(Col)), _MM_HINT_T0);
      const float* w = wsrc.scalars(e, buf);
      const Col* c = cr + e;
#pragma GCC unroll 4
      for (size_t k = 0; k < kStep; k += 4) {
        a0 = Vec::fma_bcast(w[k], xt + size_t(c[k]) * L, a0);
        a1 = Vec::fma_bcast(w[k + 1], xt + size_t(c[k + 1]) * L, a1);
        a2 = Vec::fma_bcast(w[k + 2], xt + size_t(c[k + 2]) * L, a2);
        a3 = Vec::fma_bcast(w[k + 3], xt + size_t(c[k + 3]) * L, a3);
      }
    }
    if (e < n) {
      const float* w = wsrc.scalars(e, buf);
      for (size_t k = 0; e + k < n; ++k) a0 = Vec::fma_bcast(w[k], xt + size_t(cr[e + k]) * L, a0);
    }
    Vec::store(out, Vec::add(Vec::add(a0, a1), Vec::add(a2, a3)));
    const float b = bias ? bias[r] : 0.0f;
    for (size_t t = 0; t < bt; ++t) y[(b0 + t) * rows + r] = out[t] + b;
  }
}

template <class Col, class W>
void spmm(const CsrIndex& ix, const Col* col, W wsrc, const float* x, size_t batch, float* y, const float* bias) {
  const size_t cols = ix.cols;
  float* xt = thread_scratch(cols * Zmm2::kLanes);
  for (size_t b0 = 0; b0 < batch;) {
    const size_t left = batch - b0;
    if (left > Zmm::kLanes) {
      const size_t bt = std::min(Zmm2::kLanes, left);
      transpose_tile(x + b0 * cols, cols, bt, Zmm2::kLanes, xt);
      spmm_tile<Zmm2>(ix, col, wsrc, xt, bt, y, b0, bias);
      b0 += bt;
    } else if (left > Ymm::kLanes) {
      const size_t bt = std::min(Zmm::kLanes, left);
      transpose_tile(x + b0 * cols, cols, bt, Zmm::kLanes, xt);
      spmm_tile<Zmm>(ix, col, wsrc, xt, bt, y, b0, bias);
      b0 += bt;
    } else {
      transpose_tile(x + b0 * cols, cols, left, Ymm::kLanes, xt);
      spmm_tile<Ymm>(ix, col, wsrc, xt, left, y, b0, bias);
      b0 += left;
    }
  }
}

template <class Col, class W>
void spmv_gather(const CsrIndex& ix, const Col* col, const W& wsrc, const float* x, float* y, const float* bias) {
  if (use_hw_gather(Isa::avx512)) return spmv<true>(ix, col, wsrc, x, y, bias);
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

template <class Dec>
void run_lut8(const CsrLut8& w, const float* x, size_t batch, float* y, const float* bias) {
  run(w.ix, Lut8Weights<Dec>{w.idx, Dec(w.lut)}, x, batch, y, bias);
}

}  // namespace

void pyrt_csr_f32_spmm__avx512(const CsrF32& w, const float* x, size_t batch, float* y, const float* bias) {
  run(w.ix, F32Weights{w.val}, x, batch, y, bias);
}

void pyrt_csr_lut4_f32_spmm__avx512(const CsrLut4& w, const float* x, size_t batch, float* y, const float* bias) {
  run(w.ix, Lut4Weights<Lut16Reg>{w.goff, w.idx, Lut16Reg(w.lut)}, x, batch, y, bias);
}

void pyrt_csr_lut8_f32_spmm__avx512(const CsrLut8& w, const float* x, size_t batch, float* y, const float* bias) {
  if (w.k <= 32) return run_lut8<Lut32Reg>(w, x, batch, y, bias);
  if (w.k <= 64) return run_lut8<Lut64Reg>(w, x, batch, y, bias);
  if (w.k <= 128) return run_lut8<Lut128Reg>(w, x, batch, y, bias);
  run_lut8<Lut256Reg>(w, x, batch, y, bias);
}

}  // namespace pyrt::kernels
