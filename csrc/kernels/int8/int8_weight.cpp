// pyruntime: packing int8 tensors into their execution layouts, and the run-time dispatch of the int8
// kernels by ISA level (a level without a dedicated kernel runs the next lower one).
#include "kernels/int8/int8_weight.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/error.h"

namespace pyrt::kernels {
namespace {

Int8DenseFn dense_kernel(Isa isa, size_t batch) {
#if PYRT_HAVE_X86_KERNELS
#if PYRT_HAVE_AMX
  if (isa >= Isa::amx && batch >= kAmxMinBatch) return &pyrt_i8_gemm__amx;
#endif
  if (isa >= Isa::avx512vnni) return &pyrt_i8_gemm__avx512vnni;
  if (isa >= Isa::avx512) return &pyrt_i8_gemm__avx512;
  if (isa >= Isa::avx2) return &pyrt_i8_gemm__avx2;
#endif
#if PYRT_HAVE_ARM_KERNELS
  if (isa >= Isa::neon_dot) return &pyrt_i8_gemm__neon_dot;
  if (isa >= Isa::neon) return &pyrt_i8_gemm__neon;
#endif
  return &pyrt_i8_gemm__ref;
}

// Whether this CPU's csr+int8 weights are stored masked (i8_p128m): the kernels that read them need VBMI2.
bool masked_steps_here() {
#if PYRT_HAVE_X86_KERNELS
  static const bool yes = cpu_has_vbmi() && cpu_has_vbmi2() && isa_supported(Isa::avx512);
  return yes;
#else
  return false;
#endif
}

// Whether a weight packed now is stored masked: where the CPU allows, unless PYRT_INT8_STEPS=padded (read at
// every pack, so that one process can compare both forms).
bool pack_masked() {
  if (!masked_steps_here()) return false;
  const char* env = std::getenv("PYRT_INT8_STEPS");
  return env == nullptr || std::strcmp(env, "padded") != 0;
}

// The kernel for masked steps at level isa, or null where that level reads only padded ones.
Int8PanelsFn masked_kernel(Isa isa) {
#if PYRT_HAVE_X86_KERNELS
  if (masked_steps_here()) {
    if (isa >= Isa::avx512vnni) return &pyrt_i8_spmm_masked__avx512vnni;
    if (isa >= Isa::avx512) return &pyrt_i8_spmm_masked__avx512;
  }
#endif
  (void)isa;
  return nullptr;
}

Int8PanelsFn panels_kernel(Isa isa) {
#if PYRT_HAVE_X86_KERNELS
  static const bool vbmi = cpu_has_vbmi();
  if (isa >= Isa::avx512vnni && vbmi) return &pyrt_i8_spmm__avx512vnni;
  if (isa >= Isa::avx512 && vbmi) return &pyrt_i8_spmm__avx512;
  if (isa >= Isa::avx2) return &pyrt_i8_spmm__avx2;
#endif
#if PYRT_HAVE_ARM_KERNELS
  if (isa >= Isa::neon_dot) return &pyrt_i8_spmm__neon_dot;
  if (isa >= Isa::neon) return &pyrt_i8_spmm__neon;
#endif
  return &pyrt_i8_spmm__ref;
}

class DenseInt8 final : public Int8Weight {
 public:
  explicit DenseInt8(const DecodedTensor& t) : Int8Weight(t, 4) {
    const uint32_t prow = padded_rows(), groups = kp_ / 4;
    w_.resize(size_t(prow) * kp_, kInt8DensePad);
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
    dense_kernel(isa, a.batch)(Int8Dense{w_.data(), rowsum_.data(), rows_, cols_, kp_}, a, ep, r0, r1, y, ldy);
  }

 private:
  AlignedArray<int8_t> w_;
  AlignedArray<int32_t> rowsum_;
};

// The i8_p128 layout (int8_layouts.h) built from CSR rows.
class SparseInt8 final : public Int8Weight {
 public:
  explicit SparseInt8(const DecodedTensor& t) : Int8Weight(t, kPanelCols) {
    const uint32_t blocks = padded_rows() / 16;
    panels_ = kp_ / kPanelCols;
    rowptr_.assign(t.rowptr.begin(), t.rowptr.end());
    nsteps_.resize(size_t(blocks) * panels_);
    step_start_.resize(blocks + 1);
    rowsum_.resize(padded_rows());
    // pass 1: steps per (block, panel) = the longest row's nonzeros in the panel, in groups of 4
    std::vector<uint32_t> count(panels_);
    uint64_t total = 0;
    for (uint32_t rb = 0; rb < blocks; ++rb) {
      step_start_[rb] = total;
      std::vector<uint32_t> longest(panels_, 0);
      for (uint32_t r = rb * 16; r < std::min(rows_, rb * 16 + 16); ++r) {
        std::fill(count.begin(), count.end(), 0);
        int32_t sum = 0;
        for (uint32_t j = t.rowptr[r]; j < t.rowptr[r + 1]; ++j) {
          ++count[t.colidx[j] / kPanelCols];
          sum += t.qvalues[j];
        }
        rowsum_[r] = sum;
        for (uint32_t p = 0; p < panels_; ++p) longest[p] = std::max(longest[p], count[p]);
      }
      for (uint32_t p = 0; p < panels_; ++p) {
        const uint32_t n = (longest[p] + 3) / 4;
        PYRT_CHECK(n <= 0xFFFF, PYRT_INTERNAL, "int8 panel with ", n, " steps");
        nsteps_[size_t(rb) * panels_ + p] = static_cast<uint16_t>(n);
        total += n;
      }
    }
    step_start_[blocks] = total;
    steps_.resize(total * kStepBytes);  // zero-filled: padding slots read column 0 with weight 0
    // pass 2: lane i of step s holds row i's nonzeros 4s .. 4s + 3 of the panel
    for (uint32_t rb = 0; rb < blocks; ++rb) {
      std::vector<uint64_t> first(panels_);
      uint64_t at = step_start_[rb];
      for (uint32_t p = 0; p < panels_; ++p) {
        first[p] = at;
        at += nsteps_[size_t(rb) * panels_ + p];
      }
      for (uint32_t i = 0; i < 16 && rb * 16 + i < rows_; ++i) {
        const uint32_t r = rb * 16 + i;
        std::fill(count.begin(), count.end(), 0);
        for (uint32_t j = t.rowptr[r]; j < t.rowptr[r + 1]; ++j) {
          const uint32_t p = t.colidx[j] / kPanelCols, k = count[p]++;
          uint8_t* step = steps_.data() + (first[p] + k / 4) * kStepBytes;
          step[i * 4 + k % 4] = static_cast<uint8_t>(t.colidx[j] % kPanelCols);
          step[64 + i * 4 + k % 4] = static_cast<uint8_t>(t.qvalues[j]);
        }
      }
    }
    if (pack_masked()) mask_steps();
  }
  size_t bytes() const override {  // of the form the CPU's best level streams (a padded copy made for a
    const size_t steps = is_masked_ ? masked_.bytes() + masks_.bytes() + byte_start_.bytes() : steps_.bytes();
    return steps + step_start_.bytes() + nsteps_.bytes() + rowsum_.bytes() + wscale_.bytes();  // lower level
  }                                                                                              // not counted)
  const char* layout() const override { return is_masked_ ? "i8_p128m" : "i8_p128"; }
  uint64_t steps() const override { return step_start_[padded_rows() / 16]; }
  void gemm(Isa isa, const Int8Act& a, const Int8Epilogue& ep, uint32_t r0, uint32_t r1, void* y,
            size_t ldy) const override {
    Int8Panels L{steps_.data(), step_start_.data(), nsteps_.data(), rowsum_.data(), rows_, cols_, panels_};
    if (is_masked_) {
      if (Int8PanelsFn fn = masked_kernel(isa)) {
        L.steps = masked_.data();
        L.masks = masks_.data();
        L.byte_start = byte_start_.data();
        return fn(L, a, ep, r0, r1, y, ldy);
      }
      std::call_once(padded_once_, [this] { unmask_steps(); });  // a lower level forced on this CPU
      L.steps = steps_.data();
    }
    panels_kernel(isa)(L, a, ep, r0, r1, y, ldy);
  }

 protected:
  uint64_t cost_before(uint32_t row) const override {
    return uint64_t(rowptr_[row]) + row;  // a row costs its overhead too
  }

 private:
  // f(j, n) for the set bits j of a step's mask in ascending order, n counting them: vpexpandb's order.
  template <class F>
  static void for_each_slot(uint64_t mask, F f) {
    for (size_t n = 0; mask != 0; mask &= mask - 1, ++n) f(__builtin_ctzll(mask), n);
  }

  // The padded steps -> the masked form (int8_layouts.h); the padded bytes are freed.
  void mask_steps() {
    const uint64_t total = step_start_[padded_rows() / 16];
    masks_.resize(total);
    byte_start_.resize(padded_rows() / 16 + 1);
    size_t nbytes = 0;
    for (uint64_t s = 0; s < total; ++s) {
      const uint8_t* w = steps_.data() + s * kStepBytes + 64;
      uint64_t m = 0;
      for (int j = 0; j < 64; ++j) m |= uint64_t(w[j] != 0) << j;  // a zero weight contributes nothing
      masks_[s] = m;
      nbytes += 2 * size_t(__builtin_popcountll(m));
    }
    masked_.resize(nbytes, kMaskedPad);
    uint8_t* out = masked_.data();
    for (uint32_t rb = 0; rb <= padded_rows() / 16; ++rb) {
      const uint64_t first = step_start_[rb], last = rb < padded_rows() / 16 ? step_start_[rb + 1] : first;
      byte_start_[rb] = static_cast<uint64_t>(out - masked_.data());
      for (uint64_t s = first; s < last; ++s) {
        const uint8_t* step = steps_.data() + s * kStepBytes;
        const size_t c = size_t(__builtin_popcountll(masks_[s]));
        for_each_slot(masks_[s], [&](int j, size_t n) { out[n] = step[j], out[c + n] = step[64 + j]; });
        out += 2 * c;
      }
    }
    steps_ = AlignedArray<uint8_t>();
    is_masked_ = true;
  }
  // The masked form -> padded steps again, for a level without VBMI2 forced on this CPU.
  void unmask_steps() const {
    const uint64_t total = step_start_[padded_rows() / 16];
    steps_.resize(total * kStepBytes);
    const uint8_t* in = masked_.data();
    for (uint64_t s = 0; s < total; ++s) {
      uint8_t* step = steps_.data() + s * kStepBytes;
      const size_t c = size_t(__builtin_popcountll(masks_[s]));
      for_each_slot(masks_[s], [&](int j, size_t n) { step[j] = in[n], step[64 + j] = in[c + n]; });
      in += 2 * c;
    }
  }

  uint32_t panels_ = 0;
  bool is_masked_ = false;
  std::vector<uint32_t> rowptr_;  // for the cost of a row split
  mutable AlignedArray<uint8_t> steps_;  // padded; empty once masked, until a lower level asks for it
  mutable std::once_flag padded_once_;
  AlignedArray<uint8_t> masked_;
  AlignedArray<uint64_t> masks_, byte_start_;
  AlignedArray<uint64_t> step_start_;
  AlignedArray<uint16_t> nsteps_;
  AlignedArray<int32_t> rowsum_;
};

}  // namespace

void quantize_rows(Isa isa, const float* x, size_t batch, size_t cols, size_t ldq, int8_t* q, float* xs) {
#if PYRT_HAVE_X86_KERNELS
  if (isa >= Isa::avx512) return pyrt_quantize_rows__avx512(x, batch, cols, ldq, q, xs);
  if (isa >= Isa::avx2) return pyrt_quantize_rows__avx2(x, batch, cols, ldq, q, xs);
#endif
#if PYRT_HAVE_ARM_KERNELS
  if (isa >= Isa::neon) return pyrt_quantize_rows__neon(x, batch, cols, ldq, q, xs);
#endif
  ref::quantize_rows(x, batch, cols, ldq, q, xs);
}

void quantize_s8(Isa isa, const float* x, size_t n, float inv_scale, int8_t* q) {
#if PYRT_HAVE_X86_KERNELS
  if (isa >= Isa::avx512) return pyrt_quantize_s8__avx512(x, n, inv_scale, q);
  if (isa >= Isa::avx2) return pyrt_quantize_s8__avx2(x, n, inv_scale, q);
#endif
#if PYRT_HAVE_ARM_KERNELS
  if (isa >= Isa::neon) return pyrt_quantize_s8__neon(x, n, inv_scale, q);
#endif
  ref::quantize_s8(x, n, inv_scale, q);
}

Int8Weight::Int8Weight(const DecodedTensor& t, uint32_t k_align)
    : rows_(uint32_t(t.rows())),
      cols_(uint32_t(t.cols())),
      kp_(uint32_t((uint64_t(t.cols()) + k_align - 1) / k_align * k_align)),
      nnz_(t.nnz()) {
  wscale_.resize(padded_rows());
  std::copy(t.scales.begin(), t.scales.end(), wscale_.data());
}

std::unique_ptr<Int8Weight> Int8Weight::pack(const DecodedTensor& t) {
  t.validate(PYRT_INVALID_ARGUMENT);
  PYRT_CHECK(is_int8(t.encoding), PYRT_INVALID_ARGUMENT, "tensor '", t.name, "' is ", encoding_name(t.encoding),
             ", not int8");
  if (t.encoding == Encoding::int8) return std::make_unique<DenseInt8>(t);
  return std::make_unique<SparseInt8>(t);
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
