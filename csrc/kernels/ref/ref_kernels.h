// pyruntime: scalar reference kernels. Always compiled, selectable at run time (PYRT_ISA=ref), and the
// oracle every optimized kernel is tested against. Plain loops, no intrinsics, f32 accumulation in
// natural order.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pyrt::kernels::ref {

// y[b][r] = sum_c w[r*cols + c] * x[b][c] + bias[r]
void f32_gemm(const float* w, uint32_t rows, uint32_t cols, const float* x, size_t batch, float* y,
              const float* bias);

// CSR weight: for row r, entries j in [rowptr[r], rowptr[r+1]) at column col[j] with value val[j].
void csr_f32_spmm(const uint32_t* rowptr, const uint16_t* col16, const uint32_t* col32, const float* val,
                  uint32_t rows, uint32_t cols, const float* x, size_t batch, float* y, const float* bias);

// Codebook weight: W[r][c] = lut[idx[r*cols + c]], one byte per index.
void lut_f32_gemm(const uint8_t* idx, const float* lut, uint32_t rows, uint32_t cols, const float* x,
                  size_t batch, float* y, const float* bias);

// Codebook weight in the packed execution layout kernels::LutBits<bits> (bits = 1, 2, 4; 16-byte groups).
void lutb_f32_gemm(int bits, const uint8_t* idx, const float* lut, uint32_t rows, uint32_t cols, const float* x,
                   size_t batch, float* y, const float* bias);

// CSR whose values are codebook indices: W[r][col[j]] = lut[idx[j]].
void csr_lut_f32_spmm(const uint32_t* rowptr, const uint16_t* col16, const uint32_t* col32, const uint8_t* idx,
                      const float* lut, uint32_t rows, uint32_t cols, const float* x, size_t batch, float* y,
                      const float* bias);

// CSR + codebook in the 4-bit execution layout kernels::CsrLut4 (16-entry groups at 8 * goff[r] bytes).
void csr_lut4_f32_spmm(const uint32_t* rowptr, const uint16_t* col16, const uint32_t* col32, const uint32_t* goff,
                       const uint8_t* idx, const float* lut, uint32_t rows, uint32_t cols, const float* x,
                       size_t batch, float* y, const float* bias);

// Activations over n contiguous floats / softmax over each row of a [rows x cols] matrix.
void relu_f32(float* x, size_t n);
void softmax_f32(float* x, size_t rows, size_t cols);

}  // namespace pyrt::kernels::ref
