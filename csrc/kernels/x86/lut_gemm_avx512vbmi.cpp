// pyruntime: codebook GEMV / small-batch GEMM with one index byte per weight (Lut8, k <= 256), AVX-512 with
// VBMI (vpermb). pyrt_lut8_f32_gemm__avx512 dispatches here on CPUs that have VBMI.
//
// Byte-plane decoder: the f32 table is split into 4 planes of bytes (plane j = byte j of every entry, 64
// entries per zmm). 64 index bytes become 64 floats: per plane, one vpermb for entries 0..63 and, for
// k > 64, merge-masked vpermb for the entries 64..127, 128..191, 192..255 (index bits [7:6]); then the
// planes are paired into words and the words into dwords (assemble). x is packed once per call in the
// decoder's column order (pack_x), so the FMAs read it contiguously. Per 64 weights (k = 256): 16 vpermb,
// 4 unpacks and 4 shift + vpternlog pairs, against 32 vpermt2ps and 28 blends for the vpermt2ps decoder.
// The byte shuffles run on port 5 only (Intel), so they bound the speed: about 2x the 4-bit decoder at
// k = 256.
//
// A tile of R weight rows x T batch rows (one pass) shares each x load; every weight row keeps its own
// accumulators and order, so a row's result does not depend on the tile it falls in.
#include <algorithm>

#include "kernels/kernels.h"
#include "kernels/x86/avx512_util.h"

namespace pyrt::kernels {
namespace {

using namespace avx512;

constexpr size_t kBlock = 64;  // columns per decoded block
constexpr size_t kPass = 8;    // batch rows per pass

// The table as 4 byte planes of N zmm (64 * N entries): N = 1 (k <= 64), 2 (k <= 128), 4 (k <= 256).
template <int N>
struct BytePlanes {
  __m512i t[4][N];
  explicit BytePlanes(const float* lut) {  // lut holds 256 floats
    alignas(64) uint8_t planes[4][64 * N];
    for (int c = 0; c < 4 * N; ++c) {
      const __m512i v = _mm512_loadu_si512(lut + 16 * c);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j)  // vpmovdb: byte j of each of the 16 entries
        _mm_store_si128(reinterpret_cast<__m128i*>(planes[j] + 16 * c),
                        _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 8 * j)));
    }
    for (int j = 0; j < 4; ++j)
      for (int n = 0; n < N; ++n) t[j][n] = _mm512_load_si512(planes[j] + 64 * n);
  }
  // 64 indices -> b[j]: byte j of lut[index], in the indices' order. vpermb chains rather than vpermi2b
  // (128 entries): on the cores measured vpermi2b costs two vpermb, and it overwrites its index register,
  // which every plane needs again.
  void operator()(__m512i ix, __m512i (&b)[4]) const {
    if constexpr (N == 1) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) b[j] = _mm512_permutexvar_epi8(ix, t[j][0]);  // index bits [5:0]
    } else if constexpr (N == 2) {
      // entries 0..63, then 64..127 merged over the bytes with index bit 6
      const __mmask64 m = _mm512_test_epi8_mask(ix, _mm512_set1_epi8(0x40));
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j)
        b[j] = _mm512_mask_permutexvar_epi8(_mm512_permutexvar_epi8(ix, t[j][0]), m, ix, t[j][1]);
    } else {
      // entries 0..63, then merged over the bytes whose index bits [7:6] are 01, 1x, 11
      const __mmask64 b6 = _mm512_test_epi8_mask(ix, _mm512_set1_epi8(0x40)), b7 = _mm512_movepi8_mask(ix);
      const __mmask64 b76 = _kand_mask64(b6, b7);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        __m512i v = _mm512_permutexvar_epi8(ix, t[j][0]);
        v = _mm512_mask_permutexvar_epi8(v, b6, ix, t[j][1]);
        v = _mm512_mask_permutexvar_epi8(v, b7, ix, t[j][2]);
        b[j] = _mm512_mask_permutexvar_epi8(v, b76, ix, t[j][3]);
      }
    }
  }
};

// Byte planes -> floats: vpunpck{l,h}bw pairs planes (0, 1) and (2, 3) into 16-bit words (port 5, like
// the look-ups), then shifts and vpternlog pair the words into dwords (ports 0 and 5). Vector q, element
// i = 4 L + e (128-bit lane L) holds column perm(16 q + i) = 16 L + 8 (q / 2) + 2 e + q % 2 of the block.
// (Unpacking both levels, or shifting both, measured slower: the first loads port 5 alone, the second
// adds shifts to port 0, which the FMAs share.)
constexpr uint32_t perm(uint32_t j) {
  const uint32_t q = j / 16, l = j % 16 / 4, e = j % 4;
  return 16 * l + 8 * (q / 2) + 2 * e + q % 2;
}

// words a, b -> dwords (a low) from the even / odd word positions
inline __m512 dwords_even(__m512i a, __m512i b) {  // (a & 0xFFFF) | (b << 16)
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(a, _mm512_slli_epi32(b, 16), _mm512_set1_epi32(0xFFFF), 0xEC));
}
inline __m512 dwords_odd(__m512i a, __m512i b) {  // (a >> 16) | (b & 0xFFFF0000)
  return _mm512_castsi512_ps(
      _mm512_ternarylogic_epi32(_mm512_srli_epi32(a, 16), b, _mm512_set1_epi32(int(0xFFFF0000u)), 0xF8));
}

inline void assemble(const __m512i (&b)[4], __m512 (&w)[4]) {
  const __m512i lo01 = _mm512_unpacklo_epi8(b[0], b[1]), hi01 = _mm512_unpackhi_epi8(b[0], b[1]);  // words
  const __m512i lo23 = _mm512_unpacklo_epi8(b[2], b[3]), hi23 = _mm512_unpackhi_epi8(b[2], b[3]);
  w[0] = dwords_even(lo01, lo23);
  w[1] = dwords_odd(lo01, lo23);
  w[2] = dwords_even(hi01, hi23);
  w[3] = dwords_odd(hi01, hi23);
}

struct Perm {
  uint8_t col[kBlock];
  constexpr Perm() : col() {
    for (uint32_t j = 0; j < kBlock; ++j) col[j] = uint8_t(perm(j));
  }
};

// x rows [0, bt) (row stride cols) -> xs in the decoder's order, block-major: the 64 floats of block k,
// batch row t start at xs + (k * bt + t) * 64 and hold, at j, column 64 k + perm(j). Columns past cols
// are 0.
void pack_x(const float* x, size_t bt, size_t cols, float* xs) {
  static constexpr Perm p;
  const size_t blocks = (cols + kBlock - 1) / kBlock;
  for (size_t k = 0; k < blocks; ++k)
    for (size_t t = 0; t < bt; ++t) {
      const float* xr = x + t * cols + k * kBlock;
      float* o = xs + (k * bt + t) * kBlock;
      const size_t n = std::min(kBlock, cols - k * kBlock);
      if (n == kBlock) {
        for (size_t j = 0; j < kBlock; ++j) o[j] = xr[p.col[j]];
      } else {
        for (size_t j = 0; j < kBlock; ++j) o[j] = p.col[j] < n ? xr[p.col[j]] : 0.0f;
      }
    }
}

// acc[r][t][q % H] += decode(block k of row r) . x[t] block k. Tail: the block holds column cols - 1; only
// the row's bytes are read and the bytes of columns >= cols are zeroed in every plane, so their weights
// are +0 whatever the table holds (an infinite entry cannot turn 0 * x into NaN).
template <int R, int T, int H, bool Tail, int N>
inline void step(__m512 (&acc)[R][T][H], const BytePlanes<N>& dec, const uint8_t* const (&p)[R], const float* xk,
                 __mmask64 tail) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i ix = Tail ? _mm512_maskz_loadu_epi8(tail, p[r]) : _mm512_loadu_si512(p[r]);
    __m512i b[4];
    dec(ix, b);
    if constexpr (Tail) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) b[j] = _mm512_maskz_mov_epi8(tail, b[j]);
    }
    __m512 w[4];
    assemble(b, w);
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q)
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t)
        acc[r][t][q % H] = _mm512_fmadd_ps(w[q], _mm512_load_ps(xk + t * kBlock + 16 * q), acc[r][t][q % H]);
  }
}

// out[r * T + t] = W[r0 + r] . x[t] for the R rows from r0, x packed by pack_x (bt = T).
template <int R, int T, int H, int N>
void dot_tile(const Lut8& w, const BytePlanes<N>& dec, size_t r0, const float* xs, float* out) {
  const size_t cols = w.cols, full = cols / kBlock;
  const uint8_t* p[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) p[r] = w.idx + (r0 + r) * cols;
  __m512 acc[R][T][H];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
#pragma GCC unroll 4
      for (int h = 0; h < H; ++h) acc[r][t][h] = _mm512_setzero_ps();
  for (size_t k = 0; k < full; ++k) {
    step<R, T, H, false>(acc, dec, p, xs + k * T * kBlock, 0);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) p[r] += kBlock;
  }
  if (const size_t n = cols - full * kBlock)
    step<R, T, H, true>(acc, dec, p, xs + full * T * kBlock, _cvtu64_mask64((uint64_t(1) << n) - 1));
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      __m512 s = acc[r][t][0];
#pragma GCC unroll 4
      for (int h = 1; h < H; ++h) s = _mm512_add_ps(s, acc[r][t][h]);
      out[r * T + t] = hsum(s);
    }
}

// Tile shape per pass width T: R rows and H accumulators per (row, batch row), R * T * H <= 8 so the
// accumulators and the 16 table registers of k = 256 stay in registers.
template <int T>
struct Tile {
  static constexpr int kRows = T == 1 ? 4 : T <= 4 ? 2 : 1;
  static constexpr int kAcc = kRows * T * 2 <= 8 ? 2 : 1;
};

// One pass of T batch rows (x packed in xs) over all weight rows; y rows b0 .. b0 + T.
template <int T, int N>
void pass(const Lut8& w, const BytePlanes<N>& dec, const float* xs, size_t b0, float* y, const float* bias) {
  constexpr int R = Tile<T>::kRows, H = Tile<T>::kAcc;
  const size_t rows = w.rows;
  float out[R * T];
  auto store = [&](int m, size_t r0) {
    for (int r = 0; r < m; ++r)
      for (int t = 0; t < T; ++t) y[(b0 + t) * rows + r0 + r] = out[r * T + t] + (bias ? bias[r0 + r] : 0.0f);
  };
  size_t r0 = 0;
  for (; r0 + R <= rows; r0 += R) {
    dot_tile<R, T, H>(w, dec, r0, xs, out);
    store(R, r0);
  }
  for (; r0 < rows; ++r0) {
    dot_tile<1, T, H>(w, dec, r0, xs, out);
    store(1, r0);
  }
}

template <int T = int(kPass), int N>
void pass_any(size_t bt, const Lut8& w, const BytePlanes<N>& dec, const float* xs, size_t b0, float* y,
              const float* bias) {
  if constexpr (T > 1) {
    if (bt < size_t(T)) return pass_any<T - 1>(bt, w, dec, xs, b0, y, bias);
  }
  pass<T>(w, dec, xs, b0, y, bias);
}

template <int N>
void gemm(const Lut8& w, const float* x, size_t batch, float* y, const float* bias) {
  const BytePlanes<N> dec(w.lut);
  const size_t cols = w.cols, padded = (cols + kBlock - 1) / kBlock * kBlock;
  float* xs = thread_scratch(std::min(batch, kPass) * padded);
  for (size_t b0 = 0; b0 < batch; b0 += kPass) {
    const size_t bt = std::min(kPass, batch - b0);
    pack_x(x + b0 * cols, bt, cols, xs);
    pass_any(bt, w, dec, xs, b0, y, bias);
  }
}

}  // namespace

void pyrt_lut8_f32_gemm__avx512vbmi(const Lut8& w, const float* x, size_t batch, float* y, const float* bias) {
  if (w.k <= 64) return gemm<1>(w, x, batch, y, bias);
  if (w.k <= 128) return gemm<2>(w, x, batch, y, bias);
  gemm<4>(w, x, batch, y, bias);
}

}  // namespace pyrt::kernels
