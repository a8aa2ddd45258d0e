// pyruntime: the AVX-512 int8 GEMM on the i8_r16k4 layout (int8/int8_layouts.h), templated on how a block
// of 16 rows x 4 columns meets 4 broadcast activations (the Dot policy): int8_gemm_avx512.cpp (AVX-512BW:
// vpmaddubsw + vpmaddwd) and int8_gemm_avx512vnni.cpp (vpdpbusd) instantiate it. Include only from files
// compiled with the AVX-512 flags.
//
// A tile is R row blocks (16 R rows) x T samples, R * T int32 accumulators of 16 lanes (one lane per row),
// over every group of 4 columns: R weight vectors loaded, T activation words broadcast, R * T dot steps.
// Sums are exact in int32, so the tiling never changes a result.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/aligned.h"
#include "kernels/int8/int8_layouts.h"
#include "kernels/x86/avx512_util.h"

namespace pyrt::kernels::avx512 {
namespace {

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// The int8 epilogue (int8_layouts.h) of 16 sums with their scales s and biases b: lanes m stored at y + at,
// as f32 or (inv_out > 0) int8.
inline void epilogue_store(__m512i acc, __m512 s, __m512 b, float lo, float hi, float inv_out, void* y, size_t at,
                           __mmask16 m) {
  __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), s, b);
  v = _mm512_max_ps(_mm512_set1_ps(lo), v);  // lo > v ? lo : v (a NaN v stays)
  v = _mm512_min_ps(_mm512_set1_ps(hi), v);  // hi < v ? hi : v
  if (inv_out > 0.0f) {
    __m512 t = _mm512_mul_ps(v, _mm512_set1_ps(inv_out));
    t = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(t, t, _CMP_ORD_Q), t);  // NaN -> 0
    t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
    _mm512_mask_cvtepi32_storeu_epi8(static_cast<int8_t*>(y) + at, m, _mm512_cvtps_epi32(t));  // half to even
  } else {
    _mm512_mask_storeu_ps(static_cast<float*>(y) + at, m, v);
  }
}

// The epilogue (int8_layouts.h) of 16 rows r .. r + n - 1 (n <= 16) of one sample, stored at y + at.
inline void store_rows(const Int8Epilogue& ep, __m512i acc, float xs, uint32_t r, uint32_t n, void* y, size_t at) {
  const __mmask16 m = tail_mask(n);
  const __m512 s = _mm512_mul_ps(_mm512_set1_ps(xs), _mm512_loadu_ps(ep.wscale + r));
  const __m512 b = ep.bias ? _mm512_loadu_ps(ep.bias + r) : _mm512_setzero_ps();
  epilogue_store(acc, s, b, ep.lo, ep.hi, ep.inv_out, y, at, m);
}

// The dot policies: how 64 weight bytes (16 lanes x 4) meet 64 activation bytes lane by lane.
// DotBw (AVX-512BW): vpmaddubsw of |w| against q with w's sign (a masked negation), then vpmaddwd by ones;
// DotVnni (AVX-512 VNNI): vpdpbusd of q + 128 (xor 0x80, as u8) against w, the offset taken off at the end
// with 128 * the row's weight sum (int32 wraps, so the result is exact whenever the true sum fits).
struct DotBw {
  struct W {
    __m512i absw;
    __mmask64 neg;
  };
  static W prep(__m512i w) { return {_mm512_abs_epi8(w), _mm512_movepi8_mask(w)}; }
  static __m512i bcast(const int8_t* q4) { return bcast4(q4); }
  static __m512i table(__m512i q) { return q; }  // activation bytes as the dot takes them
  static __m512i dot(__m512i acc, const W& w, __m512i q) {
    const __m512i qs = _mm512_mask_sub_epi8(q, w.neg, _mm512_setzero_si512(), q);
    const __m512i p16 = _mm512_maddubs_epi16(w.absw, qs);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p16, _mm512_set1_epi16(1)));
  }
  static __m512i correction(const int32_t*) { return _mm512_setzero_si512(); }
  static constexpr int kBatchTile = 4;
  static constexpr bool kOffsetActs = false;
};

#if defined(__AVX512VNNI__)
struct DotVnni {
  struct W {
    __m512i w;
  };
  static W prep(__m512i w) { return {w}; }
  // The dense GEMM's activations come already offset (gemm() copies them as q + 128 once per call), so its
  // broadcast is a plain load; the sparse kernel's tables are offset as they are loaded.
  static __m512i bcast(const int8_t* q4) { return bcast4(q4); }
  static constexpr bool kOffsetActs = true;
  static __m512i table(__m512i q) { return _mm512_xor_si512(q, _mm512_set1_epi8(-128)); }
  static __m512i dot(__m512i acc, const W& w, __m512i q) { return _mm512_dpbusd_epi32(acc, q, w.w); }
  static __m512i correction(const int32_t* rowsum) { return _mm512_slli_epi32(_mm512_loadu_si512(rowsum), 7); }
  static constexpr int kBatchTile = 6;
};
#endif

template <class Dot, int R, int T>
void tile(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t rb, size_t b0, uint32_t r1,
          void* y, size_t ldy) {
  const size_t groups = L.kp / 4;
  const int8_t* wp[R];
  const int8_t* qp[T];
  for (int i = 0; i < R; ++i) wp[i] = L.w + (size_t(rb) + i) * groups * 64;
  for (int t = 0; t < T; ++t) qp[t] = a.q + (b0 + t) * a.ldq;
  // Fully unrolled: GCC otherwise keeps the R * T accumulators on the stack and stores them every group
  // (1.6x slower at batch 64).
  __m512i acc[R][T];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[i][t] = _mm512_setzero_si512();
  for (size_t g = 0; g < groups; ++g) {
    typename Dot::W w[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) w[i] = Dot::prep(_mm512_loadu_si512(wp[i] + g * 64));
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512i q = Dot::bcast(qp[t] + g * 4);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) acc[i][t] = Dot::dot(acc[i][t], w[i], q);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    const uint32_t r = (rb + i) * 16;
    if (r >= r1) break;
    const __m512i fix = Dot::correction(L.rowsum + r);
    for (int t = 0; t < T; ++t)
      store_rows(ep, _mm512_sub_epi32(acc[i][t], fix), a.xs[b0 + t], r, std::min<uint32_t>(16, r1 - r), y,
                 (b0 + t) * ldy + r);
  }
}

// The last n < T samples from b0: one tile of n.
template <class Dot, int R, int N>
void rest_tile(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t rb, size_t b0, size_t n,
               uint32_t r1, void* y, size_t ldy) {
  if constexpr (N >= 1) {
    if (n == N) return tile<Dot, R, N>(L, a, ep, rb, b0, r1, y, ldy);
    rest_tile<Dot, R, N - 1>(L, a, ep, rb, b0, n, r1, y, ldy);
  }
}

// Every sample of a.batch against row blocks rb .. rb + R - 1: tiles of T samples, then one of the rest.
template <class Dot, int R, int T>
void tiles_of_rows(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t rb, uint32_t r1, void* y,
                   size_t ldy) {
  size_t b = 0;
  for (; b + T <= a.batch; b += T) tile<Dot, R, T>(L, a, ep, rb, b, r1, y, ldy);
  rest_tile<Dot, R, T - 1>(L, a, ep, rb, b, a.batch - b, r1, y, ldy);
}

// Row blocks [r0 / 16, ceil(r1 / 16)) in passes of R blocks (the last pass narrower), each over every sample.
template <class Dot, int R, int T>
void passes(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1, void* y,
            size_t ldy) {
  const uint32_t rb_end = (r1 + 15) / 16;
  uint32_t rb = r0 / 16;
  for (; rb + R <= rb_end; rb += R) tiles_of_rows<Dot, R, T>(L, a, ep, rb, r1, y, ldy);
  switch (rb_end - rb) {
    case 3: if constexpr (R > 3) return tiles_of_rows<Dot, 3, T>(L, a, ep, rb, r1, y, ldy); break;
    case 2: if constexpr (R > 2) return tiles_of_rows<Dot, 2, T>(L, a, ep, rb, r1, y, ldy); break;
    case 1: if constexpr (R > 1) return tiles_of_rows<Dot, 1, T>(L, a, ep, rb, r1, y, ldy); break;
    default: break;
  }
}

// Batch 1 streams 4 row blocks per pass (4 independent accumulators hide the dot latency, and the weights
// are read once). Larger batches compute: 4 row blocks x Dot::kBatchTile samples per tile (24 accumulators
// with VNNI, 16 with BW's longer dot), each weight vector used T times from a register, each activation
// word R times.
template <class Dot>
void gemm_tiles(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1, void* y,
                size_t ldy) {
  if (a.batch == 1) return passes<Dot, 4, 1>(L, a, ep, r0, r1, y, ldy);
  if (a.batch < 4) return passes<Dot, 4, 2>(L, a, ep, r0, r1, y, ldy);
  passes<Dot, 4, Dot::kBatchTile>(L, a, ep, r0, r1, y, ldy);
}

// Dot::kOffsetActs (VNNI): the samples are copied as q + 128 (xor 0x80) into this thread's buffer first, at
// most kOffsetChunk bytes of them at a time (a whole number of tiles), so that each broadcast is one load
// and no xor shares the dot's ports (1.17x at batch 64). The copy costs one pass over the activations.
inline constexpr size_t kOffsetChunk = size_t(512) << 10;

template <class Dot>
void gemm(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1, void* y,
          size_t ldy) {
  if constexpr (!Dot::kOffsetActs) {
    gemm_tiles<Dot>(L, a, ep, r0, r1, y, ldy);
  } else {
    const size_t kp = L.kp, ld = (kp + 63) / 64 * 64;
    const size_t tile = Dot::kBatchTile;
    const size_t chunk = std::max<size_t>(tile, kOffsetChunk / ld / tile * tile);
    thread_local AlignedArray<int8_t> buf;
    if (buf.size() < std::min(chunk, a.batch) * ld) buf.resize(std::min(chunk, a.batch) * ld);
    const __m512i off = _mm512_set1_epi8(-128);
    const __mmask64 tail = kp % 64 ? (uint64_t(1) << (kp % 64)) - 1 : ~uint64_t(0);
    for (size_t b0 = 0; b0 < a.batch; b0 += chunk) {
      const size_t n = std::min(chunk, a.batch - b0);
      for (size_t b = 0; b < n; ++b) {
        const int8_t* src = a.q + (b0 + b) * a.ldq;
        int8_t* dst = buf.data() + b * ld;
        size_t k = 0;
        for (; k + 64 <= kp; k += 64)
          _mm512_store_si512(dst + k, _mm512_xor_si512(_mm512_loadu_si512(src + k), off));
        if (k < kp) _mm512_store_si512(dst + k, _mm512_xor_si512(_mm512_maskz_loadu_epi8(tail, src + k), off));
      }
      const Int8Act part{buf.data(), a.xs + b0, n, ld};
      gemm_tiles<Dot>(L, part, ep, r0, r1, static_cast<char*>(y) + b0 * ldy * (ep.inv_out > 0.0f ? 1 : 4), ldy);
    }
  }
}

}  // namespace
}  // namespace pyrt::kernels::avx512

#if defined(__AVX512VBMI__)
namespace pyrt::kernels::avx512 {
namespace {

// The sparse int8 kernel on the i8_p128 layout (int8_layouts.h): per (row block, panel), the panel's 128
// activations of each sample sit in two registers, and each step is one vpermi2b (64 activations picked by
// the step's column offsets) and one dot into the block's 16 row lanes. Up to 4 samples share every step's
// loads; a sample's steps rotate over 2 accumulators to hide the dot's latency. Steps is how a step's 64
// offsets and weights are read: PaddedSteps (128 bytes each) here, MaskedSteps (i8_p128m) where VBMI2 is.
struct PaddedSteps {
  const uint8_t* p;
  void next(__m512i& idx, __m512i& w) {
    idx = _mm512_loadu_si512(p);
    w = _mm512_loadu_si512(p + 64);
    p += kStepBytes;
  }
};

template <class Dot, int T, class Steps>
void panel_tile(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t rb, size_t b0, uint32_t r1,
                void* y, size_t ldy, Steps steps) {
  constexpr int A = T > 4 ? 1 : 2;  // accumulators per sample: 8 samples need every register for tables
  __m512i acc[T][A];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < A; ++i) acc[t][i] = _mm512_setzero_si512();
  const uint16_t* nsteps = L.nsteps + size_t(rb) * L.panels;
  for (uint32_t p = 0; p < L.panels; ++p) {
    const uint32_t n = nsteps[p];
    if (n == 0) continue;
    __m512i lo[T], hi[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const int8_t* table = a.q + (b0 + t) * a.ldq + size_t(p) * kPanelCols;
      lo[t] = Dot::table(_mm512_loadu_si512(table));
      hi[t] = Dot::table(_mm512_loadu_si512(table + 64));
    }
    for (uint32_t s = 0; s < n; ++s) {
      __m512i idx, wv;
      steps.next(idx, wv);
      const typename Dot::W w = Dot::prep(wv);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t)
        acc[t][s % A] = Dot::dot(acc[t][s % A], w, _mm512_permutex2var_epi8(lo[t], idx, hi[t]));
    }
  }
  const uint32_t r = rb * 16;
  const __m512i fix = Dot::correction(L.rowsum + r);
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    __m512i sum = acc[t][0];
    if constexpr (A == 2) sum = _mm512_add_epi32(sum, acc[t][1]);
    store_rows(ep, _mm512_sub_epi32(sum, fix), a.xs[b0 + t], r, std::min<uint32_t>(16, r1 - r), y,
               (b0 + t) * ldy + r);
  }
}

// Every sample tile of row block rb, its steps read as `steps` says.
template <class Dot, class Steps, int Wide = 4>
void block_tiles(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t rb, uint32_t r1, void* y,
                 size_t ldy, Steps steps) {
  size_t b = 0;
  if constexpr (Wide == 8)
    for (; b + 8 <= a.batch; b += 8) panel_tile<Dot, 8>(L, a, ep, rb, b, r1, y, ldy, steps);
  for (; b + 4 <= a.batch; b += 4) panel_tile<Dot, 4>(L, a, ep, rb, b, r1, y, ldy, steps);
  switch (a.batch - b) {
    case 3: panel_tile<Dot, 3>(L, a, ep, rb, b, r1, y, ldy, steps); break;
    case 2: panel_tile<Dot, 2>(L, a, ep, rb, b, r1, y, ldy, steps); break;
    case 1: panel_tile<Dot, 1>(L, a, ep, rb, b, r1, y, ldy, steps); break;
    default: break;
  }
}

template <class Dot>
void spmm(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1, void* y,
          size_t ldy) {
  for (uint32_t rb = r0 / 16; rb * 16 < r1; ++rb)
    block_tiles<Dot>(L, a, ep, rb, r1, y, ldy, PaddedSteps{L.steps + L.step_start[rb] * kStepBytes});
}

#if defined(__AVX512VBMI2__)
// Masked steps (i8_p128m): the step's mask comes from its own stream, so the byte pointer's only dependency
// is the add of the previous popcount; vpexpandb loads the c real offsets and weights into their lanes.
struct MaskedSteps {
  const uint8_t* p;
  const uint64_t* m;
  MaskedSteps(const Int8Panels& L, uint32_t rb) : p(L.steps + L.byte_start[rb]), m(L.masks + L.step_start[rb]) {}
  void next(__m512i& idx, __m512i& w) {
    const uint64_t k = *m++;
    const size_t c = static_cast<size_t>(_mm_popcnt_u64(k));
    _mm_prefetch(reinterpret_cast<const char*>(p) + 1024, _MM_HINT_T0);
    idx = _mm512_maskz_expand_epi8(k, _mm512_loadu_si512(p));
    w = _mm512_maskz_expand_epi8(k, _mm512_loadu_si512(p + c));
    p += 2 * c;
  }
};

// The sparse kernel on masked steps: tiles of 8 samples (one accumulator each), so that a step's expansion
// serves as many samples as the registers allow, then tiles of up to 4.
template <class Dot>
void spmm_masked(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1, void* y,
                 size_t ldy) {
  for (uint32_t rb = r0 / 16; rb * 16 < r1; ++rb)
    block_tiles<Dot, MaskedSteps, 8>(L, a, ep, rb, r1, y, ldy, MaskedSteps(L, rb));
}
#endif

}  // namespace
}  // namespace pyrt::kernels::avx512
#endif
