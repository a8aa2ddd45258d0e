// pyruntime: codebook (lookup-table) GEMV / GEMM, aarch64 Advanced SIMD (the NEON twin of
// x86/lut_gemm_avx2.cpp).
//   pyrt_lut{1,2,4}_f32_gemm__neon   LutBits<B> layouts: B-bit indices, 8 / B per byte, k <= 2^B
//   pyrt_lut8_f32_gemm__neon         Lut8 layout: one index byte per weight, k <= 256
// Weights are decoded in registers, 16 at a time, through table lookups on the codebook held as four byte
// planes (neon_util.h): vqtbl1q_u8 for the LutBits tables (16 entries, replicated, so an index needs only
// its low 4 bits: one shift and one AND per field of 16 columns), vqtbl2q_u8 / vqtbl4q_u8 for Lut8 with
// k <= 32 / 64, sixteen scalar table loads for larger Lut8 tables.
//
// Batch 1: a register tile of 2 weight rows shares every x vector; per row two FMA chains, one horizontal
// sum. The group or 16-column step holding column cols - 1 reads x from a zero-padded copy of its tail
// and zeroes the weights past cols (bitwise, so even an infinite centroid cannot leak), so neither x nor
// y is touched past its end.
// Batch >= 2: each block of rows is decoded once into a buffer, which the dense dot tiles of
// dot_batch_neon.h read for every pass of up to 4 batch rows.
// Every row is summed the same way in every tile, so a block of rows gives the bits of the whole layer.
#include <arm_neon.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/arm/dot_batch_neon.h"
#include "kernels/arm/neon_util.h"
#include "kernels/kernels.h"

namespace pyrt::kernels {
namespace {

using namespace neon;

template <class L>
struct IsLutBits : std::false_type {};
template <int B>
struct IsLutBits<LutBits<B>> : std::true_type {};

// Rows per batch-1 tile. The decode (4 lookups and 8 zips per 16 weights) dominates, not the x loads;
// 2 rows keep accumulators, table, x and the decode's temporaries in the 32 registers (4 rows spill).
constexpr int kGemvRows = 2;

// a0 += w0 x0 + w2 x2, a1 += w1 x1 + w3 x3 (16 columns of one row); Tail: weights of lanes >= n zeroed.
template <bool Tail>
inline void fma16(float32x4_t& a0, float32x4_t& a1, float32x4_t (&w)[4], const float32x4_t (&xv)[4], ptrdiff_t n) {
  if constexpr (Tail) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) w[v] = keep_lanes(w[v], n - 4 * v);
  }
  a0 = vfmaq_f32(a0, w[0], xv[0]);
  a1 = vfmaq_f32(a1, w[1], xv[1]);
  a0 = vfmaq_f32(a0, w[2], xv[2]);
  a1 = vfmaq_f32(a1, w[3], xv[3]);
}

inline void load_x16(const float* x, float32x4_t (&xv)[4]) {
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) xv[v] = vld1q_f32(x + 4 * v);
}

// ---- LutBits<B>: groups of 16 bytes = G = 128 / B columns; field f of byte j = column 16 f + j ----

// Field f of the group's bytes q (already shifted right by f * B) as clean 4-bit table indices.
template <int B>
inline uint8x16_t field_index(uint8x16_t q, int f) {
  if (B == 4 && f == 1) return q;  // the high nibble, alone after the shift
  return vandq_u8(q, vdupq_n_u8(0x0F));  // the replicated table ignores the next fields' bits below bit 4
}

// One group of R rows: xg holds the group's G columns of x; Tail: only n < G columns are real.
template <int B, int R, bool Tail, class Dec>
inline void lutb_group(float32x4_t (&a0)[R], float32x4_t (&a1)[R], const Dec& dec, const uint8_t* const (&p)[R],
                       const float* xg, ptrdiff_t n) {
  uint8x16_t q[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) q[r] = vld1q_u8(p[r]);
#pragma GCC unroll 1  // unrolled, the fields' decodes get interleaved and spill
  for (int f = 0; f < 8 / B; ++f) {
    if (Tail && 16 * f >= n) break;  // the rest of the group is padding
    if (f > 0) {
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) q[r] = vshrq_n_u8(q[r], B);  // next field to the low bits
    }
    float32x4_t xv[4];
    load_x16(xg + 16 * f, xv);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      float32x4_t w[4];
      dec(field_index<B>(q[r], f), w);
      fma16<Tail>(a0[r], a1[r], w, xv, n - 16 * f);
    }
  }
}

// out[r] = W[r0 + r] . x; xtail: x[cols / G * G, cols) zero-padded to G floats.
template <int R, int B, class Dec>
void lutb_gemv_tile(const LutBits<B>& L, const Dec& dec, size_t r0, const float* x, const float* xtail, float* out) {
  constexpr size_t G = LutBits<B>::kGroup;
  const size_t cols = L.cols, stride = lutb_row_bytes(B, L.cols), full = cols / G;
  const uint8_t* p[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) p[r] = L.idx + (r0 + r) * stride;
  float32x4_t a0[R], a1[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = vdupq_n_f32(0.0f);
  for (size_t g = 0; g < full; ++g) {
    lutb_group<B, R, false>(a0, a1, dec, p, x + g * G, ptrdiff_t(G));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) p[r] += 16;
  }
  if (full * G < cols) lutb_group<B, R, true>(a0, a1, dec, p, xtail, ptrdiff_t(cols - full * G));
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) out[r] = hsum2(a0[r], a1[r]);
}

// ---- Lut8: one byte per weight, row-major; steps of 16 columns ----

// out[r] = W[r0 + r] . x; xtail: x[cols / 16 * 16, cols) zero-padded to 16 floats. The tail step reads
// index bytes past the row (the next row or the array's padding); their weights are zeroed.
template <int R, class Dec>
void lut8_gemv_tile(const Lut8& L, const Dec& dec, size_t r0, const float* x, const float* xtail, float* out) {
  const size_t cols = L.cols, full = cols / 16 * 16;
  const uint8_t* p[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) p[r] = L.idx + (r0 + r) * cols;
  float32x4_t a0[R], a1[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = vdupq_n_f32(0.0f);
  for (size_t c = 0; c < full; c += 16) {
    float32x4_t xv[4];
    load_x16(x + c, xv);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      float32x4_t w[4];
      dec(vld1q_u8(p[r] + c), w);
      fma16<false>(a0[r], a1[r], w, xv, 16);
    }
  }
  if (full < cols) {
    float32x4_t xv[4];
    load_x16(xtail, xv);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      float32x4_t w[4];
      dec(vld1q_u8(p[r] + full), w);
      fma16<true>(a0[r], a1[r], w, xv, ptrdiff_t(cols - full));
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) out[r] = hsum2(a0[r], a1[r]);
}

template <class L>
constexpr size_t tail_step() {
  if constexpr (IsLutBits<L>::value)
    return L::kGroup;
  else
    return 16;
}

template <int R, class L, class Dec>
void gemv_tile(const L& w, const Dec& dec, size_t r0, const float* x, const float* xtail, float* out) {
  if constexpr (IsLutBits<L>::value)
    lutb_gemv_tile<R>(w, dec, r0, x, xtail, out);
  else
    lut8_gemv_tile<R>(w, dec, r0, x, xtail, out);
}

template <class L, class Dec>
void gemv(const L& w, const Dec& dec, const float* x, float* y, const float* bias) {
  constexpr int R = kGemvRows;
  constexpr size_t S = tail_step<L>();
  const size_t rows = w.rows, cols = w.cols, c0 = cols / S * S;
  alignas(16) float xtail[S];
  copy_tail(x + c0, cols - c0, xtail, S);
  float out[R];
  size_t r = 0;
  for (; r + R <= rows; r += R) {
    gemv_tile<R>(w, dec, r, x, xtail, out);
    for (int i = 0; i < R; ++i) y[r + i] = out[i] + (bias ? bias[r + i] : 0.0f);
  }
  for (; r < rows; ++r) {
    gemv_tile<1>(w, dec, r, x, xtail, out);
    y[r] = out[0] + (bias ? bias[r] : 0.0f);
  }
}

// ---- batch >= 2: rows decoded once per block into dense floats (dot_batch_neon.h) ----

// out[c0 .. c0 + n) = w[0 .. n) for n <= 16 (the last, partial step of a row).
inline void store16(float* out, const float32x4_t (&w)[4], size_t n) {
  if (n >= 16) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) vst1q_f32(out + 4 * v, w[v]);
    return;
  }
  alignas(16) float tmp[16];
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) vst1q_f32(tmp + 4 * v, w[v]);
  std::copy(tmp, tmp + n, out);
}

// W rows [r0, r0 + m), columns [0, cols), decoded into buf with row stride cols (nothing written past).
template <class L, class Dec>
struct DecodedRows {
  static constexpr bool kInPlace = false;
  const L& w;
  const Dec& dec;
  const float* rows(size_t r0, size_t m, float* buf, size_t* ld) const {
    const size_t cols = w.cols;
    *ld = cols;
    for (size_t i = 0; i < m; ++i) {
      float* out = buf + i * cols;
      float32x4_t v[4];
      if constexpr (IsLutBits<L>::value) {
        constexpr int B = L::kBits;
        const uint8_t* p = w.idx + (r0 + i) * lutb_row_bytes(B, cols);
        for (size_t c = 0; c < cols; c += L::kGroup, p += 16) {
          uint8x16_t q = vld1q_u8(p);
#pragma GCC unroll 8
          for (int f = 0; f < 8 / B; ++f) {
            const size_t cf = c + 16 * size_t(f);
            if (cf >= cols) break;
            if (f > 0) q = vshrq_n_u8(q, B);
            dec(field_index<B>(q, f), v);
            store16(out + cf, v, cols - cf);
          }
        }
      } else {
        const uint8_t* p = w.idx + (r0 + i) * cols;  // the last step may read index bytes past the row (padded)
        for (size_t c = 0; c < cols; c += 16) {
          dec(vld1q_u8(p + c), v);
          store16(out + c, v, cols - c);
        }
      }
    }
    return buf;
  }
};

template <class L, class Dec>
void gemm(const L& w, const Dec& dec, const float* x, size_t batch, float* y, const float* bias) {
  if (batch == 1) return gemv(w, dec, x, y, bias);
  dot_gemm(DecodedRows<L, Dec>{w, dec}, w.rows, w.cols, x, batch, y, bias);
}

}  // namespace

// LutBits tables are replicated to 16 entries (lut[i] = centroid[i mod 2^B]), so one 16-entry lookup on
// the low nibble serves every B.
void pyrt_lut1_f32_gemm__neon(const Lut1& w, const float* x, size_t batch, float* y, const float* bias) {
  gemm(w, Tbl16(w.lut), x, batch, y, bias);
}

void pyrt_lut2_f32_gemm__neon(const Lut2& w, const float* x, size_t batch, float* y, const float* bias) {
  gemm(w, Tbl16(w.lut), x, batch, y, bias);
}

void pyrt_lut4_f32_gemm__neon(const Lut4& w, const float* x, size_t batch, float* y, const float* bias) {
  gemm(w, Tbl16(w.lut), x, batch, y, bias);
}

void pyrt_lut8_f32_gemm__neon(const Lut8& w, const float* x, size_t batch, float* y, const float* bias) {
  if (w.k <= 32) return gemm(w, Tbl32(w.lut), x, batch, y, bias);
  if (w.k <= 64) return gemm(w, Tbl64(w.lut), x, batch, y, bias);
  gemm(w, TblScalar(w.lut), x, batch, y, bias);
}

}  // namespace pyrt::kernels
