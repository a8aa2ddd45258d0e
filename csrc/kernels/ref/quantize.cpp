#include "kernels/ref/quantize.h"

namespace pyrt::kernels::ref {

void quantize_s8(const float* x, size_t n, float inv_scale, int8_t* q) {
  for (size_t i = 0; i < n; ++i) q[i] = quantize_one(x[i], inv_scale);
}

void dequantize_s8(const int8_t* q, size_t n, float scale, float* x) {
  for (size_t i = 0; i < n; ++i) x[i] = scale * static_cast<float>(q[i]);
}

void requantize_s8(const int8_t* q, size_t n, float scale, float inv_scale, int8_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = quantize_one(scale * static_cast<float>(q[i]), inv_scale);
}

}  // namespace pyrt::kernels::ref
