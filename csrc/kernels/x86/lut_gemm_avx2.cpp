// pyruntime: codebook (lookup-table) GEMV / GEMM, AVX2 + FMA.
//   pyrt_lut{1,2,4}_f32_gemm__avx2   LutBits<B> layouts: B-bit indices, 8 / B per byte, k <= 2^B
//   pyrt_lut8_f32_gemm__avx2         Lut8 layout: one index byte per weight, k <= 256
// Weights are decoded in registers, never expanded in memory: each 8 indices become 8 floats through
// vpermps on the table held in registers (k <= 8: one register; k <= 16: two and a blend; k <= 32: four
// and two levels of blend) or, for larger tables, through eight scalar table loads.
//
// Batch 1: a register tile of kGemvRows weight rows shares every x vector; for 8 < k <= 64 the byte-plane
// vpshufb decoders of lut_planes_avx2.h replace vpermps (one port on Intel) and the scalar loads, on x
// packed in their column order; for k > 64, where vgatherdps is the faster, half the tile's rows gather
// and the other half take scalar table loads (MixedBytes).
// Batch >= 2: dot tiles of R weight rows x T batch rows on packed x (dot_batch_avx2.h): every decoded
// weight vector feeds T batch rows, every x vector R weight rows; passes of at most T batch rows. The
// cheap decoders (k <= 16) decode in the tile on every pass; the byte decoders (k > 16) do so for a
// single pass and otherwise decode each block of rows once into a buffer that every pass reads as dense
// rows (dot_gemm). DotPlan holds the choices per decoder; only k <= 16 with two table registers switches
// to the batch-in-lanes GEMM of gemm_bcast_avx2.h (rows decoded once per 16 batch rows) from batch 16.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/x86/avx2_util.h"
#include "kernels/x86/dot_batch_avx2.h"
#include "kernels/x86/gemm_bcast_avx2.h"
#include "kernels/x86/lut_planes_avx2.h"

namespace pyrt::kernels {
namespace {

using namespace avx2;

constexpr int kGemvRows = 4;           // batch 1: 4 weight rows per pass over x
constexpr int kPlanesRows = 2;         // batch 1, byte-plane decoders (lut_planes_avx2.h): the same with 2
constexpr size_t kBlockBytes = 256 << 10;  // in-tile decoding, several passes: index bytes per row block

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
struct HwBytes {  // vgatherdps of the table (any k), where this CPU runs it faster (kernels/isa.h)
  const float* lut;
  __m256 operator()(const uint8_t* p) const { return _mm256_i32gather_ps(lut, load_u8x8(p), 4); }
};
// Batch 1 where vgatherdps is the faster: the first kHwRows rows of each kGemvRows-row tile use it, the
// others scalar loads. The two run side by side (the gather's micro-ops and the scalar loads and shuffles
// share the load ports unevenly), and both read the same table entries in the same tiles as ScalarBytes,
// so the sums are the same bits as in the scalar mode. Of 4 rows, 2 gathering beat 1 and 3 (and 3 of 6,
// 4 of 8). 4096 x 4096, k 256, one thread, a Sapphire Rapids class Xeon: medians 3.07-3.22 -> 2.67-2.82 ms.
struct MixedBytes {
  static constexpr int kHwRows = 2;
  const float* lut;
};

// lut[p[0 .. 8)] by scalar loads, the 8 indices taken from one 8-byte load (MixedBytes: this leaves the
// load ports to the table loads and the gathers beside them; one byte load per index measured 10% slower).
inline __m256 gather8_u8(const float* lut, const uint8_t* p) {
  uint64_t q;
  std::memcpy(&q, p, 8);
  __m128 v[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) v[i] = _mm_load_ss(lut + ((q >> (8 * i)) & 255));
  const __m128 lo = _mm_movelh_ps(_mm_unpacklo_ps(v[0], v[1]), _mm_unpacklo_ps(v[2], v[3]));
  const __m128 hi = _mm_movelh_ps(_mm_unpacklo_ps(v[4], v[5]), _mm_unpacklo_ps(v[6], v[7]));
  return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
}

// Row r of a tile: 8 index bytes at p -> 8 floats.
template <class Dec>
inline __m256 decode_row(const Dec& dec, const uint8_t* p, int) {
  return dec(p);
}
inline __m256 decode_row(const MixedBytes& dec, const uint8_t* p, int r) {  // r is a constant once unrolled
  return r < MixedBytes::kHwRows ? HwBytes{dec.lut}(p) : gather8_u8(dec.lut, p);
}

template <int R, int T, bool Tail, class Dec>
inline void lut8_block(__m256 (&acc)[R][T], const Dec& dec, const uint8_t* const (&p)[R], const float* x,
                       size_t ldx, size_t c, size_t cols) {
  __m256 xv[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) xv[t] = load_x<Tail>(x + t * ldx, c, cols);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    // the tail reads index bytes past the row (padded), zeroed here
    const __m256 w = mask_w<Tail>(decode_row(dec, p[r] + c, r), c, cols);
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

// ---- batch >= 2: dot tiles on packed x (dot_batch_avx2.h) ----

// Decoder plan (16 registers; measured on Zen 4 at 4096 x 4096): passes of at most kMaxT batch rows,
// tiles of rows<T>() weight rows decoding in the tile; batches above kDecodeAbove decode each block of
// rows once into a buffer that every pass reads as dense rows (dot_gemm); from kBcastMin on, the batch-
// in-lanes GEMM (gemm_bcast_avx2.h) is faster.
template <class Dec>
struct DotPlan;
template <>
struct DotPlan<Lut8Reg> {  // one table register, one vpermps per 8 weights
  static constexpr size_t kMaxT = 4, kDecodeAbove = SIZE_MAX, kBcastMin = SIZE_MAX;
  template <int T>
  static constexpr int rows() { return T <= 2 ? 3 : 2; }
};
template <>
struct DotPlan<Lut16Reg> {  // two table registers, two vpermps and a blend per 8 weights
  static constexpr size_t kMaxT = 4, kDecodeAbove = SIZE_MAX, kBcastMin = 16;
  template <int T>
  static constexpr int rows() { return 2; }
};
template <class Dec>
struct DotPlan<RegBytes<Dec>> {  // Lut32Reg: four table registers, two levels of blends
  static constexpr size_t kMaxT = 6, kDecodeAbove = 6, kBcastMin = SIZE_MAX;
  template <int T>
  static constexpr int rows() { return 1; }
};
template <>
struct DotPlan<ScalarBytes> {  // eight scalar table loads per 8 weights
  static constexpr size_t kMaxT = 6, kDecodeAbove = 6, kBcastMin = SIZE_MAX;
  template <int T>
  static constexpr int rows() { return 1; }
};
template <>
struct DotPlan<HwBytes> : DotPlan<ScalarBytes> {};  // one vgatherdps per 8 weights

// acc[r][t] += w[r] * x[t][chunk]; xk: the chunk's T packed vectors.
template <int R, int T>
inline void fma_packed(__m256 (&acc)[R][T], const __m256 (&w)[R], const float* xk) {
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    const __m256 xv = _mm256_load_ps(xk + 8 * t);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(w[r], xv, acc[r][t]);
  }
}

// One step of R rows from column c (a multiple of kCols) against packed x (zero past cols); Tail: the
// step holds column cols - 1: vectors past cols are skipped, the weights of columns >= cols zeroed.
template <class L>
struct PStep;

template <int B>
struct PStep<LutBits<B>> {
  static constexpr size_t kCols = LutBits<B>::kGroup;
  static constexpr size_t kBytes = 16;  // index bytes per row and step
  template <int R, int T, bool Tail, class Dec>
  static void run(__m256 (&acc)[R][T], const Dec& dec, const uint8_t* const (&p)[R], const float* xs, size_t c,
                  size_t cols) {
#pragma GCC unroll 2
    for (size_t h = 0; h < 2; ++h) {  // bytes 8h .. 8h+7 of the group: columns 16 f + 8h .. +7
      __m256i b[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) b[r] = load_u8x8(p[r] + c * B / 8 + 8 * h);
#pragma GCC unroll 8
      for (int f = 0; f < 8 / B; ++f) {
        const size_t cf = c + 16 * size_t(f) + 8 * h;
        if (Tail && cf >= cols) break;  // the rest of this half is padding
        if (f > 0) {
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) b[r] = _mm256_srli_epi32(b[r], B);  // next field to the low bits
        }
        __m256 w[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) w[r] = mask_w<Tail>(dec(b[r]), cf, cols);  // the decoder ignores the bits above
        fma_packed<R, T>(acc, w, xs + cf * T);
      }
    }
  }
};

template <>
struct PStep<Lut8> {
  static constexpr size_t kCols = 8;
  static constexpr size_t kBytes = 8;
  template <int R, int T, bool Tail, class Dec>
  static void run(__m256 (&acc)[R][T], const Dec& dec, const uint8_t* const (&p)[R], const float* xs, size_t c,
                  size_t cols) {
    __m256 w[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) w[r] = mask_w<Tail>(dec(p[r] + c), c, cols);  // the tail reads index bytes past
    fma_packed<R, T>(acc, w, xs + c * T);                                     // the row (padded), zeroed here
  }
};

template <class L>
size_t index_stride(const L& w) {
  if constexpr (IsLutBits<L>::value)
    return lutb_row_bytes(L::kBits, w.cols);
  else
    return w.cols;
}

// out[r * T + t] = W[r0 + r] . x[t], x packed (pass of T rows, padded to a multiple of kCols). The next
// R rows (contiguous) are prefetched into L2 as the steps advance.
template <int R, int T, class L, class Dec>
void dot_packed(const L& w, const Dec& dec, size_t r0, const float* xs, float* out) {
  const size_t cols = w.cols, stride = index_stride(w);
  const uint8_t* p[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) p[r] = w.idx + (r0 + r) * stride;
  const uint8_t* next = p[0] + R * stride;
  __m256 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  constexpr size_t G = PStep<L>::kCols, kB = PStep<L>::kBytes;
  const size_t full = cols / G;
  for (size_t s = 0; s < full; ++s) {
    if ((s * R * kB) % 64 < R * kB) prefetch_l2<1>(next + s * R * kB);  // one line per 64 bytes of progress
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
  constexpr int R = DotPlan<Dec>::template rows<T>();
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

// lut_pass for a run-time bt in 1..T.
template <int T, class L, class Dec>
void lut_pass_any(size_t bt, const L& w, const Dec& dec, const float* xs, size_t b0, size_t ra, size_t rb, float* y,
                  const float* bias) {
  if constexpr (T > 1) {
    if (bt < size_t(T)) return lut_pass_any<T - 1>(bt, w, dec, xs, b0, ra, rb, y, bias);
  }
  lut_pass<T>(w, dec, xs, b0, ra, rb, y, bias);
}

// Decoding in the tile, on every pass; with several passes the rows go in blocks of about kBlockBytes of
// indices, so that the later passes find them in L2.
template <class L, class Dec>
void lut_dot_gemm(const L& w, const Dec& dec, const float* x, size_t batch, float* y, const float* bias) {
  const size_t rows = w.rows, cols = w.cols;
  const size_t padded = (cols + PStep<L>::kCols - 1) / PStep<L>::kCols * PStep<L>::kCols;
  const size_t chunk = dot_chunk_rows(padded);
  float* xs = thread_scratch(std::min(batch, chunk) * padded);
  for (size_t c0 = 0; c0 < batch; c0 += chunk) {
    const DotPasses ps(std::min(chunk, batch - c0), DotPlan<Dec>::kMaxT);
    pack_passes(ps, x + c0 * cols, cols, padded, xs);
    const size_t block = ps.passes == 1 ? rows : std::max<size_t>(12, kBlockBytes / index_stride(w) / 12 * 12);
    for (size_t ra = 0; ra < rows; ra += block) {
      const size_t rb = std::min(rows, ra + block);
      for (size_t p = 0; p < ps.passes; ++p)
        lut_pass_any<int(DotPlan<Dec>::kMaxT)>(ps.size(p), w, dec, xs + ps.begin(p) * padded, c0 + ps.begin(p), ra,
                                               rb, y, bias);
    }
  }
}

// W rows for dot_gemm: rows [r0, r0 + m), all columns, decoded into buf (row stride: cols rounded up to
// 8); only the 8-column vectors holding a column < cols are written (dense_dot masks the rest).
template <class L, class Dec>
struct DecodedRows {
  static constexpr bool kInPlace = false;
  const L& w;
  const Dec& dec;
  const float* rows(size_t r0, size_t m, float* buf, size_t* ld) const {
    const size_t cols = w.cols, padded = (cols + 7) / 8 * 8, stride = index_stride(w);
    *ld = padded;
    for (size_t i = 0; i < m; ++i) {
      const uint8_t* p = w.idx + (r0 + i) * stride;
      float* out = buf + i * padded;
      if constexpr (!IsLutBits<L>::value) {
        // may read up to 7 index bytes past the row (padded array); those lanes are masked when used
        for (size_t c = 0; c < cols; c += 8) _mm256_store_ps(out + c, dec(p + c));
      } else {
        constexpr int B = L::kBits;
        for (size_t c = 0; c < cols; c += L::kGroup) {
#pragma GCC unroll 2
          for (size_t h = 0; h < 2; ++h) {
            __m256i b = load_u8x8(p + c * B / 8 + 8 * h);
#pragma GCC unroll 8
            for (int f = 0; f < 8 / B; ++f, b = _mm256_srli_epi32(b, B)) {
              if (c + 16 * f + 8 * h >= cols) break;
              _mm256_store_ps(out + c + 16 * f + 8 * h, dec(b));
            }
          }
        }
      }
    }
    return buf;
  }
};

// ---- driver ----

template <int R, int T, class L, class Dec>
void tile(const L& w, const Dec& dec, size_t r0, const float* x, float* out) {
  if constexpr (IsLutBits<L>::value)
    lutb_tile<R, T>(w, dec, r0, x, out);
  else
    lut8_tile<R, T>(w, dec, r0, x, out);
}

// Batch 1: tiles of kGemvRows rows sharing every x vector, then single rows.
template <class L, class Dec>
void gemv(const L& w, const Dec& dec, const float* x, float* y, const float* bias) {
  constexpr int R = kGemvRows;
  const size_t rows = w.rows;
  float out[R];
  size_t r = 0;
  for (; r + R <= rows; r += R) {
    tile<R, 1>(w, dec, r, x, out);
    for (int i = 0; i < R; ++i) y[r + i] = out[i] + (bias ? bias[r + i] : 0.0f);
  }
  for (; r < rows; ++r) {
    tile<1, 1>(w, dec, r, x, out);
    y[r] = out[0] + (bias ? bias[r] : 0.0f);
  }
}

template <class L, class Dec>
void gemm(const L& w, const Dec& dec, const float* x, size_t batch, float* y, const float* bias) {
  const size_t rows = w.rows, cols = w.cols;
  if (batch == 1) return gemv(w, dec, x, y, bias);
  if constexpr (IsLutBits<L>::value) {
    if (batch >= DotPlan<Dec>::kBcastMin)
      return gemm_bcast(LutBitsRows<L::kBits, Dec>{w, dec}, rows, cols, x, batch, y, bias);
  }
  if (batch > DotPlan<Dec>::kDecodeAbove) return dot_gemm(DecodedRows<L, Dec>{w, dec}, rows, cols, x, batch, y, bias);
  lut_dot_gemm(w, dec, x, batch, y, bias);
}

}  // namespace

void pyrt_lut1_f32_gemm__avx2(const Lut1& w, const float* x, size_t batch, float* y, const float* bias) {
  gemm(w, Lut8Reg(w.lut), x, batch, y, bias);  // replicated table: vpermps ignores the 2 bits above
}

void pyrt_lut2_f32_gemm__avx2(const Lut2& w, const float* x, size_t batch, float* y, const float* bias) {
  gemm(w, Lut8Reg(w.lut), x, batch, y, bias);  // replicated table: vpermps ignores bit 2
}

void pyrt_lut4_f32_gemm__avx2(const Lut4& w, const float* x, size_t batch, float* y, const float* bias) {
  if (batch == 1 && w.k > 8)
    return planes_gemv<kPlanesRows, true>(w.idx, lutb_row_bytes(4, w.cols), w.rows, w.cols, PlanesNDec<1>(w.lut), x, y,
                                          bias);
  if (w.k <= 8) return gemm(w, Lut8Reg(w.lut), x, batch, y, bias);
  gemm(w, Lut16Reg(w.lut), x, batch, y, bias);
}

void pyrt_lut8_f32_gemm__avx2(const Lut8& w, const float* x, size_t batch, float* y, const float* bias) {
  if (batch == 1 && w.k <= 32)
    return planes_gemv<kPlanesRows, false>(w.idx, w.cols, w.rows, w.cols, PlanesNDec<2>(w.lut), x, y, bias);
  if (batch == 1 && w.k <= 64)
    return planes_gemv<kPlanesRows, false>(w.idx, w.cols, w.rows, w.cols, PlanesNDec<4>(w.lut), x, y, bias);
  if (w.k <= 32) return gemm(w, RegBytes<Lut32Reg>{Lut32Reg(w.lut)}, x, batch, y, bias);
  if (use_hw_gather(Isa::avx2)) {
    if (batch == 1) return gemv(w, MixedBytes{w.lut}, x, y, bias);
    return gemm(w, HwBytes{w.lut}, x, batch, y, bias);
  }
  gemm(w, ScalarBytes{w.lut}, x, batch, y, bias);
}

}  // namespace pyrt::kernels
