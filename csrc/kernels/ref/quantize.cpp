#include "kernels/ref/quantize.h"

#include <cstring>
#include <limits>

namespace pyrt::kernels::ref {

void quantize_s8(const float* x, size_t n, float inv_scale, int8_t* q) {
  for (size_t i = 0; i < n; ++i) q[i] = quantize_one(x[i], inv_scale);
}

void quantize_rows(const float* x, size_t batch, size_t cols, size_t ldq, int8_t* q, float* xs) {
  for (size_t b = 0; b < batch; ++b, x += cols, q += ldq) {
    float m = 0.0f;
    bool finite = true;
    for (size_t i = 0; i < cols; ++i) {
      const float a = std::fabs(x[i]);
      finite &= a <= std::numeric_limits<float>::max();  // false for NaN and infinity
      m = a > m ? a : m;
    }
    std::memset(q + cols, 0, ldq - cols);
    if (!finite || m == 0.0f) {
      xs[b] = finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      std::memset(q, 0, cols);
      continue;
    }
    xs[b] = m / 127.0f;
    quantize_s8(x, cols, 127.0f / m, q);
  }
}

void dequantize_s8(const int8_t* q, size_t n, float scale, float* x) {
  for (size_t i = 0; i < n; ++i) x[i] = scale * static_cast<float>(q[i]);
}

void requantize_s8(const int8_t* q, size_t n, float scale, float inv_scale, int8_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = quantize_one(scale * static_cast<float>(q[i]), inv_scale);
}

}  // namespace pyrt::kernels::ref
