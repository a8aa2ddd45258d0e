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
// x[i] = min(max(x[i], lo), hi); NaN stays NaN.
void clamp_f32(float* x, size_t n, float lo, float hi);
// y[i] = a[i] + b[i] (y may be a or b).
void add_f32(const float* a, const float* b, float* y, size_t n);

// 2-D pools over [channels, in_h, in_w] planes (NCHW, one sample after another). Window (oy, ox) covers
// input rows oy * stride_h - pad_top + [0, kernel_h) (columns likewise), clipped to the input; the pad
// on each side is smaller than the kernel, so no window is empty. avg divides by the clipped window, or
// with count_include_pad by the window clipped to the padded extent [-pad_top, in_h + pad_bottom) (as
// torch). Global average pooling is an avg pool whose kernel is the whole plane.
struct Pool2dGeometry {
  uint32_t channels = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  uint32_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
  uint32_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool count_include_pad = false;
};
void max_pool2d_f32(const Pool2dGeometry& g, const float* x, size_t batch, float* y);
// The same over int8 values of one scale (the max of scale * q is scale * the max of q: exact).
void max_pool2d_s8(const Pool2dGeometry& g, const int8_t* x, size_t batch, int8_t* y);
// Max of +-1 signs, channels-last bits (b1c: a pixel's channels in ceil(channels / 64) words): the OR of the
// window's pixels' words (a +1 anywhere in the window gives +1).
void max_pool2d_b1c(const Pool2dGeometry& g, const uint64_t* x, size_t batch, uint64_t* y);
void avg_pool2d_f32(const Pool2dGeometry& g, const float* x, size_t batch, float* y);
// y[b][c] = mean of plane c of sample b (planes of `plane` floats).
void global_avg_pool_f32(const float* x, size_t batch, uint32_t channels, size_t plane, float* y);

}  // namespace pyrt::kernels::ref
