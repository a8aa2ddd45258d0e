// pyruntime: packing binary tensors into b1_r8 (XNOR) or b1_rows (real activations), and the GEMM entry that
// picks the level's kernel.
#include "kernels/binary/binary_weight.h"

#include <algorithm>
#include <cstring>

namespace pyrt::kernels {

BinaryWeight::BinaryWeight(const DecodedTensor& t, Mode mode, const DecodedTensor* second)
    : rows_(uint32_t(t.rows())), cols_(uint32_t(t.cols())), kw_(binary_words(t.cols())), mode_(mode) {
  const size_t prow = (size_t(rows_) + 7) / 8 * 8;
  w_.resize(mode == Mode::real_input ? size_t(rows_) * kw_ : prow * kw_);
  std::fill(w_.data(), w_.data() + w_.size(), uint64_t(0));
  for (size_t r = 0; r < rows_; ++r) {
    const uint64_t* src = t.bits.data() + r * kw_;
    if (mode == Mode::real_input) {
      std::memcpy(w_.data() + r * kw_, src, kw_ * sizeof(uint64_t));
    } else {
      for (size_t j = 0; j < kw_; ++j) w_[((r / 8) * kw_ + j) * 8 + r % 8] = src[j];
    }
  }
  alpha_.resize(prow);
  bias_.resize(prow);
  std::fill(alpha_.data(), alpha_.data() + prow, 0.0f);
  std::fill(bias_.data(), bias_.data() + prow, 0.0f);
  if (mode == Mode::xnor_bits) {
    limit_.resize(prow);
    std::fill(limit_.data(), limit_.data() + prow, -1);  // padded rows: never set
    const float* th = second->value_data();
    for (size_t r = 0; r < rows_; ++r) limit_[r] = int32_t(cols_) - int32_t(th[r]);  // m <= K - T  <=>  p >= T
    return;
  }
  std::copy(t.scales.begin(), t.scales.end(), alpha_.data());
  if (second) std::memcpy(bias_.data(), second->value_data(), rows_ * sizeof(float));
}

void BinaryWeight::gemm(Isa isa, const void* x, size_t ldx, size_t batch, size_t r0, size_t r1, void* y,
                        size_t ldy) const {
  const BinaryKernels& k = binary_kernels(isa);
  if (mode_ == Mode::real_input) {
    k.bwn(w_.data(), kw_, cols_, r0, r1, static_cast<const float*>(x), ldx, batch, alpha_.data(), bias_.data(),
          static_cast<float*>(y), ldy);
    return;
  }
  const BinaryEpilogue ep{cols_, alpha_.data(), bias_.data(), mode_ == Mode::xnor_bits ? limit_.data() : nullptr};
  k.xnor(w_.data(), kw_, r0, r1, static_cast<const uint64_t*>(x), ldx, batch, ep, y, ldy);
}

void BinaryWeight::counts(Isa isa, const uint64_t* x, size_t ldx, size_t batch, size_t r0, size_t r1, int32_t* y,
                          size_t ldy) const {
  BinaryEpilogue ep{cols_, alpha_.data(), bias_.data(), nullptr};
  ep.counts = true;
  binary_kernels(isa).xnor(w_.data(), kw_, r0, r1, x, ldx, batch, ep, y, ldy);
}

std::vector<uint32_t> BinaryWeight::row_splits(unsigned parts) const {
  const size_t blocks = (size_t(rows_) + 63) / 64;
  parts = unsigned(std::max<size_t>(1, std::min<size_t>(parts, blocks)));
  std::vector<uint32_t> s{0};
  for (unsigned i = 1; i < parts; ++i) s.push_back(uint32_t(blocks * i / parts * 64));
  s.push_back(rows_);
  return s;
}

}  // namespace pyrt::kernels
