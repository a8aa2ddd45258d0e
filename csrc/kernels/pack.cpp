// pyruntime: DecodedTensor -> execution layout, one class per weight encoding. Each gemm() dispatches on
// the ISA level; levels without a dedicated kernel fall back to the next lower one.
#include <algorithm>
#include <cstring>

#include "common/aligned.h"
#include "common/error.h"
#include "kernels/packed_weight.h"
#include "kernels/ref/ref_kernels.h"

namespace pyrt::kernels {
namespace {

class DenseWeight final : public PackedWeight {
 public:
  explicit DenseWeight(const DecodedTensor& t)
      : PackedWeight(t.encoding, uint32_t(t.rows()), uint32_t(t.cols()), t.numel()), w_(t.numel()) {
    std::memcpy(w_.data(), t.values.data(), t.values.size() * sizeof(float));
  }
  size_t bytes() const override { return w_.bytes(); }
  void gemm(Isa isa, const float* x, size_t batch, float* y, const float* bias) const override {
    ref::f32_gemm(w_.data(), rows(), cols(), x, batch, y, bias);
  }

 private:
  AlignedArray<float> w_;
};

// Shared by csr and csr+codebook: row pointers and column indices, 16-bit when cols <= 65536.
struct CsrIndex {
  AlignedArray<uint32_t> rowptr;
  AlignedArray<uint16_t> col16;
  AlignedArray<uint32_t> col32;

  explicit CsrIndex(const DecodedTensor& t) : rowptr(t.rowptr.size()) {
    std::memcpy(rowptr.data(), t.rowptr.data(), t.rowptr.size() * sizeof(uint32_t));
    if (t.cols() <= 65536) {
      col16.resize(t.colidx.size());
      for (size_t j = 0; j < t.colidx.size(); ++j) col16[j] = static_cast<uint16_t>(t.colidx[j]);
    } else {
      col32.resize(t.colidx.size());
      std::memcpy(col32.data(), t.colidx.data(), t.colidx.size() * sizeof(uint32_t));
    }
  }
  const uint16_t* c16() const { return col16.size() ? col16.data() : nullptr; }
  const uint32_t* c32() const { return col32.size() ? col32.data() : nullptr; }
  size_t bytes() const { return rowptr.bytes() + col16.bytes() + col32.bytes(); }
};

class CsrWeight final : public PackedWeight {
 public:
  explicit CsrWeight(const DecodedTensor& t)
      : PackedWeight(t.encoding, uint32_t(t.rows()), uint32_t(t.cols()), t.nnz()), index_(t), val_(t.values.size()) {
    std::memcpy(val_.data(), t.values.data(), t.values.size() * sizeof(float));
  }
  size_t bytes() const override { return index_.bytes() + val_.bytes(); }
  void gemm(Isa isa, const float* x, size_t batch, float* y, const float* bias) const override {
    ref::csr_f32_spmm(index_.rowptr.data(), index_.c16(), index_.c32(), val_.data(), rows(), cols(), x, batch, y,
                      bias);
  }

 private:
  CsrIndex index_;
  AlignedArray<float> val_;
};

// Lookup table padded to 256 entries so any byte index is in bounds.
AlignedArray<float> make_lut(const DecodedTensor& t) {
  AlignedArray<float> lut(256);
  std::copy(t.centroids.begin(), t.centroids.end(), lut.data());
  return lut;
}

class CodebookWeight final : public PackedWeight {
 public:
  explicit CodebookWeight(const DecodedTensor& t)
      : PackedWeight(t.encoding, uint32_t(t.rows()), uint32_t(t.cols()), t.numel()),
        idx_(t.indices.size()), lut_(make_lut(t)), k_(uint32_t(t.centroids.size())) {
    std::memcpy(idx_.data(), t.indices.data(), t.indices.size());
  }
  size_t bytes() const override { return idx_.bytes() + k_ * sizeof(float); }
  void gemm(Isa isa, const float* x, size_t batch, float* y, const float* bias) const override {
    ref::lut_f32_gemm(idx_.data(), lut_.data(), rows(), cols(), x, batch, y, bias);
  }

 private:
  AlignedArray<uint8_t> idx_;
  AlignedArray<float> lut_;
  uint32_t k_;
};

class CsrCodebookWeight final : public PackedWeight {
 public:
  explicit CsrCodebookWeight(const DecodedTensor& t)
      : PackedWeight(t.encoding, uint32_t(t.rows()), uint32_t(t.cols()), t.nnz()),
        index_(t), idx_(t.indices.size()), lut_(make_lut(t)), k_(uint32_t(t.centroids.size())) {
    std::memcpy(idx_.data(), t.indices.data(), t.indices.size());
  }
  size_t bytes() const override { return index_.bytes() + idx_.bytes() + k_ * sizeof(float); }
  void gemm(Isa isa, const float* x, size_t batch, float* y, const float* bias) const override {
    ref::csr_lut_f32_spmm(index_.rowptr.data(), index_.c16(), index_.c32(), idx_.data(), lut_.data(), rows(), cols(),
                          x, batch, y, bias);
  }

 private:
  CsrIndex index_;
  AlignedArray<uint8_t> idx_;
  AlignedArray<float> lut_;
  uint32_t k_;
};

}  // namespace

std::unique_ptr<PackedWeight> pack(const DecodedTensor& t) {
  switch (t.encoding) {
    case Encoding::dense_f32: return std::make_unique<DenseWeight>(t);
    case Encoding::csr: return std::make_unique<CsrWeight>(t);
    case Encoding::codebook: return std::make_unique<CodebookWeight>(t);
    case Encoding::csr_codebook: return std::make_unique<CsrCodebookWeight>(t);
  }
  fail(PYRT_UNSUPPORTED, "tensor '", t.name, "': no kernel for encoding ", static_cast<uint32_t>(t.encoding));
}

}  // namespace pyrt::kernels
