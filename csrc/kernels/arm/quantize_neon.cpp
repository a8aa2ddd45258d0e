// pyruntime: dynamic and static quantization of activations, Advanced SIMD (the definition:
// kernels/ref/quantize.h). The row's max |x| is exact in any order, the scale and its reciprocal are computed
// as the reference does, and each element is multiplied, NaN-masked, clamped to +-127 and rounded half to even
// by fcvtns (vcvtnq_s32_f32): the reference's bytes. 16 floats per step, narrowed 32 -> 16 -> 8 bits.
#include <arm_neon.h>

#include <cstring>
#include <limits>

#include "kernels/int8/int8_layouts.h"

namespace pyrt::kernels {
namespace {

// quantize(x[0..15] * inv) into 16 bytes; the products of NaN give 0.
inline void quantize16(const float* x, float32x4_t inv, int8_t* q) {
  const float32x4_t lo = vdupq_n_f32(-127.0f), hi = vdupq_n_f32(127.0f);
  int16x4_t h[4];
  for (int k = 0; k < 4; ++k) {
    const float32x4_t p = vmulq_f32(vld1q_f32(x + 4 * k), inv);
    float32x4_t v = vminq_f32(vmaxq_f32(p, lo), hi);
    v = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), vceqq_f32(p, p)));  // NaN -> +0
    h[k] = vmovn_s32(vcvtnq_s32_f32(v));  // half to even, in -127..127
  }
  vst1q_s8(q, vcombine_s8(vmovn_s16(vcombine_s16(h[0], h[1])), vmovn_s16(vcombine_s16(h[2], h[3]))));
}

}  // namespace

void pyrt_quantize_s8__neon(const float* x, size_t n, float inv_scale, int8_t* q) {
  const float32x4_t inv = vdupq_n_f32(inv_scale);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) quantize16(x + i, inv, q + i);
  for (; i < n; ++i) q[i] = ref::quantize_one(x[i], inv_scale);
}

void pyrt_quantize_rows__neon(const float* x, size_t batch, size_t cols, size_t ldq, int8_t* q, float* xs) {
  const float32x4_t fmax = vdupq_n_f32(std::numeric_limits<float>::max());
  for (size_t b = 0; b < batch; ++b, x += cols, q += ldq) {
    float32x4_t m0 = vdupq_n_f32(0.0f), m1 = m0;
    uint32x4_t finite = vdupq_n_u32(~0u);
    size_t i = 0;
    for (; i + 8 <= cols; i += 8) {
      const float32x4_t a0 = vabsq_f32(vld1q_f32(x + i)), a1 = vabsq_f32(vld1q_f32(x + i + 4));
      finite = vandq_u32(finite, vandq_u32(vcleq_f32(a0, fmax), vcleq_f32(a1, fmax)));  // false: NaN, inf
      m0 = vmaxq_f32(m0, a0);
      m1 = vmaxq_f32(m1, a1);
    }
    float mx = vmaxvq_f32(vmaxq_f32(m0, m1));  // a NaN here means !ok below
    bool ok = vminvq_u32(finite) != 0;
    for (; i < cols; ++i) {
      const float a = std::fabs(x[i]);
      ok &= a <= std::numeric_limits<float>::max();
      mx = a > mx ? a : mx;
    }
    std::memset(q + cols, 0, ldq - cols);
    if (!ok || mx == 0.0f) {
      xs[b] = ok ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      std::memset(q, 0, cols);
      continue;
    }
    xs[b] = mx / 127.0f;
    const float inv_scale = 127.0f / mx;
    const float32x4_t inv = vdupq_n_f32(inv_scale);
    for (i = 0; i + 16 <= cols; i += 16) quantize16(x + i, inv, q + i);
    for (; i < cols; ++i) q[i] = ref::quantize_one(x[i], inv_scale);
  }
}

}  // namespace pyrt::kernels
