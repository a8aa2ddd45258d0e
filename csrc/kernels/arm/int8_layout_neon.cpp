// pyruntime: the data movement of the int8 convolutions (int8_conv.h), Advanced SIMD: the depthwise input's
// phase layout (strides 2, 3 and 4 split a row with the de-interleaving loads vld2q / vld3q / vld4q_s8, 16
// output columns per phase at a time), the transpose of a conv tile into channel planes by 4 x 4 blocks of
// 4-byte elements (vtrn1q / vtrn2q on 32-bit lanes, then on 64-bit halves), and the channels-last copy by
// 16 x 16 bytes in registers (four rounds of "interleave row i with row i + 8", vzip1q / vzip2q_s8, as the
// AVX2 twin). Pure copies: every level gives the reference's bytes.
#include <arm_neon.h>

#include <cstring>

#include "kernels/int8/int8_conv.h"

namespace pyrt::kernels {
namespace {

template <int S>
struct Split;  // src: S * 16 bytes -> the S streams of every S-th byte, 16 each
template <>
struct Split<2> {
  static int8x16x2_t load(const int8_t* p) { return vld2q_s8(p); }
};
template <>
struct Split<3> {
  static int8x16x3_t load(const int8_t* p) { return vld3q_s8(p); }
};
template <>
struct Split<4> {
  static int8x16x4_t load(const int8_t* p) { return vld4q_s8(p); }
};

// One input row into its S phases: input column ix = j S + r lands in the phase of padded column ix + pl,
// at (ix + pl) / S, i.e. stream r goes to out[r] + j.
template <int S>
void split_row(const int8_t* src, size_t in_w, int8_t* row, size_t sub_bytes, size_t pl) {
  int8_t* out[S];
  for (size_t r = 0; r < S; ++r) out[r] = row + ((r + pl) % S) * sub_bytes + (r + pl) / S;
  size_t j = 0;
  for (; (j + 16) * S <= in_w; j += 16) {
    const auto v = Split<S>::load(src + j * S);
    for (size_t r = 0; r < S; ++r) vst1q_s8(out[r] + j, v.val[r]);
  }
  for (size_t ix = j * S; ix < in_w; ++ix) out[ix % S][ix / S] = src[ix];
}

}  // namespace

void pyrt_i8_dw_phases__neon(const Int8DwPhases& f, const int8_t* src, int8_t* dst) {
  const size_t sh = f.stride_h, sw = f.stride_w, pl = f.pad_left;
  std::memset(dst, 0, f.sub_bytes * sh * sw);
  for (size_t iy = 0; iy < f.in_h; ++iy, src += f.in_w) {
    const size_t y = iy + f.pad_top;
    int8_t* row = dst + (y % sh) * sw * f.sub_bytes + (y / sh) * f.phase_len;
    switch (sw) {
      case 1: std::memcpy(row + pl, src, f.in_w); break;
      case 2: split_row<2>(src, f.in_w, row, f.sub_bytes, pl); break;
      case 3: split_row<3>(src, f.in_w, row, f.sub_bytes, pl); break;
      case 4: split_row<4>(src, f.in_w, row, f.sub_bytes, pl); break;
      default:
        for (size_t ix = 0; ix < f.in_w; ++ix) {
          const size_t x = ix + pl;
          row[(x % sw) * f.sub_bytes + x / sw] = src[ix];
        }
    }
  }
}

void pyrt_transpose_planes__neon(const float* tile, size_t n, size_t og, float* y, size_t plane) {
  size_t o0 = 0;
  for (; o0 + 4 <= og; o0 += 4) {
    size_t i0 = 0;
    for (; i0 + 4 <= n; i0 += 4) {  // r[k]: the 4 channels of position i0 + k; c[j]: channel o0 + j
      const float32x4_t r0 = vld1q_f32(tile + i0 * og + o0), r1 = vld1q_f32(tile + (i0 + 1) * og + o0);
      const float32x4_t r2 = vld1q_f32(tile + (i0 + 2) * og + o0), r3 = vld1q_f32(tile + (i0 + 3) * og + o0);
      // t0 = r0[0] r1[0] r0[2] r1[2], t1 = r0[1] r1[1] r0[3] r1[3] (t2, t3 the same of r2, r3)
      const float64x2_t t0 = vreinterpretq_f64_f32(vtrn1q_f32(r0, r1));
      const float64x2_t t1 = vreinterpretq_f64_f32(vtrn2q_f32(r0, r1));
      const float64x2_t t2 = vreinterpretq_f64_f32(vtrn1q_f32(r2, r3));
      const float64x2_t t3 = vreinterpretq_f64_f32(vtrn2q_f32(r2, r3));
      vst1q_f32(y + o0 * plane + i0, vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)));  // (pairs of lanes: bit moves)
      vst1q_f32(y + (o0 + 1) * plane + i0, vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)));
      vst1q_f32(y + (o0 + 2) * plane + i0, vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)));
      vst1q_f32(y + (o0 + 3) * plane + i0, vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)));
    }
    for (; i0 < n; ++i0)
      for (size_t o = o0; o < o0 + 4; ++o) std::memcpy(y + o * plane + i0, tile + i0 * og + o, 4);
  }
  for (; o0 < og; ++o0)
    for (size_t i = 0; i < n; ++i) std::memcpy(y + o0 * plane + i, tile + i * og + o0, 4);
}

void pyrt_i8_channels_last__neon(const int8_t* src, size_t channels, size_t h, size_t w, int8_t* dst, size_t dst_row,
                                 size_t dst_stride) {
  const size_t plane = h * w;
  for (size_t y = 0; y < h; ++y) {
    size_t c0 = 0;
    for (; c0 + 16 <= channels; c0 += 16) {
      const int8_t* s = src + c0 * plane + y * w;
      int8_t* d = dst + y * dst_row + c0;
      size_t x0 = 0;
      for (; x0 + 16 <= w; x0 += 16) {
        // r[k]: channel c0 + k, columns x0..x0 + 15; after four rounds r[k]: column x0 + k, channels c0..c0 + 15
        int8x16_t r[16], t[16];
        for (int k = 0; k < 16; ++k) r[k] = vld1q_s8(s + k * plane + x0);
        for (int round = 0; round < 4; ++round) {
          for (int k = 0; k < 8; ++k) {
            t[2 * k] = vzip1q_s8(r[k], r[k + 8]);
            t[2 * k + 1] = vzip2q_s8(r[k], r[k + 8]);
          }
          for (int k = 0; k < 16; ++k) r[k] = t[k];
        }
        for (int k = 0; k < 16; ++k) vst1q_s8(d + (x0 + k) * dst_stride, r[k]);
      }
      for (size_t c = 0; c < 16; ++c)
        for (size_t x = x0; x < w; ++x) d[x * dst_stride + c] = s[c * plane + x];
    }
    for (size_t c = c0; c < channels; ++c) {
      const int8_t* s = src + c * plane + y * w;
      int8_t* d = dst + y * dst_row + c;
      for (size_t x = 0; x < w; ++x) d[x * dst_stride] = s[x];
    }
  }
}

}  // namespace pyrt::kernels
