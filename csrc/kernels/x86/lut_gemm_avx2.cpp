// pyruntime: codebook (lookup-table) GEMV / GEMM, AVX2 + FMA.
//   pyrt_lut{1,2,4}_f32_gemm__avx2   LutBits<B> layouts: B-bit indices, 8 / B per byte, k <= 2^B
//   pyrt_lut8_f32_gemm__avx2         Lut8 layout: one index byte per weight, k <= 256
// Weights are decoded in registers, never expanded in memory: each 8 indices become 8 floats through
// vpermps on the table held in registers (k <= 8: one register; k <= 16: two and a blend; k <= 32: four
// and two levels of blend) or, for larger tables, through eight scalar table loads. A register tile of
// R weight rows x T batch rows shares every decoded weight vector between T batch rows and every x
// vector between R weight rows; the weights stream once per T batch rows. From kBcastMinBatch on, each
// block of weight rows is decoded once per 16 batch rows into a buffer and multiplied by the batch-in-
// lanes GEMM of gemm_bcast_avx2.h.
#include <algorithm>
#include <type_traits>

#include "kernels/kernels.h"
#include "kernels/x86/avx2_util.h"
#include "kernels/x86/gemm_bcast_avx2.h"

namespace pyrt::kernels {
namespace {

using namespace avx2;

constexpr int kGemvRows = 4;           // batch 1: 4 weight rows per pass over x
constexpr int kTileBatch = 4;          // batch 2..7: 1 weight row x 4 batch rows (decode once, 4 FMAs)
constexpr size_t kBcastMinBatch = 8;   // from here: decode row blocks once per 16 batch rows, gemm_bcast

// x[t][c .. c+8), zero-filled past `cols` when masked (Tail).
template <bool Tail>
inline __m256 load_x(const float* x, size_t c, size_t cols) {
  if constexpr (!Tail) {
    return _mm256_loadu_ps(x + c);
  } else {
    return c >= cols ? _mm256_setzero_ps() : _mm256_maskload_ps(x + c, tail_mask(std::min<size_t>(8, cols - c)));
  }
}

// Tail: zero the weights of columns >= cols too (padding or the next row's indices), so that even an
// infinite table entry cannot turn 0 * w into NaN.
template <bool Tail>
inline __m256 mask_w(__m256 w, size_t c, size_t cols) {
  if constexpr (!Tail)
    return w;
  else
    return _mm256_and_ps(w, _mm256_castsi256_ps(tail_mask(c >= cols ? 0 : std::min<size_t>(8, cols - c))));
}

// acc[r][t] += dec(idx[r]) * x[t][c .. c+8) for all r, t.
template <int R, int T, bool Tail, class Dec>
inline void fma_block(__m256 (&acc)[R][T], const Dec& dec, const __m256i (&idx)[R], const float* x, size_t ldx,
                      size_t c, size_t cols) {
  __m256 xv[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) xv[t] = load_x<Tail>(x + t * ldx, c, cols);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m256 w = mask_w<Tail>(dec(idx[r]), c, cols);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(w, xv[t], acc[r][t]);
  }
}

// ---- LutBits<B>: groups of 16 bytes = G = 128 / B columns; field f of byte j = column 16 f + j ----

template <class L>
struct IsLutBits : std::false_type {};
template <int B>
struct IsLutBits<LutBits<B>> : std::true_type {};

template <int B, int R, int T, bool Tail, class Dec>
inline void lutb_group(__m256 (&acc)[R][T], const Dec& dec, const uint8_t* const (&p)[R], const float* x,
                       size_t ldx, size_t c, size_t cols) {
  constexpr int kFields = 8 / B;
#pragma GCC unroll 2
  for (size_t h = 0; h < 2; ++h) {  // bytes 8h .. 8h+7 of the group: columns 16 f + 8h .. +7
    __m256i b[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) b[r] = load_u8x8(p[r] + c * B / 8 + 8 * h);
#pragma GCC unroll 8
    for (int f = 0; f < kFields; ++f) {
      const size_t cf = c + 16 * size_t(f) + 8 * h;
      if (Tail && cf >= cols) break;  // the rest of the group is padding
      if (f > 0) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) b[r] = _mm256_srli_epi32(b[r], B);  // next field to the low bits
      }
      fma_block<R, T, Tail>(acc, dec, b, x, ldx, cf, cols);  // the decoder ignores the fields above
    }
  }
}

// out[r * T + t] = W[r0 + r] . x[t]
template <int R, int T, int B, class Dec>
void lutb_tile(const LutBits<B>& L, const Dec& dec, size_t r0, const float* x, float* out) {
  constexpr size_t G = LutBits<B>::kGroup;
  const size_t cols = L.cols, stride = lutb_row_bytes(B, L.cols);
  const uint8_t* p[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) p[r] = L.idx + (r0 + r) * stride;
  __m256 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  const size_t full = cols / G * G;
  size_t c = 0;
  for (; c < full; c += G) lutb_group<B, R, T, false>(acc, dec, p, x, cols, c, cols);
  if (c < cols) lutb_group<B, R, T, true>(acc, dec, p, x, cols, c, cols);  // padded group, x masked
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) out[r * T + t] = hsum(acc[r][t]);
}

// ---- Lut8: one byte per weight, row-major ----

// Byte decoders: 8 index bytes at p -> 8 floats.
template <class Dec>
struct RegBytes {  // zero-extend, then a register-table decoder
  Dec dec;
  __m256 operator()(const uint8_t* p) const { return dec(load_u8x8(p)); }
};
struct ScalarBytes {  // eight scalar table loads (any k; faster than vgatherdps on many cores, see gather8)
  const float* lut;
  __m256 operator()(const uint8_t* p) const { return gather8(lut, p); }
};

template <int R, int T, bool Tail, class Dec>
inline void lut8_block(__m256 (&acc)[R][T], const Dec& dec, const uint8_t* const (&p)[R], const float* x,
                       size_t ldx, size_t c, size_t cols) {
  __m256 xv[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) xv[t] = load_x<Tail>(x + t * ldx, c, cols);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m256 w = mask_w<Tail>(dec(p[r] + c), c, cols);  // the tail reads index bytes past the row (padded)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(w, xv[t], acc[r][t]);
  }
}

template <int R, int T, class Dec>
void lut8_tile(const Lut8& L, const Dec& dec, size_t r0, const float* x, float* out) {
  const size_t cols = L.cols;
  const uint8_t* p[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) p[r] = L.idx + (r0 + r) * cols;
  __m256 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  size_t c = 0;
  for (; c + 8 <= cols; c += 8) lut8_block<R, T, false>(acc, dec, p, x, cols, c, cols);
  if (c < cols) lut8_block<R, T, true>(acc, dec, p, x, cols, c, cols);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) out[r * T + t] = hsum(acc[r][t]);
}

// ---- W rows for gemm_bcast: rows [r0, r0 + m) x columns [c0, c1) decoded into buf (stride kColBlock) ----
// c0 is a multiple of kColBlock (so of every group width); the last group may decode up to 127 columns
// past c1, which stay inside the buffer row and are not used.

template <int B, class Dec>
struct LutBitsRows {
  const LutBits<B>& w;
  const Dec& dec;
  const float* rows(size_t r0, size_t m, size_t c0, size_t c1, float* buf, size_t* ld) const {
    static_assert(kColBlock % LutBits<B>::kGroup == 0, "decoded groups must not cross a buffer row");
    *ld = kColBlock;
    const size_t stride = lutb_row_bytes(B, w.cols);
    for (size_t i = 0; i < m; ++i) {
      const uint8_t* p = w.idx + (r0 + i) * stride;
      float* out = buf + i * kColBlock - c0;
      for (size_t c = c0; c < c1; c += LutBits<B>::kGroup) {
#pragma GCC unroll 2
        for (size_t h = 0; h < 2; ++h) {
          __m256i b = load_u8x8(p + c * B / 8 + 8 * h);
#pragma GCC unroll 8
          for (int f = 0; f < 8 / B; ++f, b = _mm256_srli_epi32(b, B))
            _mm256_store_ps(out + c + 16 * f + 8 * h, dec(b));
        }
      }
    }
    return buf;
  }
};

template <class Dec>
struct Lut8Rows {
  const Lut8& w;
  const Dec& dec;
  const float* rows(size_t r0, size_t m, size_t c0, size_t c1, float* buf, size_t* ld) const {
    *ld = kColBlock;
    for (size_t i = 0; i < m; ++i) {
      const uint8_t* p = w.idx + (r0 + i) * w.cols;
      float* out = buf + i * kColBlock - c0;
      for (size_t c = c0; c < c1; c += 8) _mm256_store_ps(out + c, dec(p + c));  // past the row: padded, unused
    }
    return buf;
  }
};

// ---- drivers: batch 1 in tiles of kGemvRows rows; batch > 1 in tiles of kTileBatch batch rows ----

template <int R, int T, class L, class Dec>
void tile(const L& w, const Dec& dec, size_t r0, const float* x, float* out) {
  if constexpr (IsLutBits<L>::value)
    lutb_tile<R, T>(w, dec, r0, x, out);
  else
    lut8_tile<R, T>(w, dec, r0, x, out);
}

template <class L, class Dec>
void gemm(const L& w, const Dec& dec, const float* x, size_t batch, float* y, const float* bias) {
  const size_t rows = w.rows, cols = w.cols;
  if (batch == 1) {
    float out[kGemvRows];
    size_t r = 0;
    for (; r + kGemvRows <= rows; r += kGemvRows) {
      tile<kGemvRows, 1>(w, dec, r, x, out);
      for (int i = 0; i < kGemvRows; ++i) y[r + i] = out[i] + (bias ? bias[r + i] : 0.0f);
    }
    for (; r < rows; ++r) {
      tile<1, 1>(w, dec, r, x, out);
      y[r] = out[0] + (bias ? bias[r] : 0.0f);
    }
    return;
  }
  if (batch >= kBcastMinBatch) {
    if constexpr (IsLutBits<L>::value)
      return gemm_bcast(LutBitsRows<L::kBits, Dec>{w, dec}, rows, cols, x, batch, y, bias);
    else
      return gemm_bcast(Lut8Rows<Dec>{w, dec}, rows, cols, x, batch, y, bias);
  }
  for (size_t b0 = 0; b0 < batch; b0 += kTileBatch) {
    const size_t bt = std::min<size_t>(kTileBatch, batch - b0);
    const float* xb = x + b0 * cols;
    for (size_t r = 0; r < rows; ++r) {
      float out[kTileBatch];
      if (bt == kTileBatch) {
        tile<1, kTileBatch>(w, dec, r, xb, out);
      } else {
        for (size_t t = 0; t < bt; ++t) tile<1, 1>(w, dec, r, xb + t * cols, out + t);
      }
      const float b = bias ? bias[r] : 0.0f;
      for (size_t t = 0; t < bt; ++t) y[(b0 + t) * rows + r] = out[t] + b;
    }
  }
}

}  // namespace

void pyrt_lut1_f32_gemm__avx2(const Lut1& w, const float* x, size_t batch, float* y, const float* bias) {
  gemm(w, Lut8Reg(w.lut), x, batch, y, bias);  // replicated table: vpermps ignores the 2 bits above
}

void pyrt_lut2_f32_gemm__avx2(const Lut2& w, const float* x, size_t batch, float* y, const float* bias) {
  gemm(w, Lut8Reg(w.lut), x, batch, y, bias);  // replicated table: vpermps ignores bit 2
}

void pyrt_lut4_f32_gemm__avx2(const Lut4& w, const float* x, size_t batch, float* y, const float* bias) {
  if (w.k <= 8) return gemm(w, Lut8Reg(w.lut), x, batch, y, bias);
  gemm(w, Lut16Reg(w.lut), x, batch, y, bias);
}

void pyrt_lut8_f32_gemm__avx2(const Lut8& w, const float* x, size_t batch, float* y, const float* bias) {
  if (w.k <= 32) return gemm(w, RegBytes<Lut32Reg>{Lut32Reg(w.lut)}, x, batch, y, bias);
  gemm(w, ScalarBytes{w.lut}, x, batch, y, bias);
}

}  // namespace pyrt::kernels
