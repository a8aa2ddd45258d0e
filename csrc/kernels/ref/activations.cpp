#include <cmath>

#include "kernels/ref/ref_kernels.h"

namespace pyrt::kernels::ref {

void relu_f32(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = x[i] < 0.0f ? 0.0f : x[i];  // NaN stays NaN (as torch)
}

void softmax_f32(float* x, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    float m = xr[0];
    for (size_t c = 1; c < cols; ++c) m = xr[c] > m ? xr[c] : m;
    float s = 0.0f;
    for (size_t c = 0; c < cols; ++c) {
      xr[c] = std::exp(xr[c] - m);
      s += xr[c];
    }
    const float inv = 1.0f / s;
    for (size_t c = 0; c < cols; ++c) xr[c] *= inv;
  }
}

void clamp_f32(float* x, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; ++i) x[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]);
}

void add_f32(const float* a, const float* b, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

}  // namespace pyrt::kernels::ref
