// pyruntime: execution layouts of linear weights and the kernels that stream them.
//
// A PackedWeight is built once at load time from a DecodedTensor (pack()) and is immutable afterwards,
// so one model can run from many threads. Its gemm() computes, for a weight W of shape [rows x cols],
//     y[b][r] = sum_c W[r][c] * x[b][c] + bias[r]        (bias may be null)
// with x [batch x cols] and y [batch x rows], both row-major, at the requested ISA level. Every level
// works on the same execution layout, so PYRT_ISA=ref runs a loaded model through the scalar oracles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/tensor.h"
#include "kernels/isa.h"

namespace pyrt::kernels {

class PackedWeight {
 public:
  virtual ~PackedWeight() = default;

  Encoding encoding() const { return encoding_; }
  uint32_t rows() const { return rows_; }
  uint32_t cols() const { return cols_; }
  uint64_t nnz() const { return nnz_; }

  // Bytes of the execution layout that one pass over the weight streams (indices, values, tables).
  virtual size_t bytes() const = 0;

  // Name of the execution layout (kernels/kernels.h): "dense_f32", "csr_f32", "lut4", "lut8", "csr_lut4",
  // "csr_lut8"; the encoding's name for a layout that does not say.
  virtual const char* layout() const { return encoding_name(encoding_); }

  // True when the weights are read in place from the model file's memory (a mapped file), not copied.
  virtual bool in_place() const { return false; }

  // isa must be supported (isa_supported); a level without a dedicated kernel for this layout runs the
  // next lower one. Single-threaded; may use a per-thread scratch buffer (allocated on a thread's first
  // batched call, reused afterwards).
  virtual void gemm(Isa isa, const float* x, size_t batch, float* y, const float* bias) const = 0;
  void gemm(const float* x, size_t batch, float* y, const float* bias) const {
    gemm(active_isa(), x, batch, y, bias);
  }

  // gemm() restricted to output rows [r0, r1): y[b][r - r0] = W[r] . x[b] + bias[r] for those rows only,
  // y being a [batch x (r1 - r0)] block (so at batch 1, y + r0 of the whole output) and bias indexed by
  // absolute row. The same kernel on a view of the rows: every output is bit-identical to gemm()'s at the
  // same batch (row_splits keeps register tiles of rows whole). Threads split a layer this way.
  virtual void gemm_rows(Isa isa, const float* x, size_t batch, float* y, const float* bias, uint32_t r0,
                         uint32_t r1) const = 0;

  // Writes the cols() weights of row r (r < rows()) to out, zeros for pruned entries. For the scalar
  // oracles only (the conv reference decodes one row at a time instead of inflating W); not a hot path.
  virtual void decode_row(uint32_t r, float* out) const = 0;

  // Row boundaries 0 = b[0] < b[1] < ... < b[n] = rows splitting the work into at most `parts` pieces
  // of about equal cost: nonzeros for the sparse layouts (split at any row), rows otherwise (boundaries
  // multiples of `align`, so register tiles of rows stay whole).
  virtual std::vector<uint32_t> row_splits(unsigned parts, uint32_t align = 16) const;

 protected:
  PackedWeight(Encoding e, uint32_t rows, uint32_t cols, uint64_t nnz)
      : encoding_(e), rows_(rows), cols_(cols), nnz_(nnz) {}

 private:
  Encoding encoding_;
  uint32_t rows_, cols_;
  uint64_t nnz_;
};

// Builds the execution layout for a validated 2-D view of `t` (rows = shape[0], cols = the rest).
// in_place: a dense tensor with mapped, 64-byte aligned values (mapped_values) keeps pointing at them (the caller
// keeps that memory alive as long as the PackedWeight); otherwise every layout owns its memory.
std::unique_ptr<PackedWeight> pack(const DecodedTensor& t, bool in_place = false);

}  // namespace pyrt::kernels
