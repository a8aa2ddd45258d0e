// pyruntime: binary kernels at NEON (binary_kernels.h), all equal to the reference bit for bit.
// - XNOR GEMM: one b1_r8 word line (word j of 8 rows, 64 bytes) is four q registers; XOR with the sample's
//   word, vcntq_u8 counts the bits of each byte, and the byte counts add up in u8 for 31 words (at most
//   8 x 31 = 248 per byte), then widen pairwise (vpaddlq_u8, vpadalq_u16) into u32 halves of each row's
//   64-bit lane; a last vpaddq_u32 gives the 8 rows' counts in two int32x4. Tiles: 2 row blocks x 1 sample
//   or 1 row block x 2 samples.
// - BWN GEMM: rows in f32x4 lanes, each lane adding its row's +-x in column order, as the reference does (so
//   the sums are the reference's bits); 8 such chains per tile (32 rows x 1 sample ... 8 rows x 4 samples).
//   The rows' words split into 32-bit halves, one per lane, complemented: the sign bit to XOR into x is
//   (word << 31), and the word shifts right once per column.
// - sign (binarize, binarize_hwc): x * scale and + shift as two rounded operations (vmulq_f32 then vaddq_f32;
//   the file is compiled with -ffp-contract=off so they never fuse), vcgeq_f32 against 0 (false for NaN).
//   binarize packs 16 compare masks to 16 bits with an AND by lane weights and two vaddv_u8; binarize_hwc
//   keeps 8 pixels' 32-bit words in lanes and inserts one channel's bit per step (vsliq_n_u32), channels
//   taken from high to low.
// - dot epilogue: int32x4 of k - 2 m, then vfmaq_f32 (one rounding, as std::fma) or compare masks packed to bits.
#include <arm_neon.h>

#include <cmath>

#include "kernels/binary/binary_kernels.h"

namespace pyrt::kernels {
namespace {

// Bit l of the result: lane l of the 0 / ~0 masks a (lanes 0-3), b (4-7), c (8-11), d (12-15).
inline uint16_t movemask16(uint32x4_t a, uint32x4_t b, uint32x4_t c, uint32x4_t d) {
  static const uint8_t kWeights[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint16x8_t lo = vcombine_u16(vmovn_u32(a), vmovn_u32(b));
  const uint16x8_t hi = vcombine_u16(vmovn_u32(c), vmovn_u32(d));
  const uint8x16_t bits = vandq_u8(vcombine_u8(vmovn_u16(lo), vmovn_u16(hi)), vld1q_u8(kWeights));
  return uint16_t(vaddv_u8(vget_low_u8(bits)) | (unsigned(vaddv_u8(vget_high_u8(bits))) << 8));
}

// Bit l of the result: lane l of the 0 / ~0 mask m.
inline unsigned movemask4(uint32x4_t m) {
  static const uint32_t kWeights[4] = {1, 2, 4, 8};
  return vaddvq_u32(vandq_u32(m, vld1q_u32(kWeights)));
}

// x * scale + shift >= 0, the two operations rounded apart.
inline uint32x4_t sign4(float32x4_t x, float32x4_t scale, float32x4_t shift) {
  return vcgeq_f32(vaddq_f32(vmulq_f32(x, scale), shift), vdupq_n_f32(0.0f));
}

// 8 rows' counts (rows 8 rb + 0..3 in m0, 4..7 in m1) to the epilogue of the reference.
inline void epilogue(int32x4_t m0, int32x4_t m1, size_t rb, size_t r1, const BinaryEpilogue& ep, void* y, size_t b,
                     size_t ldy) {
  const size_t r = rb * 8;
  if (ep.counts) {
    int32_t c[8];
    vst1q_s32(c, m0);
    vst1q_s32(c + 4, m1);
    int32_t* out = static_cast<int32_t*>(y) + b * ldy + r;
    for (size_t l = 0; l < 8 && r + l < r1; ++l) out[l] = c[l];
    return;
  }
  if (ep.limit) {
    const uint32x4_t le0 = vcleq_s32(m0, vld1q_s32(ep.limit + r));  // bit set where m <= limit
    const uint32x4_t le1 = vcleq_s32(m1, vld1q_s32(ep.limit + r + 4));
    static_cast<uint8_t*>(y)[b * ldy + rb] = uint8_t(movemask4(le0) | (movemask4(le1) << 4));
    return;
  }
  const int32x4_t k = vdupq_n_s32(int32_t(ep.k));
  const float32x4_t d0 = vcvtq_f32_s32(vsubq_s32(k, vshlq_n_s32(m0, 1)));
  const float32x4_t d1 = vcvtq_f32_s32(vsubq_s32(k, vshlq_n_s32(m1, 1)));
  float v[8];
  vst1q_f32(v, vfmaq_f32(vld1q_f32(ep.bias + r), d0, vld1q_f32(ep.alpha + r)));  // one rounding, as std::fma
  vst1q_f32(v + 4, vfmaq_f32(vld1q_f32(ep.bias + r + 4), d1, vld1q_f32(ep.alpha + r + 4)));
  float* out = static_cast<float*>(y) + b * ldy + r;
  for (size_t l = 0; l < 8 && r + l < r1; ++l) out[l] = v[l];
}

// RB row blocks x S samples: acc[i][s][q] holds rows 8 (rb0 + i) + 2 q, + 2 q + 1 as two u32 per 64-bit lane.
template <int RB, int S>
void tile(const uint64_t* w8, size_t kw, size_t rb0, size_t r1, const uint64_t* x, size_t ldx, size_t b0,
          const BinaryEpilogue& ep, void* y, size_t ldy) {
  uint32x4_t acc[RB][S][4];
  for (int i = 0; i < RB; ++i)
    for (int s = 0; s < S; ++s)
      for (int q = 0; q < 4; ++q) acc[i][s][q] = vdupq_n_u32(0);
  const uint64_t* w = w8 + rb0 * kw * 8;
  const uint64_t* xb = x + b0 * ldx;
  for (size_t j0 = 0; j0 < kw; j0 += 31) {
    const size_t j1 = kw < j0 + 31 ? kw : j0 + 31;
    uint8x16_t cnt[RB][S][4];  // byte counts of up to 31 words: <= 248
    for (int i = 0; i < RB; ++i)
      for (int s = 0; s < S; ++s)
        for (int q = 0; q < 4; ++q) cnt[i][s][q] = vdupq_n_u8(0);
    for (size_t j = j0; j < j1; ++j) {
      uint8x16_t wv[RB][4];
      for (int i = 0; i < RB; ++i)
        for (int q = 0; q < 4; ++q) wv[i][q] = vreinterpretq_u8_u64(vld1q_u64(w + (i * kw + j) * 8 + 2 * q));
      for (int s = 0; s < S; ++s) {
        const uint8x16_t xv = vreinterpretq_u8_u64(vdupq_n_u64(xb[s * ldx + j]));
        for (int i = 0; i < RB; ++i)
          for (int q = 0; q < 4; ++q) cnt[i][s][q] = vaddq_u8(cnt[i][s][q], vcntq_u8(veorq_u8(wv[i][q], xv)));
      }
    }
    for (int i = 0; i < RB; ++i)
      for (int s = 0; s < S; ++s)
        for (int q = 0; q < 4; ++q) acc[i][s][q] = vpadalq_u16(acc[i][s][q], vpaddlq_u8(cnt[i][s][q]));
  }
  for (int i = 0; i < RB; ++i)
    for (int s = 0; s < S; ++s) {
      // pairwise: [row 0, row 1, row 2, row 3] and [row 4 .. row 7]
      const int32x4_t m0 = vreinterpretq_s32_u32(vpaddq_u32(acc[i][s][0], acc[i][s][1]));
      const int32x4_t m1 = vreinterpretq_s32_u32(vpaddq_u32(acc[i][s][2], acc[i][s][3]));
      epilogue(m0, m1, rb0 + i, r1, ep, y, b0 + s, ldy);
    }
}

template <int S>
void samples(const uint64_t* w8, size_t kw, size_t r0, size_t r1, const uint64_t* x, size_t ldx, size_t b0,
             const BinaryEpilogue& ep, void* y, size_t ldy) {
  constexpr int RB = S == 1 ? 2 : 1;
  const size_t rb1 = (r1 + 7) / 8;
  size_t rb = r0 / 8;
  for (; rb + RB <= rb1; rb += RB) tile<RB, S>(w8, kw, rb, r1, x, ldx, b0, ep, y, ldy);
  for (; rb < rb1; ++rb) tile<1, S>(w8, kw, rb, r1, x, ldx, b0, ep, y, ldy);
}

// Rows [r, r + 4 RV) (rows past r1 - 1 repeat r1 - 1 and are not stored) of S samples: RV x S independent
// add chains (the adds of one chain wait on each other, so a tile needs several to fill the pipeline).
template <int RV, int S>
void bwn_tile(const uint64_t* w, size_t kw, size_t cols, size_t r, size_t r1, const float* x, size_t ldx, size_t b0,
              const float* alpha, const float* bias, float* y, size_t ldy) {
  const uint64_t* row[4 * RV];
  for (size_t l = 0; l < 4 * RV; ++l) row[l] = w + (r + l < r1 ? r + l : r1 - 1) * kw;
  float32x4_t acc[S][RV];
  for (int s = 0; s < S; ++s)
    for (int v = 0; v < RV; ++v) acc[s][v] = vdupq_n_f32(0.0f);
  const float* xb = x + b0 * ldx;
  for (size_t j = 0; j < kw; ++j) {
    // half[h][v], lane l: the complement of row 4 v + l's word j, its low (h = 0) or high 32 bits
    uint32x4_t half[2][RV];
    for (int v = 0; v < RV; ++v) {
      const uint64x2_t w01 = {row[4 * v][j], row[4 * v + 1][j]}, w23 = {row[4 * v + 2][j], row[4 * v + 3][j]};
      const uint32x4x2_t u = vuzpq_u32(vreinterpretq_u32_u64(w01), vreinterpretq_u32_u64(w23));
      half[0][v] = vmvnq_u32(u.val[0]);
      half[1][v] = vmvnq_u32(u.val[1]);
    }
    for (int h = 0; h < 2; ++h) {
      const size_t c0 = j * 64 + h * 32;
      if (c0 >= cols) break;
      const size_t n = cols - c0 < 32 ? cols - c0 : 32;
      uint32x4_t nw[RV];
      for (int v = 0; v < RV; ++v) nw[v] = half[h][v];
      for (size_t c = c0; c < c0 + n; ++c) {
        uint32x4_t flip[RV];
        for (int v = 0; v < RV; ++v) {
          flip[v] = vshlq_n_u32(nw[v], 31);  // the sign bit where the weight is -1
          nw[v] = vshrq_n_u32(nw[v], 1);
        }
        for (int s = 0; s < S; ++s) {
          const uint32x4_t xv = vreinterpretq_u32_f32(vld1q_dup_f32(xb + s * ldx + c));
          for (int v = 0; v < RV; ++v)
            acc[s][v] = vaddq_f32(acc[s][v], vreinterpretq_f32_u32(veorq_u32(xv, flip[v])));  // += bit ? x : -x
        }
      }
    }
  }
  for (int s = 0; s < S; ++s) {
    float* ys = y + (b0 + s) * ldy;
    for (int v = 0; v < RV; ++v) {
      const size_t rv = r + 4 * size_t(v);
      if (rv >= r1) break;
      if (rv + 4 <= r1) {  // fma(alpha, s, bias) with one rounding, as the reference's std::fma
        vst1q_f32(ys + rv, vfmaq_f32(vld1q_f32(bias + rv), vld1q_f32(alpha + rv), acc[s][v]));
        continue;
      }
      float sum[4];
      vst1q_f32(sum, acc[s][v]);
      for (size_t l = 0; rv + l < r1; ++l) ys[rv + l] = std::fma(alpha[rv + l], sum[l], bias[rv + l]);
    }
  }
}

// Rows [r0, r1) of S samples: tiles of 4 RV rows (RV x S = 8 chains), then the last rows by 8 or 4.
template <int S>
void bwn_rows(const uint64_t* w, size_t kw, size_t cols, size_t r0, size_t r1, const float* x, size_t ldx, size_t b0,
              const float* alpha, const float* bias, float* y, size_t ldy) {
  constexpr int RV = S == 1 ? 8 : S == 2 ? 4 : 2;
  size_t r = r0;
  for (; r + 4 * RV <= r1; r += 4 * RV) bwn_tile<RV, S>(w, kw, cols, r, r1, x, ldx, b0, alpha, bias, y, ldy);
  for (; r + 4 < r1; r += 8) bwn_tile<2, S>(w, kw, cols, r, r1, x, ldx, b0, alpha, bias, y, ldy);
  if (r < r1) bwn_tile<1, S>(w, kw, cols, r, r1, x, ldx, b0, alpha, bias, y, ldy);
}

}  // namespace

void pyrt_xnor_gemm__neon(const uint64_t* w8, size_t kw, size_t r0, size_t r1, const uint64_t* x, size_t ldx,
                          size_t batch, const BinaryEpilogue& ep, void* y, size_t ldy) {
  size_t b = 0;
  for (; b + 2 <= batch; b += 2) samples<2>(w8, kw, r0, r1, x, ldx, b, ep, y, ldy);
  if (b < batch) samples<1>(w8, kw, r0, r1, x, ldx, b, ep, y, ldy);
}

void pyrt_bwn_gemm__neon(const uint64_t* w, size_t kw, size_t cols, size_t r0, size_t r1, const float* x, size_t ldx,
                         size_t batch, const float* alpha, const float* bias, float* y, size_t ldy) {
  size_t b = 0;
  for (; b + 4 <= batch; b += 4) bwn_rows<4>(w, kw, cols, r0, r1, x, ldx, b, alpha, bias, y, ldy);
  switch (batch - b) {
    case 3: bwn_rows<3>(w, kw, cols, r0, r1, x, ldx, b, alpha, bias, y, ldy); break;
    case 2: bwn_rows<2>(w, kw, cols, r0, r1, x, ldx, b, alpha, bias, y, ldy); break;
    case 1: bwn_rows<1>(w, kw, cols, r0, r1, x, ldx, b, alpha, bias, y, ldy); break;
    default: break;
  }
}

void pyrt_binarize__neon(const float* x, size_t ldx, size_t batch, size_t cols, float scale, float shift,
                         uint64_t* out, size_t ldo) {
  const float32x4_t vs = vdupq_n_f32(scale), vh = vdupq_n_f32(shift);
  for (size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * ldx;
    uint64_t* o = out + b * ldo;
    for (size_t j = 0; j < ldo; ++j) o[j] = 0;
    size_t c = 0;
    for (; c + 16 <= cols; c += 16) {
      const uint16_t bits = movemask16(sign4(vld1q_f32(xb + c), vs, vh), sign4(vld1q_f32(xb + c + 4), vs, vh),
                                       sign4(vld1q_f32(xb + c + 8), vs, vh), sign4(vld1q_f32(xb + c + 12), vs, vh));
      o[c / 64] |= uint64_t(bits) << (c % 64);
    }
    for (; c + 4 <= cols; c += 4) o[c / 64] |= uint64_t(movemask4(sign4(vld1q_f32(xb + c), vs, vh))) << (c % 64);
    for (; c < cols; ++c) o[c / 64] |= uint64_t(sign_bit(xb[c], scale, shift)) << (c % 64);
  }
}

// P pixels (P / 4 vectors) from p, channels [c0, c1) of one 64-channel group g: the pixels' words.
template <int P>
inline void hwc_pixels(const float* x, size_t pixels, size_t p, size_t g, size_t c1, float32x4_t vs, float32x4_t vh,
                       uint64_t* out, size_t cw) {
  constexpr int V = P / 4;
  uint32x4_t half[2][V];  // [low / high 32 channels][pixel vector]: bit c % 32 of the pixel's lane
  for (int h = 0; h < 2; ++h) {
    for (int v = 0; v < V; ++v) half[h][v] = vdupq_n_u32(0);
    const size_t lo = g * 64 + h * 32;
    const size_t hi = c1 < lo + 32 ? c1 : lo + 32;
    // from the highest channel down: shift the words left by one and insert the channel's bit at bit 0
    for (size_t c = hi; c-- > lo;)
      for (int v = 0; v < V; ++v)
        half[h][v] = vsliq_n_u32(sign4(vld1q_f32(x + c * pixels + p + 4 * v), vs, vh), half[h][v], 1);
  }
  for (int v = 0; v < V; ++v) {
    uint64_t w[4];
    vst1q_u64(w, vreinterpretq_u64_u32(vzip1q_u32(half[0][v], half[1][v])));  // pixels 0, 1: low | high << 32
    vst1q_u64(w + 2, vreinterpretq_u64_u32(vzip2q_u32(half[0][v], half[1][v])));
    for (size_t l = 0; l < 4; ++l) out[(p + 4 * v + l) * cw + g] = w[l];
  }
}

void pyrt_binarize_hwc__neon(const float* x, size_t batch, size_t channels, size_t pixels, float scale, float shift,
                             uint64_t* out) {
  const size_t cw = (channels + 63) / 64;
  const float32x4_t vs = vdupq_n_f32(scale), vh = vdupq_n_f32(shift);
  for (size_t b = 0; b < batch; ++b, x += channels * pixels, out += pixels * cw) {
    for (size_t g = 0; g < cw; ++g) {
      const size_t c1 = channels < g * 64 + 64 ? channels : g * 64 + 64;
      size_t p = 0;
      for (; p + 8 <= pixels; p += 8) hwc_pixels<8>(x, pixels, p, g, c1, vs, vh, out, cw);
      for (; p + 4 <= pixels; p += 4) hwc_pixels<4>(x, pixels, p, g, c1, vs, vh, out, cw);
      for (; p < pixels; ++p) {
        uint64_t w = 0;
        for (size_t c = g * 64; c < c1; ++c) w |= uint64_t(sign_bit(x[c * pixels + p], scale, shift)) << (c % 64);
        out[p * cw + g] = w;
      }
    }
  }
}

void pyrt_dot_epilogue__neon(const int32_t* m, size_t n, size_t o, const int32_t* kv, const float* alpha,
                             const float* bias, const int32_t* lim2, void* y, size_t ldy) {
  for (size_t i = 0; i < n; ++i) {
    const int32x4_t k = vdupq_n_s32(kv[i]);
    const int32_t* mi = m + i * o;
    // k - 2 m of rows r .. r + 3
    const auto dot = [&](size_t r) { return vsubq_s32(k, vshlq_n_s32(vld1q_s32(mi + r), 1)); };
    size_t r = 0;
    if (lim2) {
      uint64_t* w = static_cast<uint64_t*>(y) + i * ldy;
      for (size_t j = 0; j < ldy; ++j) w[j] = 0;
      for (; r + 16 <= o; r += 16) {
        const uint16_t bits = movemask16(vcgeq_s32(dot(r), vld1q_s32(lim2 + r)),
                                         vcgeq_s32(dot(r + 4), vld1q_s32(lim2 + r + 4)),
                                         vcgeq_s32(dot(r + 8), vld1q_s32(lim2 + r + 8)),
                                         vcgeq_s32(dot(r + 12), vld1q_s32(lim2 + r + 12)));
        w[r / 64] |= uint64_t(bits) << (r % 64);
      }
      for (; r + 4 <= o; r += 4) w[r / 64] |= uint64_t(movemask4(vcgeq_s32(dot(r), vld1q_s32(lim2 + r)))) << (r % 64);
      for (; r < o; ++r) w[r / 64] |= uint64_t(kv[i] - 2 * mi[r] >= lim2[r]) << (r % 64);
      continue;
    }
    float* yi = static_cast<float*>(y) + i * o;
    for (; r + 4 <= o; r += 4)
      vst1q_f32(yi + r, vfmaq_f32(vld1q_f32(bias + r), vcvtq_f32_s32(dot(r)), vld1q_f32(alpha + r)));
    for (; r < o; ++r) yi[r] = std::fma(float(kv[i] - 2 * mi[r]), alpha[r], bias[r]);
  }
}

}  // namespace pyrt::kernels
