// pyruntime: packing int8 tensors into their execution layouts, and the run-time dispatch of the int8
// kernels by ISA level (a level without a dedicated kernel runs the next lower one).
#include "kernels/int8/int8_weight.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace pyrt::kernels {
namespace {

Int8DenseFn dense_kernel(Isa isa) {
#if PYRT_HAVE_X86_KERNELS
  if (isa >= Isa::avx512vnni) return &pyrt_i8_gemm__avx512vnni;
  if (isa >= Isa::avx512) return &pyrt_i8_gemm__avx512;
  if (isa >= Isa::avx2) return &pyrt_i8_gemm__avx2;
#endif
  return &pyrt_i8_gemm__ref;
}

Int8CsrFn csr_kernel(Isa isa) {
#if PYRT_HAVE_X86_KERNELS
  if (isa >= Isa::avx512) return &pyrt_i8_spmm__avx512;
  if (isa >= Isa::avx2) return &pyrt_i8_spmm__avx2;
#endif
  return &pyrt_i8_spmm__ref;
}

class DenseInt8 final : public Int8Weight {
 public:
  explicit DenseInt8(const DecodedTensor& t) : Int8Weight(t) {
    const uint32_t prow = padded_rows(), groups = kp_ / 4;
    w_.resize(size_t(prow) * kp_);
    rowsum_.resize(prow);
    for (uint32_t r = 0; r < rows_; ++r) {
      const int8_t* src = t.qvalues.data() + size_t(r) * cols_;
      int8_t* lane = w_.data() + size_t(r / 16) * groups * 64 + (r % 16) * 4;
      int32_t sum = 0;
      for (uint32_t c = 0; c < cols_; ++c) {
        lane[size_t(c / 4) * 64 + c % 4] = src[c];
        sum += src[c];
      }
      rowsum_[r] = sum;
    }
  }
  size_t bytes() const override { return w_.bytes() + rowsum_.bytes() + wscale_.bytes(); }
  const char* layout() const override { return "i8_r16k4"; }
  void gemm(Isa isa, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1, void* y,
            size_t ldy) const override {
    dense_kernel(isa)(Int8Dense{w_.data(), rowsum_.data(), rows_, cols_, kp_}, a, ep, r0, r1, y, ldy);
  }

 private:
  AlignedArray<int8_t> w_;
  AlignedArray<int32_t> rowsum_;
};

class CsrInt8 final : public Int8Weight {
 public:
  explicit CsrInt8(const DecodedTensor& t) : Int8Weight(t) {
    rowptr_.resize(rows_ + 1);
    std::copy(t.rowptr.begin(), t.rowptr.end(), rowptr_.data());
    const size_t nnz = t.colidx.size();
    if (cols_ <= 65536) {
      col16_.resize(nnz);
      for (size_t j = 0; j < nnz; ++j) col16_[j] = static_cast<uint16_t>(t.colidx[j]);
    } else {
      col32_.resize(nnz);
      std::copy(t.colidx.begin(), t.colidx.end(), col32_.data());
    }
    val_.resize(nnz);
    if (nnz) std::memcpy(val_.data(), t.qvalues.data(), nnz);
  }
  size_t bytes() const override {
    return rowptr_.bytes() + col16_.bytes() + col32_.bytes() + val_.bytes() + wscale_.bytes();
  }
  const char* layout() const override { return "i8_csr"; }
  void gemm(Isa isa, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1, void* y,
            size_t ldy) const override {
    const Int8Csr L{rowptr_.data(), col16_.size() ? col16_.data() : nullptr, col32_.data(), val_.data(), rows_, cols_};
    csr_kernel(isa)(L, a, ep, r0, r1, y, ldy);
  }

 protected:
  uint64_t cost_before(uint32_t row) const override { return rowptr_[row] + row; }  // a row costs its overhead too

 private:
  AlignedArray<uint32_t> rowptr_;
  AlignedArray<uint16_t> col16_;
  AlignedArray<uint32_t> col32_;
  AlignedArray<int8_t> val_;
};

}  // namespace

Int8Weight::Int8Weight(const DecodedTensor& t)
    : rows_(uint32_t(t.rows())), cols_(uint32_t(t.cols())), kp_((uint32_t(t.cols()) + 3) / 4 * 4), nnz_(t.nnz()) {
  wscale_.resize(padded_rows());
  std::copy(t.scales.begin(), t.scales.end(), wscale_.data());
}

std::unique_ptr<Int8Weight> Int8Weight::pack(const DecodedTensor& t) {
  t.validate(PYRT_INVALID_ARGUMENT);
  PYRT_CHECK(is_int8(t.encoding), PYRT_INVALID_ARGUMENT, "tensor '", t.name, "' is ", encoding_name(t.encoding),
             ", not int8");
  if (t.encoding == Encoding::int8) return std::make_unique<DenseInt8>(t);
  return std::make_unique<CsrInt8>(t);
}

std::vector<uint32_t> Int8Weight::row_splits(unsigned parts) const {
  std::vector<uint32_t> b{0};
  const double total = static_cast<double>(cost_before(rows_));
  for (unsigned p = 1; p < parts; ++p) {
    const double want = total * p / parts;
    uint32_t lo = b.back(), hi = rows_;
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo) / 2;
      if (static_cast<double>(cost_before(mid)) < want) lo = mid + 1;
      else hi = mid;
    }
    const uint32_t r = (lo + 8) / 16 * 16;
    if (r > b.back() && r < rows_) b.push_back(r);
  }
  b.push_back(rows_);
  return b;
}

}  // namespace pyrt::kernels
