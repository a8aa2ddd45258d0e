// pyruntime: the quantization arithmetic of int8 values (docs/RUNTIME.md "int8 numerics"), the definition
// every int8 kernel follows bit for bit.
//
//   quantize:    q = clamp(round_half_even(x * inv_scale), -127, 127), NaN -> 0
//   dequantize:  x = scale * q
//   requantize:  q' = quantize(scale * q, inv_scale')
//
// inv_scale is 1 / scale computed once in f32 by the caller (a multiply, not a divide, per element).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace pyrt::kernels::ref {

// Round half to even of |v| <= 2^22 without a libm call: adding and subtracting 1.5 * 2^23 leaves v rounded
// to an integer by the FPU's rounding (to nearest, ties to even), as cvtps2dq rounds in the SIMD kernels.
// IEEE arithmetic (no -ffast-math, which would fold it to v; the build never uses it).
inline float round_half_even(float v) {
  constexpr float kMagic = 12582912.0f;
  return (v + kMagic) - kMagic;
}

inline int8_t quantize_one(float x, float inv_scale) {
  float v = x * inv_scale;
  if (v != v) return 0;
  v = std::min(std::max(v, -127.0f), 127.0f);
  return static_cast<int8_t>(round_half_even(v));
}

void quantize_s8(const float* x, size_t n, float inv_scale, int8_t* q);

// Dynamic quantization of `batch` rows of `cols` floats (row b at x + b * cols) into rows of ldq >= cols int8
// (zeros from cols to ldq), one scale per row: with m = max |x| of the row,
//   xs = m / 127 and q = quantize(x, 127 / m)      (m > 0 and finite)
//   xs = 0 and q = 0                               (m = 0: the layer gives its bias)
//   xs = NaN and q = 0                             (a NaN or an infinity in the row: its outputs are NaN)
void quantize_rows(const float* x, size_t batch, size_t cols, size_t ldq, int8_t* q, float* xs);
void dequantize_s8(const int8_t* q, size_t n, float scale, float* x);
void requantize_s8(const int8_t* q, size_t n, float scale, float inv_scale, int8_t* out);

}  // namespace pyrt::kernels::ref
