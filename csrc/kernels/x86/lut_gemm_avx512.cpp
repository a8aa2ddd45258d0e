// pyruntime: codebook (lookup-table) GEMV / GEMM, AVX-512.
//   pyrt_lut{1,2,4}_f32_gemm__avx512   LutBits<B> layouts: B-bit indices, 8 / B per byte, k <= 2^B
//   pyrt_lut8_f32_gemm__avx512         Lut8 layout: one index byte per weight, k <= 256; with VBMI small
//                                      batches go to the byte-plane decoder (lut_gemm_avx512vbmi.cpp)
//   pyrt_lut8_f32_gemm_permps__avx512  the Lut8 kernel without VBMI
// A 16-entry table fits one zmm, so a 4-bit group of 32 weights costs one vpmovzxbd (16 bytes -> 16
// dwords, each holding two indices), one shift and two vpermps (which read only index bits [3:0]: the
// low nibble directly, the high nibble after the shift); 2-bit and 1-bit groups (64 / 128 weights) take
// one shift and one vpermps per 16 weights on a replicated table. Byte indices decode through 1..8
// vpermt2ps and a blend tree (LutTreeReg).
//
// Batch 1: a register tile of GemvRows weight rows; each row keeps two accumulators (low / high half of
// a group) so 4 rows give 8 independent FMA chains.
// Batch >= 2: dot tiles of R weight rows x T <= 8 batch rows on packed x (dot_batch_avx512.h): each
// weight vector is decoded once per pass of T batch rows and feeds T FMAs. The cheap decoders (k <= 64)
// decode in the tile on every pass; the expensive ones (k > 64: 4..8 vpermt2ps and a blend tree per 16
// weights) do so for a single pass (batch <= 8) and otherwise decode each block of rows once into a
// buffer that all passes then read as dense rows (dot_gemm). On Zen 4 both beat the batch-in-lanes GEMM
// (gemm_bcast_avx512.h: decode per 32 batch rows, one broadcast per weight and lane vector) at every
// batch measured (2..256), so the codebook kernels do not use it.
#include <algorithm>
#include <type_traits>

#include "kernels/kernels.h"
#include "kernels/x86/avx512_util.h"
#include "kernels/x86/dot_batch_avx512.h"

namespace pyrt::kernels {
namespace {

using namespace avx512;

constexpr size_t kBlockBytes = 256 << 10;  // in-tile decoding, several passes: index bytes per row block

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

// ---- batch >= 2: dot tiles on packed x (dot_batch_avx512.h) ----

// Decoder plan: tile rows (R <= kRows, R * T <= 24 accumulators) of the in-tile path, and whether
// several passes decode each row block once into a buffer (dot_gemm) instead.
template <class Dec>
struct DotPlan {
  static constexpr int kRows = 4;
  static constexpr bool kDecodeOnce = false;
};
template <>
struct DotPlan<Lut64Reg> {  // 4 table registers
  static constexpr int kRows = 2;
  static constexpr bool kDecodeOnce = false;
};
template <>
struct DotPlan<Lut128Reg> {  // 8 table registers, 4 vpermt2ps + 3 blends per vector
  static constexpr int kRows = 2;
  static constexpr bool kDecodeOnce = true;
};
template <>
struct DotPlan<Lut256Reg> {  // 16 table registers, 8 vpermt2ps + 7 blends per vector
  static constexpr int kRows = 1;
  static constexpr bool kDecodeOnce = true;
};

// acc[r][t] += w[r] * x[t][chunk]; xk: the chunk's T packed vectors.
template <int R, int T>
inline void fma_packed(__m512 (&acc)[R][T], const __m512 (&w)[R], const float* xk) {
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    const __m512 xv = _mm512_load_ps(xk + 16 * t);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(w[r], xv, acc[r][t]);
  }
}

// One step of R rows from column c (a multiple of kCols) against packed x (zero past cols); Tail: the
// step holds column cols - 1: vectors past cols are skipped, and the weights of columns >= cols zeroed.
template <class L>
struct PStep;

template <int B>
struct PStep<LutBits<B>> {
  static constexpr size_t kCols = LutBits<B>::kGroup;
  static constexpr size_t kBytes = 16;  // index bytes per row and step
  template <int R, int T, bool Tail, class Dec>
  static void run(__m512 (&acc)[R][T], const Dec& dec, const uint8_t* const (&p)[R], const float* xs, size_t c,
                  size_t cols) {
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
      __m512 w[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) w[r] = mask_w<Tail>(dec(b[r]), cf, cols);  // vpermps ignores the bits above
      fma_packed<R, T>(acc, w, xs + cf * T);
    }
  }
};

template <>
struct PStep<Lut8> {
  static constexpr size_t kCols = 32;
  static constexpr size_t kBytes = 32;
  template <int R, int T, bool Tail, class Dec>
  static void run(__m512 (&acc)[R][T], const Dec& dec, const uint8_t* const (&p)[R], const float* xs, size_t c,
                  size_t cols) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const size_t ch = c + 16 * h;
      if (Tail && ch >= cols) break;
      __m512 w[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        // the tail reads only the row's bytes (masked), so the decoders see clean indices
        const __m512i b = Tail ? _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(tail_mask(cols - ch), p[r] + ch))
                               : load_u8x16(p[r] + ch);
        w[r] = mask_w<Tail>(dec(b), ch, cols);
      }
      fma_packed<R, T>(acc, w, xs + ch * T);
    }
  }
};

// out[r * T + t] = W[r0 + r] . x[t], x packed (pass of T rows, padded to a multiple of kCols). The next
// R rows (contiguous) are prefetched into L2 as the steps advance.
template <int R, int T, class L, class Dec>
void dot_packed(const L& w, const Dec& dec, size_t r0, const float* xs, float* out) {
  const size_t cols = w.cols, stride = Step<L>::stride(w);
  const uint8_t* p[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) p[r] = w.idx + (r0 + r) * stride;
  const uint8_t* next = p[0] + R * stride;
  __m512 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  constexpr size_t G = PStep<L>::kCols;
  constexpr int kLines = int((R * PStep<L>::kBytes + 63) / 64);
  const size_t full = cols / G;
  for (size_t s = 0; s < full; ++s) {
    prefetch_l2<kLines>(next + s * R * PStep<L>::kBytes);
    PStep<L>::template run<R, T, false>(acc, dec, p, xs, s * G, cols);
  }
  if (full * G < cols) PStep<L>::template run<R, T, true>(acc, dec, p, xs, full * G, cols);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) out[r * T + t] = hsum(acc[r][t]);
}

// One pass of T batch rows over the weight rows [ra, rb): tiles of R rows, then single rows.
template <int T, class L, class Dec>
void lut_pass(const L& w, const Dec& dec, const float* xs, size_t b0, size_t ra, size_t rb, float* y,
              const float* bias) {
  constexpr int R = std::min(DotPlan<Dec>::kRows, std::max(1, 24 / T));
  float out[R * T];
  size_t r0 = ra;
  for (; r0 + R <= rb; r0 += R) {
    dot_packed<R, T>(w, dec, r0, xs, out);
    store_tile<T>(out, R, r0, b0, w.rows, y, bias);
  }
  for (; r0 < rb; ++r0) {
    dot_packed<1, T>(w, dec, r0, xs, out);
    store_tile<T>(out, 1, r0, b0, w.rows, y, bias);
  }
}

// lut_pass<bt> for a run-time bt in 1..T.
template <int T = int(kDotMaxBatch), class L, class Dec>
void lut_pass_any(size_t bt, const L& w, const Dec& dec, const float* xs, size_t b0, size_t ra, size_t rb, float* y,
                  const float* bias) {
  if constexpr (T > 1) {
    if (bt < size_t(T)) return lut_pass_any<T - 1>(bt, w, dec, xs, b0, ra, rb, y, bias);
  }
  lut_pass<T>(w, dec, xs, b0, ra, rb, y, bias);
}

// Decoding in the tile, on every pass. With several passes the rows go in blocks of about kBlockBytes of
// indices, so that the later passes find them in L2.
template <class L, class Dec>
void lut_dot_gemm(const L& w, const Dec& dec, const float* x, size_t batch, float* y, const float* bias) {
  const size_t rows = w.rows, cols = w.cols;
  const size_t padded = (cols + PStep<L>::kCols - 1) / PStep<L>::kCols * PStep<L>::kCols;
  const size_t chunk = dot_chunk_rows(padded);
  float* xs = thread_scratch(std::min(batch, chunk) * padded);
  for (size_t c0 = 0; c0 < batch; c0 += chunk) {
    const DotPasses ps(std::min(chunk, batch - c0));
    pack_passes(ps, x + c0 * cols, cols, padded, xs);
    const size_t block = ps.passes == 1 ? rows : std::max<size_t>(12, kBlockBytes / Step<L>::stride(w) / 12 * 12);
    for (size_t ra = 0; ra < rows; ra += block) {
      const size_t rb = std::min(rows, ra + block);
      for (size_t p = 0; p < ps.passes; ++p)
        lut_pass_any(ps.size(p), w, dec, xs + ps.begin(p) * padded, c0 + ps.begin(p), ra, rb, y, bias);
    }
  }
}

// W rows for dot_gemm: rows [r0, r0 + m), all columns, decoded into buf (row stride: cols rounded up to
// 16); only the 16-column vectors holding a column < cols are written (dense_dot masks the rest).
template <class L, class Dec>
struct DecodedRows {
  static constexpr bool kInPlace = false;
  const L& w;
  const Dec& dec;
  const float* rows(size_t r0, size_t m, float* buf, size_t* ld) const {
    const size_t cols = w.cols, padded = (cols + 15) / 16 * 16, stride = Step<L>::stride(w);
    *ld = padded;
    for (size_t i = 0; i < m; ++i) {
      const uint8_t* p = w.idx + (r0 + i) * stride;
      float* out = buf + i * padded;
      if constexpr (std::is_same_v<L, Lut8>) {
        // may read up to 15 index bytes past the row (padded array); those lanes are masked when used
        for (size_t c = 0; c < cols; c += 16) _mm512_store_ps(out + c, dec(load_u8x16(p + c)));
      } else {
        constexpr int B = L::kBits;
        for (size_t c = 0; c < cols; c += L::kGroup) {
          __m512i b = load_u8x16(p + c * B / 8);
#pragma GCC unroll 8
          for (int f = 0; f < 8 / B; ++f, b = _mm512_srli_epi32(b, B)) {
            if (c + 16 * f >= cols) break;
            _mm512_store_ps(out + c + 16 * f, dec(b));
          }
        }
      }
    }
    return buf;
  }
};

// Batch 1: GemvRows rows per pass over x (fewer when the table takes many registers); batch >= 2: dot tiles.
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
  if (DotPlan<Dec>::kDecodeOnce && batch > kDotMaxBatch)
    return dot_gemm(DecodedRows<L, Dec>{w, dec}, rows, cols, x, batch, y, bias);
  lut_dot_gemm(w, dec, x, batch, y, bias);
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

// With VBMI the byte-plane decoder (lut_gemm_avx512vbmi.cpp) where it measured faster on Sapphire Rapids
// (4096 x 4096, 1 thread): from k = 33 at batch 1 (k = 64: 1.3 vs 1.9 ms, k = 256: 2.6 vs 5.2 ms), up to
// batch 2 from k = 65 and up to 8 from k = 129. Its x vectors outgrow L1 at wider passes, where the
// cheaper tables' vpermt2ps tiles win.
void pyrt_lut8_f32_gemm__avx512(const Lut8& w, const float* x, size_t batch, float* y, const float* bias) {
  static const bool vbmi = cpu_has_vbmi();
  const size_t vbmi_batch = w.k <= 32 ? 0 : w.k <= 64 ? 1 : w.k <= 128 ? 2 : 8;
  if (vbmi && batch <= vbmi_batch) return pyrt_lut8_f32_gemm__avx512vbmi(w, x, batch, y, bias);
  pyrt_lut8_f32_gemm_permps__avx512(w, x, batch, y, bias);
}

void pyrt_lut8_f32_gemm_permps__avx512(const Lut8& w, const float* x, size_t batch, float* y, const float* bias) {
  if (w.k <= 32) return gemm<4>(w, Lut32Reg(w.lut), x, batch, y, bias);
  if (w.k <= 64) return gemm<4>(w, Lut64Reg(w.lut), x, batch, y, bias);
  if (w.k <= 128) return gemm<4>(w, Lut128Reg(w.lut), x, batch, y, bias);
  gemm<2>(w, Lut256Reg(w.lut), x, batch, y, bias);
}

}  // namespace pyrt::kernels
