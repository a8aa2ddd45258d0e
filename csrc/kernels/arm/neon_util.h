// pyruntime: small aarch64 Advanced SIMD helpers shared by the arm/*_neon.cpp kernels (and usable from the
// *_neondot.cpp files, compiled with a superset of the flags): lane masks, zero-padded tails, horizontal
// sums, scalar "gathers" and the codebook decoders that turn 16 byte indices into 16 floats.
//
// Everything here has internal linkage (anonymous namespace), as in the x86 helper headers: an ordinary
// inline function included from a baseline file and from a -march=armv8.2-a+dotprod file would be one ODR
// entity, and the linker could keep the copy compiled for the richer architecture.
#pragma once

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

namespace pyrt::kernels::neon {
namespace {  // internal linkage: see above

// All-ones in 32-bit lanes [0, n), n clamped to 0..4: a 4-lane window into four ~0 followed by four 0.
inline uint32x4_t lane_mask(ptrdiff_t n) {
  alignas(16) static const uint32_t kWindow[8] = {~0u, ~0u, ~0u, ~0u, 0, 0, 0, 0};
  const ptrdiff_t m = n < 0 ? 0 : n > 4 ? 4 : n;
  return vld1q_u32(kWindow + 4 - m);
}

// v with lanes >= n zeroed (bitwise, so an infinite or NaN value there is cleared too).
inline float32x4_t keep_lanes(float32x4_t v, ptrdiff_t n) {
  return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), lane_mask(n)));
}

// buf[0, len) = x[0, n) followed by zeros (n <= len): a tail of caller memory that vector loads may read
// whole without touching x past its end.
inline void copy_tail(const float* x, size_t n, float* buf, size_t len) {
  size_t i = 0;
  for (; i < n; ++i) buf[i] = x[i];
  for (; i < len; ++i) buf[i] = 0.0f;
}

// Sum of the lanes of a + b (vaddvq adds pairwise: (l0 + l1) + (l2 + l3)).
inline float hsum2(float32x4_t a, float32x4_t b) { return vaddvq_f32(vaddq_f32(a, b)); }

// [x[c[0]], x[c[1]], x[c[2]], x[c[3]]] from four scalar loads into the lanes.
template <class Col>
inline float32x4_t gather4(const float* x, const Col* c) {
  float32x4_t v = vld1q_dup_f32(x + c[0]);
  v = vld1q_lane_f32(x + c[1], v, 1);
  v = vld1q_lane_f32(x + c[2], v, 2);
  return vld1q_lane_f32(x + c[3], v, 3);
}

// ---- codebook decoders: 16 byte indices -> 16 floats w[0..3] (lane j of w[v] = lut[idx[4 v + j]]) ----
// The table is held as four byte planes (plane b, lane i = byte b of lut[i], little-endian), which vld4q_u8
// de-interleaves straight from the float table. tbl looks up byte b of every index in plane b, and two
// levels of zips put the four bytes of each float back together. An index past the table (>= 16 N)
// gives 0.0f (tbl returns 0 for out-of-range indices). Tables hold 256 floats (zero-padded), so loading
// 64 of them never reads past the table.

// planes b0..b3 (16 floats, byte-sliced) -> w[0..3]: zip bytes into 16-bit halves, halves into floats.
inline void interleave_planes(uint8x16_t b0, uint8x16_t b1, uint8x16_t b2, uint8x16_t b3, float32x4_t (&w)[4]) {
  const uint16x8_t lo01 = vreinterpretq_u16_u8(vzip1q_u8(b0, b1));  // floats 0..7, low halves
  const uint16x8_t hi01 = vreinterpretq_u16_u8(vzip2q_u8(b0, b1));  // floats 8..15, low halves
  const uint16x8_t lo23 = vreinterpretq_u16_u8(vzip1q_u8(b2, b3));  // floats 0..7, high halves
  const uint16x8_t hi23 = vreinterpretq_u16_u8(vzip2q_u8(b2, b3));
  w[0] = vreinterpretq_f32_u16(vzip1q_u16(lo01, lo23));
  w[1] = vreinterpretq_f32_u16(vzip2q_u16(lo01, lo23));
  w[2] = vreinterpretq_f32_u16(vzip1q_u16(hi01, hi23));
  w[3] = vreinterpretq_f32_u16(vzip2q_u16(hi01, hi23));
}

// k <= 16: one register per plane, vqtbl1q_u8.
struct Tbl16 {
  static constexpr int kRegs = 4;
  uint8x16x4_t p;  // p.val[b]: plane b
  explicit Tbl16(const float* lut) : p(vld4q_u8(reinterpret_cast<const uint8_t*>(lut))) {}
  void operator()(uint8x16_t i, float32x4_t (&w)[4]) const {
    interleave_planes(vqtbl1q_u8(p.val[0], i), vqtbl1q_u8(p.val[1], i), vqtbl1q_u8(p.val[2], i),
                      vqtbl1q_u8(p.val[3], i), w);
  }
};

// k <= 32: two registers per plane, vqtbl2q_u8.
struct Tbl32 {
  static constexpr int kRegs = 8;
  uint8x16x2_t p[4];
  explicit Tbl32(const float* lut) {
    const uint8x16x4_t a = vld4q_u8(reinterpret_cast<const uint8_t*>(lut));       // entries 0..15
    const uint8x16x4_t b = vld4q_u8(reinterpret_cast<const uint8_t*>(lut + 16));  // entries 16..31
    for (int k = 0; k < 4; ++k) p[k] = {{a.val[k], b.val[k]}};
  }
  void operator()(uint8x16_t i, float32x4_t (&w)[4]) const {
    interleave_planes(vqtbl2q_u8(p[0], i), vqtbl2q_u8(p[1], i), vqtbl2q_u8(p[2], i), vqtbl2q_u8(p[3], i), w);
  }
};

// k <= 64: four registers per plane, vqtbl4q_u8 (16 table registers: callers keep their tiles small).
struct Tbl64 {
  static constexpr int kRegs = 16;
  uint8x16x4_t p[4];
  explicit Tbl64(const float* lut) {
    uint8x16x4_t q[4];
    for (int k = 0; k < 4; ++k) q[k] = vld4q_u8(reinterpret_cast<const uint8_t*>(lut + 16 * k));
    for (int b = 0; b < 4; ++b) p[b] = {{q[0].val[b], q[1].val[b], q[2].val[b], q[3].val[b]}};
  }
  void operator()(uint8x16_t i, float32x4_t (&w)[4]) const {
    interleave_planes(vqtbl4q_u8(p[0], i), vqtbl4q_u8(p[1], i), vqtbl4q_u8(p[2], i), vqtbl4q_u8(p[3], i), w);
  }
};

// any k <= 256: sixteen scalar loads from the (L1-resident) table. Every index byte is a valid entry.
struct TblScalar {
  static constexpr int kRegs = 0;
  const float* lut;
  explicit TblScalar(const float* l) : lut(l) {}
  void operator()(uint8x16_t i, float32x4_t (&w)[4]) const {
    alignas(16) uint8_t b[16];
    vst1q_u8(b, i);
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) w[v] = gather4(lut, b + 4 * v);
  }
};

}  // namespace
}  // namespace pyrt::kernels::neon
