#include "kernels/kernels.h"
#include "kernels/ref/ref_kernels.h"

namespace pyrt::kernels::ref {

void lut_f32_gemm(const uint8_t* idx, const float* lut, uint32_t rows, uint32_t cols, const float* x,
                  size_t batch, float* y, const float* bias) {
  for (size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * cols;
    float* yb = y + b * rows;
    for (uint32_t r = 0; r < rows; ++r) {
      const uint8_t* ir = idx + static_cast<size_t>(r) * cols;
      float acc = 0.0f;
      for (uint32_t c = 0; c < cols; ++c) acc += lut[ir[c]] * xb[c];
      yb[r] = acc + (bias ? bias[r] : 0.0f);
    }
  }
}

// Index of column c in a LutBits<bits> row: group c / G (G = 128 / bits columns in 16 bytes), byte
// (c % G) % 16, field (c % G) / 16 of that byte.
static inline uint32_t lutb_index(int bits, const uint8_t* row, uint32_t c) {
  const uint32_t group = 128u / uint32_t(bits), j = c % group;
  const uint8_t byte = row[c / group * 16 + j % 16];
  return (byte >> (j / 16 * uint32_t(bits))) & ((1u << bits) - 1u);
}

void lutb_f32_gemm(int bits, const uint8_t* idx, const float* lut, uint32_t rows, uint32_t cols, const float* x,
                   size_t batch, float* y, const float* bias) {
  const size_t stride = lutb_row_bytes(bits, cols);
  for (size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * cols;
    float* yb = y + b * rows;
    for (uint32_t r = 0; r < rows; ++r) {
      const uint8_t* ir = idx + r * stride;
      float acc = 0.0f;
      for (uint32_t c = 0; c < cols; ++c) acc += lut[lutb_index(bits, ir, c)] * xb[c];
      yb[r] = acc + (bias ? bias[r] : 0.0f);
    }
  }
}

void csr_lut_f32_spmm(const uint32_t* rowptr, const uint16_t* col16, const uint32_t* col32, const uint8_t* idx,
                      const float* lut, uint32_t rows, uint32_t cols, const float* x, size_t batch, float* y,
                      const float* bias) {
  for (size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * cols;
    float* yb = y + b * rows;
    for (uint32_t r = 0; r < rows; ++r) {
      float acc = 0.0f;
      for (uint32_t j = rowptr[r]; j < rowptr[r + 1]; ++j) {
        const uint32_t c = col16 ? col16[j] : col32[j];
        acc += lut[idx[j]] * xb[c];
      }
      yb[r] = acc + (bias ? bias[r] : 0.0f);
    }
  }
}

// Entry e of a CsrLut4 row: group e / 16, byte (e % 16) % 8, high nibble for the upper 8 entries.
void csr_lut4_f32_spmm(const uint32_t* rowptr, const uint16_t* col16, const uint32_t* col32, const uint32_t* goff,
                       const uint8_t* idx, const float* lut, uint32_t rows, uint32_t cols, const float* x,
                       size_t batch, float* y, const float* bias) {
  for (size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * cols;
    float* yb = y + b * rows;
    for (uint32_t r = 0; r < rows; ++r) {
      const uint8_t* ir = idx + size_t(goff[r]) * 8;
      float acc = 0.0f;
      for (uint32_t j = rowptr[r]; j < rowptr[r + 1]; ++j) {
        const uint32_t e = j - rowptr[r], g = e % kCsrLut4Group;
        const uint8_t byte = ir[e / kCsrLut4Group * 8 + g % 8];
        const uint32_t c = col16 ? col16[j] : col32[j];
        acc += lut[g < 8 ? byte & 0x0Fu : byte >> 4] * xb[c];
      }
      yb[r] = acc + (bias ? bias[r] : 0.0f);
    }
  }
}

}  // namespace pyrt::kernels::ref

namespace pyrt::kernels {

void pyrt_lut1_f32_gemm__ref(const Lut1& w, const float* x, size_t batch, float* y, const float* bias) {
  ref::lutb_f32_gemm(1, w.idx, w.lut, w.rows, w.cols, x, batch, y, bias);
}

void pyrt_lut2_f32_gemm__ref(const Lut2& w, const float* x, size_t batch, float* y, const float* bias) {
  ref::lutb_f32_gemm(2, w.idx, w.lut, w.rows, w.cols, x, batch, y, bias);
}

void pyrt_lut4_f32_gemm__ref(const Lut4& w, const float* x, size_t batch, float* y, const float* bias) {
  ref::lutb_f32_gemm(4, w.idx, w.lut, w.rows, w.cols, x, batch, y, bias);
}

void pyrt_lut8_f32_gemm__ref(const Lut8& w, const float* x, size_t batch, float* y, const float* bias) {
  ref::lut_f32_gemm(w.idx, w.lut, w.rows, w.cols, x, batch, y, bias);
}

void pyrt_csr_lut4_f32_spmm__ref(const CsrLut4& w, const float* x, size_t batch, float* y, const float* bias) {
  ref::csr_lut4_f32_spmm(w.ix.rowptr, w.ix.col16, w.ix.col32, w.goff, w.idx, w.lut, w.ix.rows, w.ix.cols, x, batch,
                         y, bias);
}

void pyrt_csr_lut8_f32_spmm__ref(const CsrLut8& w, const float* x, size_t batch, float* y, const float* bias) {
  ref::csr_lut_f32_spmm(w.ix.rowptr, w.ix.col16, w.ix.col32, w.idx, w.lut, w.ix.rows, w.ix.cols, x, batch, y, bias);
}

}  // namespace pyrt::kernels
