#include "kernels/kernels.h"
#include "kernels/ref/ref_kernels.h"

namespace pyrt::kernels::ref {

void csr_f32_spmm(const uint32_t* rowptr, const uint16_t* col16, const uint32_t* col32, const float* val,
                  uint32_t rows, uint32_t cols, const float* x, size_t batch, float* y, const float* bias) {
  for (size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * cols;
    float* yb = y + b * rows;
    for (uint32_t r = 0; r < rows; ++r) {
      float acc = 0.0f;
      for (uint32_t j = rowptr[r]; j < rowptr[r + 1]; ++j) {
        const uint32_t c = col16 ? col16[j] : col32[j];
        acc += val[j] * xb[c];
      }
      yb[r] = acc + (bias ? bias[r] : 0.0f);
    }
  }
}

}  // namespace pyrt::kernels::ref

namespace pyrt::kernels {

void pyrt_csr_f32_spmm__ref(const CsrF32& w, const float* x, size_t batch, float* y, const float* bias) {
  ref::csr_f32_spmm(w.ix.rowptr, w.ix.col16, w.ix.col32, w.val, w.ix.rows, w.ix.cols, x, batch, y, bias);
}

}  // namespace pyrt::kernels
