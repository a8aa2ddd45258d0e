// Every linear-weight kernel of the registry (kernels/kernel_list.inc) at every level this CPU has, against
// the scalar reference on the same execution layout: dense, csr (16- and 32-bit columns), codebooks of
// 1, 2, 4 and 8 bits and csr+codebook of 4 and 8 bits, over edge shapes (one column, columns around the
// vector and group widths, rows past a register tile), batches 1 to 9, with and without bias.
// The tolerance is the Python suite's (tests/kernels/test_kernels.py): 1e-5 of sum |w| |x| + |bias|.
#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>

#include "common/tensor.h"
#include "harness.h"
#include "kernels/kernels.h"
#include "kernels/packed_weight.h"

using namespace pyrt;
using namespace pyrt::kernels;
using pyrt_test::Rng;

namespace {

struct Case {
  Encoding encoding;
  uint32_t k;  // centroids (codebook encodings)
};

// A random weight of the encoding: about `density` of the entries nonzero (dense encodings keep the zeros
// as values / a zero centroid), centroid 0 is 0 so pruned codebook entries are exact zeros.
DecodedTensor make_weight(Rng& rng, Case c, uint32_t rows, uint32_t cols, double density) {
  DecodedTensor t;
  t.name = "w";
  t.encoding = c.encoding;
  t.shape = {rows, cols};
  const bool sparse = is_sparse(c.encoding), codebook = has_codebook(c.encoding);
  if (codebook) {
    t.centroids.resize(c.k);
    for (uint32_t i = 0; i < c.k; ++i) t.centroids[i] = i == 0 ? 0.f : rng.uniform();
    t.index_bits = 1;
    while ((1u << t.index_bits) < c.k) ++t.index_bits;
  }
  if (sparse) t.rowptr.push_back(0);
  for (uint32_t r = 0; r < rows; ++r) {
    for (uint32_t col = 0; col < cols; ++col) {
      const bool keep = rng.chance(density);
      if (sparse) {
        if (!keep) continue;
        t.colidx.push_back(col);
        if (codebook) t.indices.push_back(static_cast<uint8_t>(c.k > 1 ? 1 + rng.below(c.k - 1) : 0));
        else t.values.push_back(rng.uniform());
      } else if (codebook) {
        t.indices.push_back(static_cast<uint8_t>(keep && c.k > 1 ? 1 + rng.below(c.k - 1) : 0));
      } else {
        t.values.push_back(keep ? rng.uniform() : 0.f);
      }
    }
    if (sparse) t.rowptr.push_back(static_cast<uint32_t>(t.colidx.size()));
  }
  t.validate(1);
  return t;
}

// sum_c |W[r][c]| |x[b][c]| + |bias[r]|, the scale of each output.
std::vector<double> magnitudes(const PackedWeight& w, const std::vector<float>& x, size_t batch, const float* bias) {
  std::vector<double> out(batch * w.rows());
  std::vector<float> row(w.cols());
  for (uint32_t r = 0; r < w.rows(); ++r) {
    w.decode_row(r, row.data());
    for (size_t b = 0; b < batch; ++b) {
      double s = bias ? std::fabs(double(bias[r])) : 0.0;
      for (uint32_t c = 0; c < w.cols(); ++c) s += std::fabs(double(row[c])) * std::fabs(double(x[b * w.cols() + c]));
      out[b * w.rows() + r] = s + 1e-30;
    }
  }
  return out;
}

void check_case(Case c, uint32_t rows, uint32_t cols, double density, uint64_t seed) {
  Rng rng(seed);
  const DecodedTensor t = make_weight(rng, c, rows, cols, density);
  const std::unique_ptr<PackedWeight> w = pack(t);
  for (size_t batch : {size_t(1), size_t(2), size_t(5), size_t(9)}) {
    std::vector<float> x(batch * cols), bias(rows);
    for (float& v : x) v = rng.uniform();
    for (float& v : bias) v = rng.uniform();
    for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
      std::vector<float> want(batch * rows, -7.f);
      w->gemm(Isa::ref, x.data(), batch, want.data(), b);
      const std::vector<double> scale = magnitudes(*w, x, batch, b);
      for (Isa isa : pyrt_test::fast_isas()) {
        std::vector<float> got(batch * rows, 1234.5f);
        w->gemm(isa, x.data(), batch, got.data(), b);
        const long bad = pyrt_test::first_outside(got.data(), want.data(), scale.data(), got.size(), 1e-5);
        CHECK(bad < 0, w->layout(), " k=", c.k, " ", rows, "x", cols, " density ", density, " batch ", batch,
              b ? " bias" : "", " at ", isa_name(isa), ": y[", bad, "] = ", got[bad < 0 ? 0 : bad], ", ref ",
              want[bad < 0 ? 0 : bad]);
        // a block of rows computes the same bits as the whole (threads split layers this way)
        if (batch == 1 && rows > 3) {
          const uint32_t r0 = 1, r1 = rows - 1;
          std::vector<float> part(r1 - r0);
          w->gemm_rows(isa, x.data(), 1, part.data(), b, r0, r1);
          CHECK(std::memcmp(part.data(), got.data() + r0, part.size() * sizeof(float)) == 0, w->layout(),
                " rows [", r0, ", ", r1, ") of ", rows, "x", cols, " at ", isa_name(isa), " differ from the whole");
        }
      }
    }
  }
}

const Case kCases[] = {{Encoding::dense_f32, 0}, {Encoding::csr, 0},         {Encoding::codebook, 2},
                       {Encoding::codebook, 4},  {Encoding::codebook, 16},   {Encoding::codebook, 7},
                       {Encoding::codebook, 40}, {Encoding::codebook, 256},  {Encoding::csr_codebook, 9},
                       {Encoding::csr_codebook, 16}, {Encoding::csr_codebook, 100}, {Encoding::csr_codebook, 256}};

}  // namespace

PYRT_TEST(linear_kernels_match_the_reference_over_edge_shapes) {
  const uint32_t shapes[][2] = {{1, 1}, {3, 17}, {17, 33}, {16, 64}, {33, 129}, {64, 255}, {5, 1000}, {40, 513}};
  uint64_t seed = 1;
  for (const Case& c : kCases)
    for (auto& s : shapes)
      for (double density : {0.05, 0.5, 1.0}) check_case(c, s[0], s[1], density, seed++);
}

PYRT_TEST(csr_kernels_with_32_bit_columns) {
  // more than 65536 columns: the CSR layouts store 32-bit column indices
  for (const Case& c : {Case{Encoding::csr, 0}, Case{Encoding::csr_codebook, 16}, Case{Encoding::csr_codebook, 200}})
    check_case(c, 5, 70001, 0.01, 99);
}

PYRT_TEST(every_listed_kernel_is_dispatched_at_its_level) {
  int listed = 0;
#define PYRT_KERNEL(layout, stem, level)                                                                     \
  if (isa_supported(Isa::level)) {                                                                           \
    ++listed;                                                                                                \
    CHECK(kernel_for<layout>(Isa::level) == &pyrt_##stem##__##level, #stem " is listed at " #level            \
          " but kernel_for(" #level ") dispatches another kernel");                                           \
  }
#include "kernels/kernel_list.inc"
#undef PYRT_KERNEL
  CHECK(listed >= 8, "the reference kernels alone are 8, found ", listed);
}

PYRT_TEST(levels_fall_back_within_their_architecture) {
  CHECK(isa_fallback(Isa::avx512vnni) == Isa::avx512, "");
  CHECK(isa_fallback(Isa::avx512) == Isa::avx2, "");
  CHECK(isa_fallback(Isa::avx2) == Isa::ref, "");
  CHECK(isa_fallback(Isa::neon_dot) == Isa::neon, "");
  CHECK(isa_fallback(Isa::neon) == Isa::ref, "");
  CHECK(isa_fallback(Isa::ref) == Isa::ref, "");
  for (Isa isa : supported_isas()) {
    Isa back;
    CHECK(isa_from_name(isa_name(isa), &back) && back == isa, isa_name(isa));
  }
  // one architecture's levels only
  bool x86 = false, arm = false;
  for (Isa isa : supported_isas()) {
    x86 = x86 || (isa >= Isa::avx2 && isa <= Isa::avx512vnni);
    arm = arm || isa >= Isa::neon;
  }
  CHECK(!(x86 && arm), "a build supports levels of two architectures");
  const std::vector<Isa> arch = architecture_isas();
  for (Isa isa : supported_isas())
    CHECK(std::find(arch.begin(), arch.end(), isa) != arch.end(), isa_name(isa), " is supported but not of this architecture");
#if defined(__aarch64__) && PYRT_HAVE_ARM_KERNELS
  CHECK(isa_supported(Isa::neon), "an aarch64 build with the ARM kernels must support neon");
#endif
}

namespace {

// Like check_case on one weight, for the batches that reach every tile and pass shape of the vector
// kernels (dot passes of 2..4 batch rows, batch-in-lanes tiles of 4, 8 and 16), and checking that a block
// of rows gives the bits of the whole at every batch.
void check_batches(const PackedWeight& w, Rng& rng, std::initializer_list<size_t> batches, const char* what) {
  const uint32_t rows = w.rows(), cols = w.cols();
  for (size_t batch : batches) {
    std::vector<float> x(batch * cols), bias(rows);
    for (float& v : x) v = rng.uniform();
    for (float& v : bias) v = rng.uniform();
    for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
      std::vector<float> want(batch * rows, -7.f);
      w.gemm(Isa::ref, x.data(), batch, want.data(), b);
      const std::vector<double> scale = magnitudes(w, x, batch, b);
      for (Isa isa : pyrt_test::fast_isas()) {
        std::vector<float> got(batch * rows, 1234.5f);
        w.gemm(isa, x.data(), batch, got.data(), b);
        const long bad = pyrt_test::first_outside(got.data(), want.data(), scale.data(), got.size(), 1e-5);
        CHECK(bad < 0, what, " ", w.layout(), " ", rows, "x", cols, " batch ", batch, b ? " bias" : "", " at ",
              isa_name(isa), ": y[", bad, "] = ", got[bad < 0 ? 0 : bad], ", ref ", want[bad < 0 ? 0 : bad]);
        if (rows > 2) {
          const uint32_t r0 = 1, r1 = rows - 1, n = r1 - r0;
          std::vector<float> part(batch * n);
          w.gemm_rows(isa, x.data(), batch, part.data(), b, r0, r1);
          for (size_t t = 0; t < batch; ++t)
            CHECK(std::memcmp(part.data() + t * n, got.data() + t * rows + r0, n * sizeof(float)) == 0, what, " ",
                  w.layout(), " rows [", r0, ", ", r1, ") of ", rows, "x", cols, " batch ", batch, " at ",
                  isa_name(isa), " differ from the whole (batch row ", t, ")");
        }
      }
    }
  }
}

}  // namespace

PYRT_TEST(linear_kernels_over_table_sizes_group_edges_and_batches) {
  // table sizes at the vector decoders' boundaries (8 / 16 / 32 / 64 entries; 3 centroids in 2-bit fields),
  // columns one either side of a 16-column step, of a packed group (32, 64, 128 columns) and of a 32-byte
  // block of indices (64 columns of 4-bit indices, 32 of bytes), a row tile plus its remainder, and
  // batches reaching every tile width
  const Case cases[] = {{Encoding::dense_f32, 0},     {Encoding::csr, 0},           {Encoding::codebook, 1},
                        {Encoding::codebook, 3},      {Encoding::codebook, 9},      {Encoding::codebook, 16},
                        {Encoding::codebook, 17},     {Encoding::codebook, 30},     {Encoding::codebook, 32},
                        {Encoding::codebook, 33},     {Encoding::codebook, 64},     {Encoding::codebook, 65},
                        {Encoding::csr_codebook, 2},  {Encoding::csr_codebook, 30}, {Encoding::csr_codebook, 64},
                        {Encoding::csr_codebook, 65}};
  const uint32_t shapes[][2] = {{9, 3},  {6, 12}, {11, 47}, {13, 49},  {7, 63},
                                {5, 64}, {7, 65}, {5, 96},  {10, 127}, {21, 191}};
  uint64_t seed = 1000;
  for (const Case& c : cases)
    for (auto& s : shapes)
      for (double density : {0.3, 1.0}) {
        Rng rng(seed++);
        const std::unique_ptr<PackedWeight> w = pack(make_weight(rng, c, s[0], s[1], density));
        check_batches(*w, rng, {1, 3, 4, 8, 16, 17}, "");
      }
}

PYRT_TEST(codebook_padding_never_reaches_a_result) {
  // centroid 0 infinite and never used by a real weight (density 1: every index >= 1), so only the index-0
  // padding of packed rows (and the zero bytes after the arrays) points at it: a kernel that multiplies a
  // padding weight by a zero x lane gets NaN
  uint64_t seed = 2000;
  for (uint32_t k : {2u, 4u, 7u, 9u, 16u, 30u, 32u, 40u, 64u, 200u, 256u})
    for (uint32_t cols : {1u, 3u, 17u, 47u, 63u, 65u, 96u, 129u}) {
      Rng rng(seed++);
      DecodedTensor t = make_weight(rng, Case{Encoding::codebook, k}, 5, cols, 1.0);
      t.centroids[0] = std::numeric_limits<float>::infinity();
      const std::unique_ptr<PackedWeight> w = pack(t);
      check_batches(*w, rng, {1, 2, 5}, "infinite unused centroid:");
    }
}

#if PYRT_HAVE_X86_KERNELS
PYRT_TEST(lut8_vbmi_and_permps_kernels_match_the_reference) {
  // The two kernels behind pyrt_lut8_f32_gemm__avx512, called directly (the dispatcher picks one per CPU and
  // batch): table sizes at the byte-plane decoder's boundaries (one vpermb up to 64 entries, one vpermi2b
  // up to 128, two above), columns around the 64-column block, rows past the 4-row tile, batches around
  // the 8-row pass. Entry 0 is infinite and the entries from k up are NaN; the weights use 1 .. k - 1, so
  // a result is finite only if the columns past the end (the next row's bytes, the zero bytes after the
  // array) never reach it.
  if (!isa_supported(Isa::avx512)) return;
  const bool vbmi = cpu_has_vbmi();
  uint64_t seed = 3000;
  for (uint32_t k : {17u, 33u, 64u, 65u, 128u, 129u, 200u, 256u})
    for (uint32_t cols : {1u, 63u, 64u, 65u, 127u, 4097u})
      for (uint32_t rows : {1u, 6u, 9u}) {
        Rng rng(seed++);
        std::vector<float> lut(256, std::numeric_limits<float>::quiet_NaN());
        lut[0] = std::numeric_limits<float>::infinity();
        for (uint32_t i = 1; i < k; ++i) lut[i] = rng.uniform();
        std::vector<uint8_t> idx(size_t(rows) * cols + 64, 0);  // 64 zero bytes after, as AlignedArray
        for (size_t i = 0; i < size_t(rows) * cols; ++i) idx[i] = uint8_t(1 + rng.below(k - 1));
        const Lut8 w{idx.data(), lut.data(), k, rows, cols};
        for (size_t batch : {1, 2, 3, 8, 9, 17}) {
          std::vector<float> x(batch * cols), bias(rows);
          for (float& v : x) v = rng.uniform();
          for (float& v : bias) v = rng.uniform();
          std::vector<float> want(batch * rows);
          pyrt_lut8_f32_gemm__ref(w, x.data(), batch, want.data(), bias.data());
          std::vector<double> scale(batch * rows);
          for (size_t t = 0; t < batch; ++t)
            for (uint32_t r = 0; r < rows; ++r) {
              double s = std::fabs(double(bias[r])) + 1e-30;
              for (uint32_t c = 0; c < cols; ++c)
                s += std::fabs(double(lut[idx[size_t(r) * cols + c]])) * std::fabs(double(x[t * cols + c]));
              scale[t * rows + r] = s;
            }
          for (int v = 0; v < 2; ++v) {
            if (v == 0 && !vbmi) continue;
            const auto fn = v == 0 ? &pyrt_lut8_f32_gemm__avx512vbmi : &pyrt_lut8_f32_gemm_permps__avx512;
            const char* name = v == 0 ? "avx512vbmi" : "permps__avx512";
            std::vector<float> got(batch * rows, 1234.5f);
            fn(w, x.data(), batch, got.data(), bias.data());
            const long bad = pyrt_test::first_outside(got.data(), want.data(), scale.data(), got.size(), 1e-5);
            CHECK(bad < 0, "lut8 ", name, " k=", k, " ", rows, "x", cols, " batch ", batch, ": y[", bad,
                  "] = ", got[bad < 0 ? 0 : bad], ", ref ", want[bad < 0 ? 0 : bad]);
            if (rows > 1) {  // rows [1, rows) alone give the bits of the whole
              const Lut8 part{idx.data() + cols, lut.data(), k, rows - 1, cols};
              const size_t n = rows - 1;
              std::vector<float> y(batch * n);
              fn(part, x.data(), batch, y.data(), bias.data() + 1);
              for (size_t t = 0; t < batch; ++t)
                CHECK(std::memcmp(y.data() + t * n, got.data() + t * rows + 1, n * sizeof(float)) == 0,
                      "lut8 ", name, " k=", k, " rows [1, ", rows, ") of ", rows, "x", cols, " batch ", batch,
                      " differ from the whole");
            }
          }
        }
      }
}
#endif
