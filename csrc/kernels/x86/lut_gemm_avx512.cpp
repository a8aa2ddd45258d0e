// pyruntime: codebook (lookup-table) GEMV / GEMM, AVX-512.
//   pyrt_lut{1,2,4}_f32_gemm__avx512   LutBits<B> layouts: B-bit indices, 8 / B per byte, k <= 2^B
//   pyrt_lut8_f32_gemm__avx512         Lut8 layout: one index byte per weight, k <= 256
// A 16-entry table fits one zmm, so a 4-bit group of 32 weights costs one vpmovzxbd (16 bytes -> 16
// dwords, each holding two indices), one shift and two vpermps (which read only index bits [3:0]: the
// low nibble directly, the high nibble after the shift); 2-bit and 1-bit groups (64 / 128 weights) take
// one shift and one vpermps per 16 weights on a replicated table. Byte indices decode through 1..8 vpermt2ps and a
// blend tree (LutTreeReg). The register tile is R weight rows x T batch rows; for batch 1 each row keeps
// two accumulators (low / high half of a group) so 4 rows give 8 independent FMA chains. From
// kBcastMinBatch on, each block of weight rows is decoded once per 32 batch rows into a buffer and
// multiplied by the batch-in-lanes GEMM of gemm_bcast_avx512.h.
#include <algorithm>
#include <type_traits>

#include "kernels/kernels.h"
#include "kernels/x86/avx512_util.h"
#include "kernels/x86/gemm_bcast_avx512.h"

namespace pyrt::kernels {
namespace {

using namespace avx512;

constexpr int kTileBatch = 8;         // batch 2..7: 1 weight row x 8 batch rows (dot products)
constexpr size_t kBcastMinBatch = 8;  // from here: decode row blocks once per 32 batch rows, gemm_bcast

template <bool Tail>
inline __m512 load_x(const float* x, size_t c, size_t cols) {
  if constexpr (!Tail)
    return _mm512_loadu_ps(x + c);
  else
    return c >= cols ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(tail_mask(cols - c), x + c);
}

// Tail: zero the weights of columns >= cols too (padding nibbles), so that even an infinite table entry
// cannot turn 0 * w into NaN.
template <bool Tail>
inline __m512 mask_w(__m512 w, size_t c, size_t cols) {
  if constexpr (!Tail)
    return w;
  else
    return _mm512_maskz_mov_ps(c >= cols ? __mmask16(0) : tail_mask(cols - c), w);
}

// acc[r][t][h] += dec(idx[r]) * x[t][c .. c+16)
template <int R, int T, int H, bool Tail, class Dec>
inline void fma_block(__m512 (&acc)[R][T][H], int h, const Dec& dec, const __m512i (&idx)[R], const float* x,
                      size_t ldx, size_t c, size_t cols) {
  __m512 xv[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) xv[t] = load_x<Tail>(x + t * ldx, c, cols);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 w = mask_w<Tail>(dec(idx[r]), c, cols);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t][h] = _mm512_fmadd_ps(w, xv[t], acc[r][t][h]);
  }
}

// One step of a row from column c: LutBits<B>: one 16-byte group (G = 128 / B columns); Lut8: two runs
// of 16 bytes (32 columns).
template <class L>
struct Step;

template <int B>
struct Step<LutBits<B>> {
  static constexpr size_t kCols = LutBits<B>::kGroup;
  static size_t stride(const LutBits<B>& w) { return lutb_row_bytes(B, w.cols); }
  template <int R, int T, int H, bool Tail, class Dec>
  static void run(__m512 (&acc)[R][T][H], const Dec& dec, const uint8_t* const (&p)[R], const float* x, size_t ldx,
                  size_t c, size_t cols) {
    __m512i b[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) b[r] = load_u8x16(p[r] + c * B / 8);  // field f of byte j: column 16 f + j
#pragma GCC unroll 8
    for (int f = 0; f < 8 / B; ++f) {
      const size_t cf = c + 16 * size_t(f);
      if (Tail && cf >= cols) break;  // the rest of the group is padding
      if (f > 0) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) b[r] = _mm512_srli_epi32(b[r], B);  // next field to the low bits
      }
      fma_block<R, T, H, Tail>(acc, f % H, dec, b, x, ldx, cf, cols);  // vpermps ignores the bits above
    }
  }
};

template <>
struct Step<Lut8> {
  static constexpr size_t kCols = 32;
  static size_t stride(const Lut8& w) { return w.cols; }
  template <int R, int T, int H, bool Tail, class Dec>
  static void run(__m512 (&acc)[R][T][H], const Dec& dec, const uint8_t* const (&p)[R], const float* x, size_t ldx,
                  size_t c, size_t cols) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const size_t ch = c + 16 * h;
      if (Tail && ch >= cols) break;
      __m512i b[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        // the tail reads only the row's bytes (masked), so the decoders see clean indices
        b[r] = Tail ? _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(tail_mask(cols - ch), p[r] + ch))
                    : load_u8x16(p[r] + ch);
      }
      fma_block<R, T, H, Tail>(acc, h % H, dec, b, x, ldx, ch, cols);
    }
  }
};

// out[r * T + t] = W[r0 + r] . x[t]
template <int R, int T, int H, class L, class Dec>
void dot_tile(const L& w, const Dec& dec, size_t r0, const float* x, float* out) {
  const size_t cols = w.cols, stride = Step<L>::stride(w);
  const uint8_t* p[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) p[r] = w.idx + (r0 + r) * stride;
  __m512 acc[R][T][H];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
#pragma GCC unroll 2
      for (int h = 0; h < H; ++h) acc[r][t][h] = _mm512_setzero_ps();
  constexpr size_t G = Step<L>::kCols;
  const size_t full = cols / G * G;
  size_t c = 0;
  for (; c < full; c += G) Step<L>::template run<R, T, H, false>(acc, dec, p, x, cols, c, cols);
  if (c < cols) Step<L>::template run<R, T, H, true>(acc, dec, p, x, cols, c, cols);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) out[r * T + t] = hsum(H == 2 ? _mm512_add_ps(acc[r][t][0], acc[r][t][H - 1]) : acc[r][t][0]);
}

// W rows for gemm_bcast: rows [r0, r0 + m) x columns [c0, c1) decoded into buf (row stride kColBlock).
// c0 is a multiple of kColBlock (so of every step width); the last step may decode up to 127 columns
// past c1, which stay inside the buffer row and are not used.
template <class L, class Dec>
struct DecodedRows {
  const L& w;
  const Dec& dec;
  const float* rows(size_t r0, size_t m, size_t c0, size_t c1, float* buf, size_t* ld) const {
    static_assert(kColBlock % Step<L>::kCols == 0, "decoded steps must not cross a buffer row");
    *ld = kColBlock;
    const size_t stride = Step<L>::stride(w);
    for (size_t i = 0; i < m; ++i) {
      const uint8_t* p = w.idx + (r0 + i) * stride;
      float* out = buf + i * kColBlock - c0;
      for (size_t c = c0; c < c1; c += Step<L>::kCols) {
        if constexpr (std::is_same_v<L, Lut8>) {
          _mm512_store_ps(out + c, dec(load_u8x16(p + c)));       // may read index bytes past the row:
          _mm512_store_ps(out + c + 16, dec(load_u8x16(p + c + 16)));  // padded, decoded, never used
        } else {
          constexpr int B = L::kBits;
          __m512i b = load_u8x16(p + c * B / 8);
#pragma GCC unroll 8
          for (int f = 0; f < 8 / B; ++f, b = _mm512_srli_epi32(b, B)) _mm512_store_ps(out + c + 16 * f, dec(b));
        }
      }
    }
    return buf;
  }
};

// Batch 1: GemvRows rows per pass over x (fewer when the table takes many registers).
template <int GemvRows, class L, class Dec>
void gemm(const L& w, const Dec& dec, const float* x, size_t batch, float* y, const float* bias) {
  const size_t rows = w.rows, cols = w.cols;
  if (batch == 1) {
    float out[GemvRows];
    size_t r = 0;
    for (; r + GemvRows <= rows; r += GemvRows) {
      dot_tile<GemvRows, 1, 2>(w, dec, r, x, out);
      for (int i = 0; i < GemvRows; ++i) y[r + i] = out[i] + (bias ? bias[r + i] : 0.0f);
    }
    for (; r < rows; ++r) {
      dot_tile<1, 1, 2>(w, dec, r, x, out);
      y[r] = out[0] + (bias ? bias[r] : 0.0f);
    }
    return;
  }
  if (batch >= kBcastMinBatch) return gemm_bcast(DecodedRows<L, Dec>{w, dec}, rows, cols, x, batch, y, bias);
  for (size_t b0 = 0; b0 < batch; b0 += kTileBatch) {
    const size_t bt = std::min<size_t>(kTileBatch, batch - b0);
    const float* xb = x + b0 * cols;
    for (size_t r = 0; r < rows; ++r) {
      float out[kTileBatch];
      if (bt == kTileBatch) {
        dot_tile<1, kTileBatch, 1>(w, dec, r, xb, out);
      } else {
        for (size_t t = 0; t < bt; ++t) dot_tile<1, 1, 2>(w, dec, r, xb + t * cols, out + t);
      }
      const float b = bias ? bias[r] : 0.0f;
      for (size_t t = 0; t < bt; ++t) y[(b0 + t) * rows + r] = out[t] + b;
    }
  }
}

}  // namespace

// Lut1 / Lut2 tables are replicated to 16 entries, so one vpermps (index bits [3:0]) serves every B.
void pyrt_lut1_f32_gemm__avx512(const Lut1& w, const float* x, size_t batch, float* y, const float* bias) {
  gemm<4>(w, Lut16Reg(w.lut), x, batch, y, bias);
}

void pyrt_lut2_f32_gemm__avx512(const Lut2& w, const float* x, size_t batch, float* y, const float* bias) {
  gemm<4>(w, Lut16Reg(w.lut), x, batch, y, bias);
}

void pyrt_lut4_f32_gemm__avx512(const Lut4& w, const float* x, size_t batch, float* y, const float* bias) {
  gemm<4>(w, Lut16Reg(w.lut), x, batch, y, bias);
}

void pyrt_lut8_f32_gemm__avx512(const Lut8& w, const float* x, size_t batch, float* y, const float* bias) {
  if (w.k <= 32) return gemm<4>(w, Lut32Reg(w.lut), x, batch, y, bias);
  if (w.k <= 64) return gemm<4>(w, Lut64Reg(w.lut), x, batch, y, bias);
  if (w.k <= 128) return gemm<4>(w, Lut128Reg(w.lut), x, batch, y, bias);
  gemm<2>(w, Lut256Reg(w.lut), x, batch, y, bias);
}

}  // namespace pyrt::kernels
