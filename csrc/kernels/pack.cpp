// pyruntime: DecodedTensor -> execution layout (kernels/kernels.h), one class per weight encoding, and the
// run-time dispatch. Each gemm() looks up the kernel for its layout at the requested ISA level; levels
// without a dedicated kernel fall back to the next lower one (kernel_for).
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "common/aligned.h"
#include "common/error.h"
#include "kernels/kernels.h"
#include "kernels/packed_weight.h"

namespace pyrt::kernels {

// memcpy that accepts an empty source (std::vector::data() may be null then).
static inline void copy_from(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

// ---- dispatch tables, built from the registry ----

namespace {


template <class Layout>
struct KernelTable {
  GemmFn<Layout> fn[kIsaLevels] = {};
  KernelTable() {
#define PYRT_KERNEL(layout, stem, isa) \
  if constexpr (std::is_same_v<Layout, layout>) fn[static_cast<int>(Isa::isa)] = &pyrt_##stem##__##isa;
#include "kernels/kernel_list.inc"
#undef PYRT_KERNEL
    for (int i = 1; i < kIsaLevels; ++i)  // each level's fallback comes before it in the enum
      if (fn[i] == nullptr) fn[i] = fn[static_cast<int>(isa_fallback(static_cast<Isa>(i)))];
  }
};

}  // namespace

template <class Layout>
GemmFn<Layout> kernel_for(Isa isa) {
  static const KernelTable<Layout> table;
  const int i = std::clamp(static_cast<int>(isa), 0, kIsaLevels - 1);
  return table.fn[i];
}
template GemmFn<DenseF32> kernel_for<DenseF32>(Isa);
template GemmFn<CsrF32> kernel_for<CsrF32>(Isa);
template GemmFn<Lut1> kernel_for<Lut1>(Isa);
template GemmFn<Lut2> kernel_for<Lut2>(Isa);
template GemmFn<Lut4> kernel_for<Lut4>(Isa);
template GemmFn<Lut8> kernel_for<Lut8>(Isa);
template GemmFn<CsrLut4> kernel_for<CsrLut4>(Isa);
template GemmFn<CsrLut8> kernel_for<CsrLut8>(Isa);

float* thread_scratch(size_t n, Scratch slot) {
  thread_local AlignedArray<float> buf[5];
  AlignedArray<float>& b = buf[static_cast<int>(slot)];
  if (b.size() < n) b.resize(n);
  return b.data();
}

namespace {

template <class Layout>
void run(const Layout& view, Isa isa, const float* x, size_t batch, float* y, const float* bias) {
  kernel_for<Layout>(isa)(view, x, batch, y, bias);
}

// Boundaries splitting [0, rows) into at most `parts` pieces of about equal cost(r0, r1), a monotone
// prefix cost; boundaries are multiples of `align` (but the last).
template <class Cost>
std::vector<uint32_t> split_by_cost(uint32_t rows, unsigned parts, uint32_t align, Cost prefix) {
  std::vector<uint32_t> b{0};
  const double total = static_cast<double>(prefix(rows));
  for (unsigned p = 1; p < parts && b.back() < rows; ++p) {
    const double want = total * p / parts;
    uint32_t lo = b.back(), hi = rows;  // first row r with prefix(r) >= want
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo) / 2;
      if (static_cast<double>(prefix(mid)) < want) lo = mid + 1;
      else hi = mid;
    }
    const uint32_t r = (lo + align / 2) / align * align;
    if (r > b.back() && r < rows) b.push_back(r);
  }
  b.push_back(rows);
  return b;
}

// ---- dense f32: as stored ----

// With in_place, values in a memory-mapped file (DecodedTensor::mapped_values) are used where they lie
// when they are 64-byte aligned, which format payloads are; the kernels never read past the last weight.
// Otherwise they are copied into owned, aligned memory.
class DenseWeight final : public PackedWeight {
 public:
  DenseWeight(const DecodedTensor& t, bool in_place)
      : PackedWeight(t.encoding, uint32_t(t.rows()), uint32_t(t.cols()), t.numel()) {
    if (in_place && t.mapped_values && reinterpret_cast<uintptr_t>(t.mapped_values) % kAlignment == 0) {
      w_ = t.mapped_values;  // not read here
      return;
    }
    owned_.resize(t.numel());
    copy_from(owned_.data(), t.value_data(), t.value_count() * sizeof(float));
    w_ = owned_.data();
  }
  size_t bytes() const override { return size_t(rows()) * cols() * sizeof(float); }
  bool in_place() const override { return w_ != owned_.data(); }
  const char* layout() const override { return "dense_f32"; }
  void gemm(Isa isa, const float* x, size_t batch, float* y, const float* bias) const override {
    run(DenseF32{w_, rows(), cols()}, isa, x, batch, y, bias);
  }
  void gemm_rows(Isa isa, const float* x, size_t batch, float* y, const float* bias, uint32_t r0,
                 uint32_t r1) const override {
    run(DenseF32{w_ + size_t(r0) * cols(), r1 - r0, cols()}, isa, x, batch, y, bias ? bias + r0 : nullptr);
  }
  void decode_row(uint32_t r, float* out) const override {
    copy_from(out, w_ + size_t(r) * cols(), size_t(cols()) * sizeof(float));
  }

 private:
  const float* w_ = nullptr;
  AlignedArray<float> owned_;
};

// ---- CSR structure shared by csr and csr+codebook: row pointers, 16-bit columns when cols <= 65536 ----

struct CsrStorage {
  AlignedArray<uint32_t> rowptr;
  AlignedArray<uint16_t> col16;
  AlignedArray<uint32_t> col32;
  bool wide;

  explicit CsrStorage(const DecodedTensor& t) : rowptr(t.rowptr.size()), wide(t.cols() > 65536) {
    copy_from(rowptr.data(), t.rowptr.data(), t.rowptr.size() * sizeof(uint32_t));
    if (!wide) {
      col16.resize(t.colidx.size());
      for (size_t j = 0; j < t.colidx.size(); ++j) col16[j] = static_cast<uint16_t>(t.colidx[j]);
    } else {
      col32.resize(t.colidx.size());
      copy_from(col32.data(), t.colidx.data(), t.colidx.size() * sizeof(uint32_t));
    }
  }
  CsrIndex view(uint32_t rows, uint32_t cols) const {
    return CsrIndex{rowptr.data(), wide ? nullptr : col16.data(), wide ? col32.data() : nullptr, rows, cols};
  }
  // Rows [r0, r1): row pointers stay absolute, so the entry arrays need no offset.
  CsrIndex view(uint32_t r0, uint32_t r1, uint32_t cols) const {
    CsrIndex ix = view(r1 - r0, cols);
    ix.rowptr += r0;
    return ix;
  }
  // Any row may start a piece (the sparse kernels take rows one by one): `align` is ignored.
  std::vector<uint32_t> splits(uint32_t rows, unsigned parts) const {
    // cost of a row: its nonzeros plus a fixed per-row overhead worth a few entries
    return split_by_cost(rows, parts, 1, [&](uint32_t r) { return uint64_t(rowptr[r]) + 4ull * r; });
  }
  size_t bytes() const { return rowptr.bytes() + col16.bytes() + col32.bytes(); }
  uint32_t col(size_t j) const { return wide ? col32[j] : col16[j]; }
};

class CsrWeight final : public PackedWeight {
 public:
  explicit CsrWeight(const DecodedTensor& t)
      : PackedWeight(t.encoding, uint32_t(t.rows()), uint32_t(t.cols()), t.nnz()), index_(t), val_(t.values.size()) {
    copy_from(val_.data(), t.values.data(), t.values.size() * sizeof(float));
  }
  size_t bytes() const override { return index_.bytes() + val_.bytes(); }
  const char* layout() const override { return "csr_f32"; }
  void gemm(Isa isa, const float* x, size_t batch, float* y, const float* bias) const override {
    run(CsrF32{index_.view(rows(), cols()), val_.data()}, isa, x, batch, y, bias);
  }
  void gemm_rows(Isa isa, const float* x, size_t batch, float* y, const float* bias, uint32_t r0,
                 uint32_t r1) const override {
    run(CsrF32{index_.view(r0, r1, cols()), val_.data()}, isa, x, batch, y, bias ? bias + r0 : nullptr);
  }
  std::vector<uint32_t> row_splits(unsigned parts, uint32_t /*align*/) const override {
    return index_.splits(rows(), parts);
  }
  void decode_row(uint32_t r, float* out) const override {
    std::fill(out, out + cols(), 0.0f);
    for (uint32_t j = index_.rowptr[r]; j < index_.rowptr[r + 1]; ++j) out[index_.col(j)] = val_[j];
  }

 private:
  CsrStorage index_;
  AlignedArray<float> val_;
};

// ---- codebook: packed 1/2/4-bit groups (k <= 16) or bytes, plus a 256-entry zero-padded table ----

constexpr uint32_t kMaxNibbleK = 16;

AlignedArray<float> make_lut(const DecodedTensor& t) {
  AlignedArray<float> lut(256);
  std::copy(t.centroids.begin(), t.centroids.end(), lut.data());
  return lut;
}

// Bits per packed index for k centroids; 8 = byte layout.
int packed_bits(uint32_t k) { return k <= 2 ? 1 : k <= 4 ? 2 : k <= kMaxNibbleK ? 4 : 8; }

// LutBits<bits> table: the first 16 entries repeat the 2^bits centroids (see kernels.h).
AlignedArray<float> make_replicated_lut(const DecodedTensor& t, int bits) {
  AlignedArray<float> lut = make_lut(t);
  const uint32_t n = 1u << bits;
  for (uint32_t i = n; i < 16; ++i) lut[i] = lut[i % n];
  return lut;
}

// LutBits layout (see kernels.h): column c of a row -> group c / G, byte (c % G) % 16, field (c % G) / 16.
AlignedArray<uint8_t> pack_lutb(const DecodedTensor& t, int bits) {
  const uint32_t rows = uint32_t(t.rows()), cols = uint32_t(t.cols()), group = 128u / uint32_t(bits);
  const size_t stride = lutb_row_bytes(bits, cols);
  AlignedArray<uint8_t> out(rows * stride);
  for (uint32_t r = 0; r < rows; ++r) {
    const uint8_t* in = t.indices.data() + size_t(r) * cols;
    uint8_t* row = out.data() + r * stride;
    for (uint32_t c = 0; c < cols; ++c) {
      const uint32_t j = c % group;
      row[c / group * 16 + j % 16] |= static_cast<uint8_t>(in[c] << (j / 16 * uint32_t(bits)));
    }
  }
  return out;
}

class CodebookWeight final : public PackedWeight {
 public:
  explicit CodebookWeight(const DecodedTensor& t)
      : PackedWeight(t.encoding, uint32_t(t.rows()), uint32_t(t.cols()), t.numel()),
        k_(uint32_t(t.centroids.size())), bits_(packed_bits(k_)) {
    if (bits_ < 8) {
      lut_ = make_replicated_lut(t, bits_);
      idx_ = pack_lutb(t, bits_);
    } else {
      lut_ = make_lut(t);
      idx_.resize(t.indices.size());
      copy_from(idx_.data(), t.indices.data(), t.indices.size());
    }
  }
  size_t bytes() const override { return idx_.bytes() + k_ * sizeof(float); }
  const char* layout() const override {
    static const char* const names[] = {"", "lut1", "lut2", "", "lut4", "", "", "", "lut8"};
    return names[bits_];
  }
  void gemm(Isa isa, const float* x, size_t batch, float* y, const float* bias) const override {
    const uint8_t* idx = idx_.data();
    const float* lut = lut_.data();
    switch (bits_) {
      case 1: return run(Lut1{idx, lut, k_, rows(), cols()}, isa, x, batch, y, bias);
      case 2: return run(Lut2{idx, lut, k_, rows(), cols()}, isa, x, batch, y, bias);
      case 4: return run(Lut4{idx, lut, k_, rows(), cols()}, isa, x, batch, y, bias);
      default: return run(Lut8{idx, lut, k_, rows(), cols()}, isa, x, batch, y, bias);
    }
  }
  void gemm_rows(Isa isa, const float* x, size_t batch, float* y, const float* bias, uint32_t r0,
                 uint32_t r1) const override {
    const float* lut = lut_.data();
    const uint32_t n = r1 - r0;
    if (bias) bias += r0;
    const uint8_t* idx = idx_.data() + (bits_ < 8 ? lutb_row_bytes(bits_, cols()) : size_t(cols())) * r0;
    switch (bits_) {
      case 1: return run(Lut1{idx, lut, k_, n, cols()}, isa, x, batch, y, bias);
      case 2: return run(Lut2{idx, lut, k_, n, cols()}, isa, x, batch, y, bias);
      case 4: return run(Lut4{idx, lut, k_, n, cols()}, isa, x, batch, y, bias);
      default: return run(Lut8{idx, lut, k_, n, cols()}, isa, x, batch, y, bias);
    }
  }
  void decode_row(uint32_t r, float* out) const override {
    if (bits_ == 8) {
      const uint8_t* ir = idx_.data() + size_t(r) * cols();
      for (uint32_t c = 0; c < cols(); ++c) out[c] = lut_[ir[c]];
      return;
    }
    // LutBits layout (kernels.h): column c -> group c / G, byte (c % G) % 16, field (c % G) / 16
    const uint32_t group = 128u / uint32_t(bits_), mask = (1u << bits_) - 1u;
    const uint8_t* ir = idx_.data() + lutb_row_bytes(bits_, cols()) * r;
    for (uint32_t c = 0; c < cols(); ++c) {
      const uint32_t j = c % group;
      out[c] = lut_[(ir[c / group * 16 + j % 16] >> (j / 16 * uint32_t(bits_))) & mask];
    }
  }

 private:
  uint32_t k_;
  int bits_;
  AlignedArray<float> lut_;
  AlignedArray<uint8_t> idx_;
};

class CsrCodebookWeight final : public PackedWeight {
 public:
  explicit CsrCodebookWeight(const DecodedTensor& t)
      : PackedWeight(t.encoding, uint32_t(t.rows()), uint32_t(t.cols()), t.nnz()),
        index_(t), k_(uint32_t(t.centroids.size())), lut_(make_lut(t)) {
    if (k_ <= kMaxNibbleK) {
      // CsrLut4 layout (see kernels.h): each row starts a new 16-entry group of 8 bytes.
      const uint32_t rows = uint32_t(t.rows());
      goff_.resize(rows + 1);
      for (uint32_t r = 0; r < rows; ++r) {
        const uint32_t n = t.rowptr[r + 1] - t.rowptr[r];
        goff_[r + 1] = goff_[r] + uint32_t((n + kCsrLut4Group - 1) / kCsrLut4Group);
      }
      idx_.resize(size_t(goff_[rows]) * 8);
      for (uint32_t r = 0; r < rows; ++r) {
        uint8_t* row = idx_.data() + size_t(goff_[r]) * 8;
        for (uint32_t j = t.rowptr[r]; j < t.rowptr[r + 1]; ++j) {
          const uint32_t e = j - t.rowptr[r], g = e % kCsrLut4Group;
          row[e / kCsrLut4Group * 8 + g % 8] |= static_cast<uint8_t>(g < 8 ? t.indices[j] : t.indices[j] << 4);
        }
      }
    } else {
      idx_.resize(t.indices.size());
      copy_from(idx_.data(), t.indices.data(), t.indices.size());
    }
  }
  size_t bytes() const override { return index_.bytes() + goff_.bytes() + idx_.bytes() + k_ * sizeof(float); }
  const char* layout() const override { return k_ <= kMaxNibbleK ? "csr_lut4" : "csr_lut8"; }
  void gemm(Isa isa, const float* x, size_t batch, float* y, const float* bias) const override {
    const CsrIndex ix = index_.view(rows(), cols());
    if (k_ <= kMaxNibbleK)
      run(CsrLut4{ix, goff_.data(), idx_.data(), lut_.data(), k_}, isa, x, batch, y, bias);
    else
      run(CsrLut8{ix, idx_.data(), lut_.data(), k_}, isa, x, batch, y, bias);
  }
  void gemm_rows(Isa isa, const float* x, size_t batch, float* y, const float* bias, uint32_t r0,
                 uint32_t r1) const override {
    const CsrIndex ix = index_.view(r0, r1, cols());
    if (bias) bias += r0;
    if (k_ <= kMaxNibbleK)
      run(CsrLut4{ix, goff_.data() + r0, idx_.data(), lut_.data(), k_}, isa, x, batch, y, bias);
    else
      run(CsrLut8{ix, idx_.data(), lut_.data(), k_}, isa, x, batch, y, bias);
  }
  std::vector<uint32_t> row_splits(unsigned parts, uint32_t /*align*/) const override {
    return index_.splits(rows(), parts);
  }
  void decode_row(uint32_t r, float* out) const override {
    std::fill(out, out + cols(), 0.0f);
    const uint32_t j0 = index_.rowptr[r];
    const uint8_t* ir = idx_.data() + (k_ <= kMaxNibbleK ? size_t(goff_[r]) * 8 : size_t(j0));
    for (uint32_t j = j0; j < index_.rowptr[r + 1]; ++j) {
      const uint32_t e = j - j0;
      uint32_t i;
      if (k_ <= kMaxNibbleK) {  // CsrLut4 (kernels.h): group e / 16, byte (e % 16) % 8, high nibble from 8
        const uint32_t g = e % kCsrLut4Group;
        const uint8_t byte = ir[e / kCsrLut4Group * 8 + g % 8];
        i = g < 8 ? byte & 0x0Fu : byte >> 4;
      } else {
        i = ir[e];
      }
      out[index_.col(j)] = lut_[i];
    }
  }

 private:
  CsrStorage index_;
  uint32_t k_;
  AlignedArray<float> lut_;
  AlignedArray<uint32_t> goff_;
  AlignedArray<uint8_t> idx_;
};

}  // namespace

std::vector<uint32_t> PackedWeight::row_splits(unsigned parts, uint32_t align) const {
  return split_by_cost(rows(), parts, align, [](uint32_t r) { return uint64_t(r); });
}

std::unique_ptr<PackedWeight> pack(const DecodedTensor& t, bool in_place) {
  switch (t.encoding) {
    case Encoding::dense_f32: return std::make_unique<DenseWeight>(t, in_place);
    case Encoding::csr: return std::make_unique<CsrWeight>(t);
    case Encoding::codebook: return std::make_unique<CodebookWeight>(t);
    case Encoding::csr_codebook: return std::make_unique<CsrCodebookWeight>(t);
    case Encoding::int8:
    case Encoding::csr_int8:  // kernels/int8/int8_weight.h: an int8 layer quantizes its activations
    case Encoding::binary: break;  // kernels/binary/binary_weight.h: blinear layers
  }
  fail(PYRT_INVALID_ARGUMENT, "tensor '", t.name, "': ", encoding_name(t.encoding),
       " weights run through their own layer kinds, not the f32 kernels");
}

}  // namespace pyrt::kernels
