// pyruntime: the NEON int8 kernels on the i8_r16k4 and i8_p128 layouts (int8/int8_layouts.h) and the int8
// conv tile (int8/int8_conv.h), templated on how 16 weight bytes (4 lanes of 4) meet 16 activation bytes
// lane by lane (the Dot policy): int8_gemm_neon.cpp (baseline Advanced SIMD: DotMull) and
// int8_gemm_neondot.cpp (Armv8.2 sdot: DotSdot) instantiate them. Include only from those two files.
//
// Every sum is exact in int32 and the epilogue is int8_layouts.h's, operation for operation, so each kernel
// gives the scalar reference's bits whatever its tiling.
#pragma once

#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "kernels/int8/int8_conv.h"
#include "kernels/int8/int8_layouts.h"

namespace pyrt::kernels::neon_i8 {
namespace {

// 4 bytes at p in every 32-bit lane.
inline int8x16_t bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

// The dot policies. A quarter (16 bytes: 4 lanes of 4) accumulates into kRegs int32x4 registers;
// rows() folds them into one int32x4 of the 4 lanes' sums.
// DotMull (Advanced SIMD): vmull_s8 widens the products to int16, vpadalq_s16 adds adjacent pairs into int32
// (lanes [l0 c0+c1, l0 c2+c3, l1 c0+c1, l1 c2+c3] of the low half; the high half likewise). two() first adds
// a second quarter's products with vmlal_s8: weights are in -127..127, so a sum of two products is at most
// 2 * 127 * 128 = 32512 in magnitude and fits int16 for any int8 activation.
struct DotMull {
  static constexpr int kRegs = 2;
  static void one(int32x4_t* acc, int8x16_t w, int8x16_t q) {
    acc[0] = vpadalq_s16(acc[0], vmull_s8(vget_low_s8(w), vget_low_s8(q)));
    acc[1] = vpadalq_s16(acc[1], vmull_high_s8(w, q));
  }
  static void two(int32x4_t* acc, int8x16_t wa, int8x16_t qa, int8x16_t wb, int8x16_t qb) {
    const int16x8_t lo = vmlal_s8(vmull_s8(vget_low_s8(wa), vget_low_s8(qa)), vget_low_s8(wb), vget_low_s8(qb));
    const int16x8_t hi = vmlal_high_s8(vmull_high_s8(wa, qa), wb, qb);
    acc[0] = vpadalq_s16(acc[0], lo);
    acc[1] = vpadalq_s16(acc[1], hi);
  }
  static int32x4_t rows(const int32x4_t* acc) { return vpaddq_s32(acc[0], acc[1]); }  // lane l: its 2 halves
};

#if defined(__ARM_FEATURE_DOTPROD)
// DotSdot (Armv8.2 dot product): sdot sums each lane's 4 products into its int32 lane.
struct DotSdot {
  static constexpr int kRegs = 1;
  static void one(int32x4_t* acc, int8x16_t w, int8x16_t q) { acc[0] = vdotq_s32(acc[0], w, q); }
  static void two(int32x4_t* acc, int8x16_t wa, int8x16_t qa, int8x16_t wb, int8x16_t qb) {
    acc[0] = vdotq_s32(vdotq_s32(acc[0], wa, qa), wb, qb);
  }
  static int32x4_t rows(const int32x4_t* acc) { return acc[0]; }
};
#endif

// The int8 epilogue (int8_layouts.h) of 4 sums with scales s and biases b, as 4 f32 (vals) or, with
// inv_out > 0, 4 int32 in -127..127 (the quantized bytes, before narrowing).
inline float32x4_t epilogue_f32(int32x4_t acc, float32x4_t s, float32x4_t b, float lo, float hi) {
  float32x4_t v = vfmaq_f32(b, vcvtq_f32_s32(acc), s);  // fma(float(acc), s, b): one rounding
  const float32x4_t vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
  v = vbslq_f32(vcgtq_f32(vlo, v), vlo, v);  // lo > v ? lo : v (NaN and -0 stay, unlike fmax)
  v = vbslq_f32(vcltq_f32(vhi, v), vhi, v);  // hi < v ? hi : v
  return v;
}

// ref::quantize_one of 4 values: NaN -> 0, clamp to +-127, round half to even (fcvtns).
inline int32x4_t quantize4(float32x4_t v, float32x4_t inv) {
  float32x4_t t = vmulq_f32(v, inv);
  t = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(t), vceqq_f32(t, t)));  // NaN -> +0
  t = vminq_f32(vmaxq_f32(t, vdupq_n_f32(-127.0f)), vdupq_n_f32(127.0f));
  return vcvtnq_s32_f32(t);
}

inline int8x16_t narrow16(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {  // values in -127..127
  const int16x8_t ab = vcombine_s16(vmovn_s32(a), vmovn_s32(b)), cd = vcombine_s16(vmovn_s32(c), vmovn_s32(d));
  return vcombine_s8(vmovn_s16(ab), vmovn_s16(cd));
}

// The epilogue of 16 outputs (acc[k]: outputs 4k .. 4k + 3) with scales s[k] and biases b[k]; the first n
// (<= 16) stored at y + at, f32 or int8 as inv_out says.
inline void store16(const int32x4_t* acc, const float32x4_t* s, const float32x4_t* b, float lo, float hi,
                    float inv_out, uint32_t n, void* y, size_t at) {
  float32x4_t v[4];
  for (int k = 0; k < 4; ++k) v[k] = epilogue_f32(acc[k], s[k], b[k], lo, hi);
  if (inv_out > 0.0f) {
    const float32x4_t inv = vdupq_n_f32(inv_out);
    const int8x16_t q = narrow16(quantize4(v[0], inv), quantize4(v[1], inv), quantize4(v[2], inv),
                                 quantize4(v[3], inv));
    int8_t* out = static_cast<int8_t*>(y) + at;
    if (n == 16) {
      vst1q_s8(out, q);
    } else {
      int8_t tmp[16];
      vst1q_s8(tmp, q);
      std::memcpy(out, tmp, n);
    }
  } else {
    float* out = static_cast<float*>(y) + at;
    if (n == 16) {
      for (int k = 0; k < 4; ++k) vst1q_f32(out + 4 * k, v[k]);
    } else {
      float tmp[16];
      for (int k = 0; k < 4; ++k) vst1q_f32(tmp + 4 * k, v[k]);
      std::memcpy(out, tmp, n * sizeof(float));
    }
  }
}

// Rows r .. r + n - 1 of one sample (r a multiple of 16; wscale and bias are padded to 16).
template <class Dot>
inline void store_rows(const Int8Epilogue& ep, const int32x4_t* acc, float xs, uint32_t r, uint32_t n, void* y,
                       size_t at) {
  int32x4_t sums[4];
  float32x4_t s[4], b[4];
  for (int k = 0; k < 4; ++k) {
    sums[k] = Dot::rows(acc + k * Dot::kRegs);
    s[k] = vmulq_f32(vdupq_n_f32(xs), vld1q_f32(ep.wscale + r + 4 * k));
    b[k] = ep.bias ? vld1q_f32(ep.bias + r + 4 * k) : vdupq_n_f32(0.0f);
  }
  store16(sums, s, b, ep.lo, ep.hi, ep.inv_out, n, y, at);
}

// 64 bytes of 16 lanes x 4 against q (one activation word in every lane, or 64 gathered bytes), into the
// block's accumulators; two() does two such groups.
template <class Dot>
inline void block_one(int32x4_t* acc, const int8_t* w, const int8x16_t* q) {
  for (int k = 0; k < 4; ++k) Dot::one(acc + k * Dot::kRegs, vld1q_s8(w + 16 * k), q[k]);
}
template <class Dot>
inline void block_two(int32x4_t* acc, const int8_t* wa, const int8x16_t* qa, const int8_t* wb, const int8x16_t* qb) {
  for (int k = 0; k < 4; ++k)
    Dot::two(acc + k * Dot::kRegs, vld1q_s8(wa + 16 * k), qa[k], vld1q_s8(wb + 16 * k), qb[k]);
}

// ---- dense: a tile of R row blocks x T samples, over every group of 4 columns (two at a time) ----
template <class Dot, int R, int T>
void dense_tile(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t rb, size_t b0, uint32_t r1,
                void* y, size_t ldy) {
  constexpr int N = 4 * Dot::kRegs;
  const size_t groups = L.kp / 4;
  const int8_t* wp[R];
  const int8_t* qp[T];
  for (int i = 0; i < R; ++i) wp[i] = L.w + (size_t(rb) + i) * groups * 64;
  for (int t = 0; t < T; ++t) qp[t] = a.q + (b0 + t) * a.ldq;
  int32x4_t acc[R][T][N];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t)
      for (int k = 0; k < N; ++k) acc[i][t][k] = vdupq_n_s32(0);
  size_t g = 0;
  for (; g + 2 <= groups; g += 2) {
    int8x16_t qa[T][4], qb[T][4];
    for (int t = 0; t < T; ++t) {
      qa[t][0] = qa[t][1] = qa[t][2] = qa[t][3] = bcast4(qp[t] + g * 4);
      qb[t][0] = qb[t][1] = qb[t][2] = qb[t][3] = bcast4(qp[t] + g * 4 + 4);
    }
    for (int i = 0; i < R; ++i)
      for (int t = 0; t < T; ++t) block_two<Dot>(acc[i][t], wp[i] + g * 64, qa[t], wp[i] + g * 64 + 64, qb[t]);
  }
  if (g < groups) {
    for (int t = 0; t < T; ++t) {
      const int8x16_t q = bcast4(qp[t] + g * 4);
      const int8x16_t qq[4] = {q, q, q, q};
      for (int i = 0; i < R; ++i) block_one<Dot>(acc[i][t], wp[i] + g * 64, qq);
    }
  }
  for (int i = 0; i < R; ++i) {
    const uint32_t r = (rb + i) * 16;
    if (r >= r1) continue;
    for (int t = 0; t < T; ++t)
      store_rows<Dot>(ep, acc[i][t], a.xs[b0 + t], r, std::min<uint32_t>(16, r1 - r), y, (b0 + t) * ldy + r);
  }
}

template <class Dot, int R, int T>
void dense_rows(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t rb, uint32_t r1, void* y,
                size_t ldy) {
  size_t b = 0;
  for (; b + T <= a.batch; b += T) dense_tile<Dot, R, T>(L, a, ep, rb, b, r1, y, ldy);
  for (; b < a.batch; ++b) dense_tile<Dot, R, 1>(L, a, ep, rb, b, r1, y, ldy);
}

// Batch 1 streams RB1 row blocks per pass; larger batches one row block x TB samples (each weight quarter used
// TB times from a register), within the 32 vector registers.
template <class Dot, int RB1, int TB>
void gemm(const Int8Dense& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1, void* y,
          size_t ldy) {
  const uint32_t rb_end = (r1 + 15) / 16;
  uint32_t rb = r0 / 16;
  if (a.batch == 1)
    for (; rb + RB1 <= rb_end; rb += RB1) dense_rows<Dot, RB1, 1>(L, a, ep, rb, r1, y, ldy);
  for (; rb < rb_end; ++rb) dense_rows<Dot, 1, TB>(L, a, ep, rb, r1, y, ldy);
}

// ---- sparse (i8_p128): per (row block, panel) a sample's 128 activations sit in 8 registers; a step's 64
// column offsets pick its activations with vqtbl4q (offsets 0..63 from the low 64 bytes, 0 past them) then
// vqtbx4q (offset ^ 64: 64..127 from the high 64 bytes, the others kept). T samples share each step's loads.
inline int8x16_t gather(const int8x16x4_t& lo, const int8x16x4_t& hi, uint8x16_t idx) {
  return vqtbx4q_s8(vqtbl4q_s8(lo, idx), hi, veorq_u8(idx, vdupq_n_u8(64)));
}

template <class Dot, int T>
void panel_tile(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t rb, size_t b0, uint32_t r1,
                void* y, size_t ldy) {
  constexpr int N = 4 * Dot::kRegs;
  int32x4_t acc[T][N];
  for (int t = 0; t < T; ++t)
    for (int k = 0; k < N; ++k) acc[t][k] = vdupq_n_s32(0);
  const uint8_t* step = L.steps + L.step_start[rb] * kStepBytes;
  const uint16_t* nsteps = L.nsteps + size_t(rb) * L.panels;
  for (uint32_t p = 0; p < L.panels; ++p) {
    const uint32_t n = nsteps[p];
    if (n == 0) continue;
    int8x16x4_t lo[T], hi[T];
    for (int t = 0; t < T; ++t) {
      const int8_t* table = a.q + (b0 + t) * a.ldq + size_t(p) * kPanelCols;
      lo[t] = vld1q_s8_x4(table);
      hi[t] = vld1q_s8_x4(table + 64);
    }
    uint32_t s = 0;
    for (; s + 2 <= n; s += 2, step += 2 * kStepBytes) {
      const int8_t* wa = reinterpret_cast<const int8_t*>(step + 64);
      const int8_t* wb = reinterpret_cast<const int8_t*>(step + kStepBytes + 64);
      for (int t = 0; t < T; ++t) {
        int8x16_t qa[4], qb[4];
        for (int k = 0; k < 4; ++k) {
          qa[k] = gather(lo[t], hi[t], vld1q_u8(step + 16 * k));
          qb[k] = gather(lo[t], hi[t], vld1q_u8(step + kStepBytes + 16 * k));
        }
        block_two<Dot>(acc[t], wa, qa, wb, qb);
      }
    }
    if (s < n) {
      const int8_t* w = reinterpret_cast<const int8_t*>(step + 64);
      for (int t = 0; t < T; ++t) {
        int8x16_t q[4];
        for (int k = 0; k < 4; ++k) q[k] = gather(lo[t], hi[t], vld1q_u8(step + 16 * k));
        block_one<Dot>(acc[t], w, q);
      }
      step += kStepBytes;
    }
  }
  const uint32_t r = rb * 16;
  for (int t = 0; t < T; ++t)
    store_rows<Dot>(ep, acc[t], a.xs[b0 + t], r, std::min<uint32_t>(16, r1 - r), y, (b0 + t) * ldy + r);
}

template <class Dot, int T>
void spmm(const Int8Panels& L, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1, void* y,
          size_t ldy) {
  for (uint32_t rb = r0 / 16; rb * 16 < r1; ++rb) {
    size_t b = 0;
    for (; b + T <= a.batch; b += T) panel_tile<Dot, T>(L, a, ep, rb, b, r1, y, ldy);
    for (; b < a.batch; ++b) panel_tile<Dot, 1>(L, a, ep, rb, b, r1, y, ldy);
  }
}

// ---- the conv tile (int8_conv.h): 16 positions are the lanes of a patch block, one output channel's 4
// weights are broadcast; O channels at a time share each block load. Output o's 16 positions are contiguous
// in its plane.
template <class Dot, int O>
void conv_channels(const Int8ConvTile& c, size_t o0) {
  constexpr int N = 4 * Dot::kRegs;
  const size_t groups = c.kp / 4;
  for (size_t j = 0; j * 16 < c.n; ++j) {
    const int8_t* blk = c.a + j * 16 * c.kp;
    int32x4_t acc[O][N];
    for (int o = 0; o < O; ++o)
      for (int k = 0; k < N; ++k) acc[o][k] = vdupq_n_s32(0);
    size_t g = 0;
    for (; g + 2 <= groups; g += 2)
      for (int o = 0; o < O; ++o) {
        const int8_t* w = c.w + (o0 + o) * c.kp + g * 4;
        const int8x16_t wa = bcast4(w), wb = bcast4(w + 4);
        const int8x16_t qa[4] = {wa, wa, wa, wa}, qb[4] = {wb, wb, wb, wb};
        block_two<Dot>(acc[o], blk + g * 64, qa, blk + g * 64 + 64, qb);
      }
    if (g < groups)
      for (int o = 0; o < O; ++o) {
        const int8x16_t wa = bcast4(c.w + (o0 + o) * c.kp + g * 4);
        const int8x16_t qa[4] = {wa, wa, wa, wa};
        block_one<Dot>(acc[o], blk + g * 64, qa);
      }
    const uint32_t n = static_cast<uint32_t>(std::min<size_t>(16, c.n - j * 16));
    for (int o = 0; o < O; ++o) {
      int32x4_t sums[4];
      float32x4_t s[4], b[4];
      const float32x4_t sv = vdupq_n_f32(c.xs * c.wscale[o0 + o]);
      const float32x4_t bv = vdupq_n_f32(c.bias ? c.bias[o0 + o] : 0.0f);
      for (int k = 0; k < 4; ++k) {
        sums[k] = Dot::rows(acc[o] + k * Dot::kRegs);
        s[k] = sv;
        b[k] = bv;
      }
      store16(sums, s, b, c.lo, c.hi, c.inv_out, n, c.y, (o0 + o) * c.plane + j * 16);
    }
  }
}

template <class Dot, int O>
void conv_tile(const Int8ConvTile& c) {
  size_t o = 0;
  for (; o + O <= c.og; o += O) conv_channels<Dot, O>(c, o);
  for (; o < c.og; ++o) conv_channels<Dot, 1>(c, o);
}

}  // namespace
}  // namespace pyrt::kernels::neon_i8
