// pyruntime: the depthwise int8 convolution, Advanced SIMD (int8_conv.h; the body: int8/int8_dwconv_impl.h,
// whose epilogue is the reference's scalar code). The sums of a block of outputs run 16 at a time: each tap's
// 16 input bytes times its weight with vmull_s8, a second tap's added with vmlal_s8 (|w| <= 127, so two
// products fit int16), widened into 4 int32x4 with vaddw_s16. (The dense conv tile: int8_gemm_neon*.cpp.)
#include <arm_neon.h>

#include "kernels/int8/int8_dwconv_impl.h"

namespace pyrt::kernels {
namespace {

// acc[i] = sum_k w[k] * base[off[k] + i] for i < n rounded up to 16 (acc and the input have the room:
// int8_dwconv_impl.h's + 32 accumulators, kInt8DwSlack readable input bytes).
void dw_block_sums(const int8_t* base, const size_t* off, const int16_t* w, size_t nt, size_t n, int32_t* acc) {
  for (size_t i = 0; i < n; i += 16) {
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
    size_t k = 0;
    for (; k + 2 <= nt; k += 2) {
      const int8x16_t x0 = vld1q_s8(base + off[k] + i), x1 = vld1q_s8(base + off[k + 1] + i);
      const int8x8_t w0 = vdup_n_s8(static_cast<int8_t>(w[k])), w1 = vdup_n_s8(static_cast<int8_t>(w[k + 1]));
      const int16x8_t lo = vmlal_s8(vmull_s8(vget_low_s8(x0), w0), vget_low_s8(x1), w1);
      const int16x8_t hi = vmlal_s8(vmull_s8(vget_high_s8(x0), w0), vget_high_s8(x1), w1);
      a0 = vaddw_s16(a0, vget_low_s16(lo));
      a1 = vaddw_high_s16(a1, lo);
      a2 = vaddw_s16(a2, vget_low_s16(hi));
      a3 = vaddw_high_s16(a3, hi);
    }
    if (k < nt) {
      const int8x16_t x0 = vld1q_s8(base + off[k] + i);
      const int8x8_t w0 = vdup_n_s8(static_cast<int8_t>(w[k]));
      const int16x8_t lo = vmull_s8(vget_low_s8(x0), w0), hi = vmull_s8(vget_high_s8(x0), w0);
      a0 = vaddw_s16(a0, vget_low_s16(lo));
      a1 = vaddw_high_s16(a1, lo);
      a2 = vaddw_s16(a2, vget_low_s16(hi));
      a3 = vaddw_high_s16(a3, hi);
    }
    vst1q_s32(acc + i, a0);
    vst1q_s32(acc + i + 4, a1);
    vst1q_s32(acc + i + 8, a2);
    vst1q_s32(acc + i + 12, a3);
  }
}

}  // namespace

void pyrt_i8_dwconv__neon(const Int8DwPlane& p) { detail::dwconv_plane<dw_block_sums>(p); }

}  // namespace pyrt::kernels
