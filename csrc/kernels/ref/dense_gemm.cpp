#include "kernels/kernels.h"
#include "kernels/ref/ref_kernels.h"

namespace pyrt::kernels::ref {

void f32_gemm(const float* w, uint32_t rows, uint32_t cols, const float* x, size_t batch, float* y,
              const float* bias) {
  for (size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * cols;
    float* yb = y + b * rows;
    for (uint32_t r = 0; r < rows; ++r) {
      const float* wr = w + static_cast<size_t>(r) * cols;
      float acc = 0.0f;
      for (uint32_t c = 0; c < cols; ++c) acc += wr[c] * xb[c];
      yb[r] = acc + (bias ? bias[r] : 0.0f);
    }
  }
}

}  // namespace pyrt::kernels::ref

namespace pyrt::kernels {

void pyrt_f32_gemm__ref(const DenseF32& w, const float* x, size_t batch, float* y, const float* bias) {
  ref::f32_gemm(w.w, w.rows, w.cols, x, batch, y, bias);
}

}  // namespace pyrt::kernels
