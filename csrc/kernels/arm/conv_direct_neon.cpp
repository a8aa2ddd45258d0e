// pyruntime: direct convolution and direct_lanes at NEON (conv/direct.h): the ISA-neutral tiles of
// conv/direct_tiles.h and conv/direct_lanes_tiles.h over a 4-lane float32x4_t traits class. NEON has no
// masked loads or stores: a mask here is a lane range [lo, hi) (the tiles only ever ask for ranges), and a
// partial vector goes through a 4-float buffer lane by lane, so no byte outside the range is read or
// written (the tiles need that at the edges of input rows and for the partial sums in y; their inner loops
// use plain loads). min / max are compare + select with the operand order of OutputClamp (vminq_f32 would
// turn a -0 under relu into +0).
#include <arm_neon.h>

#include <algorithm>

#include "kernels/conv/direct_lanes_tiles.h"
#include "kernels/conv/direct_tiles.h"

namespace pyrt::kernels {
namespace {

struct Q {
  using vec = float32x4_t;
  struct mask {
    int lo, hi;  // lanes [lo, hi)
  };
  static constexpr int kLanes = 4;
  static constexpr bool kCheapMasks = false;
  static mask tail(size_t n) { return {0, int(n > 4 ? 4 : n)}; }
  static mask range(int64_t lo, int64_t hi) {
    return {int(std::clamp<int64_t>(lo, 0, 4)), int(std::clamp<int64_t>(hi, 0, 4))};
  }
  static vec zero() { return vdupq_n_f32(0.0f); }
  static vec set1(float f) { return vdupq_n_f32(f); }
  static vec load(const float* p) { return vld1q_f32(p); }
  static vec load(const float* p, mask m) {
    if (m.lo == 0 && m.hi == 4) return vld1q_f32(p);
    float buf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = m.lo; i < m.hi; ++i) buf[i] = p[i];
    return vld1q_f32(buf);
  }
  static vec fma(vec a, vec b, vec c) { return vfmaq_f32(c, a, b); }
  static vec min(vec a, vec b) { return vbslq_f32(vcltq_f32(a, b), a, b); }  // a < b ? a : b
  static vec max(vec a, vec b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }  // a > b ? a : b
  static void store(float* p, vec v) { vst1q_f32(p, v); }
  static void store(float* p, vec v, mask m) {
    float buf[4];
    vst1q_f32(buf, v);
    for (int i = m.lo; i < m.hi; ++i) p[i] = buf[i];
  }
  static void deinterleave2(vec a, vec b, vec* even, vec* odd) {
    *even = vuzp1q_f32(a, b);  // [a0 a2 b0 b2]
    *odd = vuzp2q_f32(a, b);   // [a1 a3 b1 b3]
  }
};

}  // namespace

void pyrt_conv_direct__neon(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                            uint32_t oy0, uint32_t oy1) {
  direct_conv<Q>(L, x, xp, y, bias, oy0, oy1);
}

void pyrt_conv_lanes__neon(const DirectConvLayout& L, const float* x, float* xp, float* y, const float*,
                           uint32_t oy0, uint32_t oy1) {
  lanes_conv<Q>(L, x, xp, y, oy0, oy1);
}

}  // namespace pyrt::kernels
