// pyruntime: int8 weights in their execution layouts (int8_layouts.h) and the kernels that stream them.
//
// An Int8Weight is built once at load time from an int8 or csr+int8 DecodedTensor and is immutable
// afterwards. gemm() computes, for output rows [r0, r1) of every sample of quantized activations a,
//     acc[b][r] = sum_c w[r][c] * q[b][c]          (exact, int32)
// and writes the epilogue of acc (int8_layouts.h) to y. Every ISA level gives the same bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/aligned.h"
#include "common/tensor.h"
#include "kernels/int8/int8_layouts.h"
#include "kernels/isa.h"

namespace pyrt::kernels {

class Int8Weight {
 public:
  // t: a valid int8 or csr+int8 tensor (its 2-D view: rows = shape[0], cols = the rest).
  static std::unique_ptr<Int8Weight> pack(const DecodedTensor& t);
  virtual ~Int8Weight() = default;

  uint32_t rows() const { return rows_; }
  uint32_t cols() const { return cols_; }
  uint64_t nnz() const { return nnz_; }
  // Row length of the activations the kernels read (cols rounded up to 4, or to 128 for the sparse layout)
  // and the per-row weight scales
  // (padded with zeros to a multiple of 16, as the epilogue reads them).
  uint32_t kp() const { return kp_; }
  const float* wscale() const { return wscale_.data(); }
  uint32_t padded_rows() const { return (rows_ + 15) / 16 * 16; }

  virtual size_t bytes() const = 0;        // of the execution layout one pass streams
  virtual const char* layout() const = 0;  // "i8_r16k4", "i8_p128" or "i8_p128m"
  virtual uint64_t steps() const { return 0; }  // sparse: the layout's steps (16 rows x 4 slots), padding included
  // Rows [r0, r1), r0 a multiple of 16; y + b * ldy + r receives output (b, r). isa must be supported.
  virtual void gemm(Isa isa, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1, void* y,
                    size_t ldy) const = 0;
  // Boundaries 0 = s[0] < ... < s[n] = rows into at most `parts` pieces of about equal cost (nonzeros),
  // every inner boundary a multiple of 16.
  std::vector<uint32_t> row_splits(unsigned parts) const;

 protected:
  Int8Weight(const DecodedTensor& t, uint32_t k_align);
  virtual uint64_t cost_before(uint32_t row) const { return uint64_t(row) * cols_; }

  uint32_t rows_, cols_, kp_;
  uint64_t nnz_;
  AlignedArray<float> wscale_;
};

}  // namespace pyrt::kernels
