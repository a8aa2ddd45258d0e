// Every function of the binary kernel table (kernels/binary/binary_kernels.h) at every level this CPU has,
// against the reference table, byte for byte (memcmp, the bytes around the outputs included): the XNOR GEMM
// in its three epilogues (f32, bits, counts), the BWN GEMM (exact at the NEON levels, which add in the
// reference's order; x86 levels reorder the sum: 1e-5 of sum |x| alpha + |bias|), the sign (binarize,
// binarize_hwc) and bconv2d's dot epilogue. Edge sizes: columns 1, 63, 64, 65, 200, 1000 and 2500 (more than
// 31 words: the NEON byte counters' flush, also with all-ones weights against zero samples, every byte
// counting 8 per word), rows not a multiple of 8, row ranges that start past 0, batches 1 to 9; the sign on
// NaN, +-0, infinities and values whose product lands exactly on -shift (an fma would flip them).
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/aligned.h"
#include "harness.h"
#include "kernels/binary/binary_kernels.h"

using namespace pyrt::kernels;
using pyrt_test::Rng;

namespace {

const size_t kCols[] = {1, 63, 64, 65, 200, 1000, 2500};

uint64_t random_word(Rng& rng) { return rng.engine(); }

// bits past n cleared (the b1 padding)
uint64_t tail_mask(size_t n, size_t j) {
  const size_t left = n - j * 64;
  return left >= 64 ? ~uint64_t(0) : (uint64_t(1) << left) - 1;
}

template <class T>
bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Floats for the sign: uniform, with the special values sprinkled in.
std::vector<float> sign_inputs(Rng& rng, size_t n, const std::vector<float>& specials) {
  std::vector<float> x(n);
  for (auto& v : x) v = rng.chance(0.2) && !specials.empty() ? specials[rng.below(uint32_t(specials.size()))]
                                                            : rng.uniform(-2.f, 2.f);
  return x;
}

// x with fl(x * scale) == -shift, so x * scale + shift is exactly 0 with two roundings (bit 1), and the
// neighbours of x (bit 0 on one side); an fma would see the product's rounding error instead.
std::vector<float> threshold_values(float scale, float shift) {
  std::vector<float> out = {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                            0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()};
  float x = -shift / scale;
  for (int i = 0; i < 200; ++i) x = std::nextafter(x, -INFINITY);
  for (int i = 0; i < 400; ++i, x = std::nextafter(x, INFINITY)) {
    volatile float p = x * scale;
    if (p == -shift) {
      out.push_back(x);
      out.push_back(std::nextafter(x, -INFINITY));
      out.push_back(std::nextafter(x, INFINITY));
    }
  }
  return out;
}

struct XnorCase {
  size_t rows, cols, kw, rows8;
  pyrt::AlignedArray<uint64_t> w8;  // 64-byte lines (the x86 kernels load them aligned), zero padding after
  std::vector<float> alpha, bias;
  std::vector<int32_t> limit;
};

// saturated: every weight bit 1 (with all-zero samples, every byte of every word mismatches in all 8 bits)
XnorCase make_xnor(Rng& rng, size_t rows, size_t cols, bool saturated) {
  XnorCase c;
  c.rows = rows;
  c.cols = cols;
  c.kw = (cols + 63) / 64;
  c.rows8 = (rows + 7) / 8 * 8;
  c.w8.resize(c.rows8 * c.kw);
  for (size_t r = 0; r < rows; ++r)
    for (size_t j = 0; j < c.kw; ++j)
      c.w8[((r / 8) * c.kw + j) * 8 + r % 8] = (saturated ? ~uint64_t(0) : random_word(rng)) & tail_mask(cols, j);
  c.alpha.assign(c.rows8, 0.f);
  c.bias.assign(c.rows8, 0.f);
  c.limit.assign(c.rows8, -1);
  for (size_t r = 0; r < rows; ++r) {
    c.alpha[r] = rng.uniform(0.01f, 2.f);
    c.bias[r] = rng.uniform();
    c.limit[r] = int32_t(rng.below(uint32_t(cols + 3))) - 1;
  }
  return c;
}

}  // namespace

PYRT_TEST(xnor_gemm_matches_ref) {
  const BinaryKernels& ref = binary_kernels(Isa::ref);
  Rng rng(11);
  for (size_t cols : kCols) {
    for (size_t rows : {size_t(1), size_t(7), size_t(8), size_t(13), size_t(24), size_t(37), size_t(0)}) {
      // rows 0: a saturated case (19 rows), the byte counters' worst case
      const bool saturated = rows == 0;
      if (saturated) rows = 19;
      XnorCase c = make_xnor(rng, rows, cols, saturated);
      for (size_t batch = 1; batch <= 9; ++batch) {
        const size_t ldx = c.kw + 1;
        std::vector<uint64_t> x(batch * ldx, 0);
        for (size_t b = 0; b < batch; ++b)
          for (size_t j = 0; j < c.kw; ++j)
            x[b * ldx + j] = saturated && b % 2 == 0 ? 0 : random_word(rng) & tail_mask(cols, j);
        // limits on the threshold: row r's count for sample 0
        if (batch == 2) {
          std::vector<int32_t> m(rows);
          BinaryEpilogue ep{uint32_t(cols), c.alpha.data(), c.bias.data(), nullptr, true};
          ref.xnor(c.w8.data(), c.kw, 0, rows, x.data(), ldx, 1, ep, m.data(), rows);
          for (size_t r = 0; r < rows; ++r) c.limit[r] = m[r] - (r % 3 == 0);
        }
        // whole layer, and rows from the second block on
        for (size_t r0 : {size_t(0), size_t(8)}) {
          if (r0 >= rows) continue;
          for (int mode = 0; mode < 3; ++mode) {  // 0: f32, 1: bits, 2: counts
            BinaryEpilogue ep{uint32_t(cols), c.alpha.data(), c.bias.data(), mode == 1 ? c.limit.data() : nullptr,
                              mode == 2};
            const size_t ldy = mode == 1 ? c.rows8 / 8 + 2 : rows + 3;
            const size_t bytes = batch * ldy * 4;
            std::vector<uint8_t> want(bytes, 0xA5);
            ref.xnor(c.w8.data(), c.kw, r0, rows, x.data(), ldx, batch, ep, want.data(), ldy);
            for (Isa isa : pyrt_test::fast_isas()) {
              std::vector<uint8_t> got(bytes, 0xA5);
              binary_kernels(isa).xnor(c.w8.data(), c.kw, r0, rows, x.data(), ldx, batch, ep, got.data(), ldy);
              CHECK(same_bytes(got, want), isa_name(isa), " xnor ", binary_kernels(isa).xnor_name, " cols=", cols,
                    " rows=", rows, " r0=", r0, " batch=", batch, " mode=", mode);
            }
          }
        }
      }
    }
  }
}

PYRT_TEST(bwn_gemm_matches_ref) {
  const BinaryKernels& ref = binary_kernels(Isa::ref);
  Rng rng(12);
  for (size_t cols : kCols) {
    const size_t kw = (cols + 63) / 64;
    for (size_t rows : {size_t(1), size_t(5), size_t(8), size_t(13), size_t(37)}) {
      std::vector<uint64_t> w(rows * kw);
      for (auto& v : w) v = random_word(rng);  // bits past cols set too: the kernels must ignore them
      const size_t rows8 = (rows + 7) / 8 * 8;
      std::vector<float> alpha(rows8, 0.f), bias(rows8, 0.f);
      for (size_t r = 0; r < rows; ++r) {
        alpha[r] = rng.uniform(0.01f, 2.f);
        bias[r] = rng.uniform();
      }
      for (size_t batch = 1; batch <= 9; ++batch) {
        const size_t ldx = cols + 2, ldy = rows + 3;
        std::vector<float> x = sign_inputs(rng, batch * ldx, {0.0f, -0.0f, 1e-30f, 100.f});
        std::vector<float> want(batch * ldy, 7.f);
        ref.bwn(w.data(), kw, cols, 0, rows, x.data(), ldx, batch, alpha.data(), bias.data(), want.data(), ldy);
        for (Isa isa : pyrt_test::fast_isas()) {
          // whole, and split into two row ranges (a thread's block of rows starts anywhere)
          const size_t split = rows / 3;
          std::vector<float> got(batch * ldy, 7.f), parts(batch * ldy, 7.f);
          const BwnGemmFn fn = binary_kernels(isa).bwn;
          fn(w.data(), kw, cols, 0, rows, x.data(), ldx, batch, alpha.data(), bias.data(), got.data(), ldy);
          fn(w.data(), kw, cols, 0, split, x.data(), ldx, batch, alpha.data(), bias.data(), parts.data(), ldy);
          fn(w.data(), kw, cols, split, rows, x.data(), ldx, batch, alpha.data(), bias.data(), parts.data(), ldy);
          CHECK(same_bytes(parts, got), isa_name(isa), " bwn split cols=", cols, " rows=", rows, " batch=", batch);
          if (isa >= Isa::neon) {  // NEON adds in the reference's order
            CHECK(same_bytes(got, want), isa_name(isa), " bwn cols=", cols, " rows=", rows, " batch=", batch);
            continue;
          }
          std::vector<double> scale(batch * ldy, 1.0);
          for (size_t b = 0; b < batch; ++b)
            for (size_t r = 0; r < rows; ++r) {
              double s = 0.0;
              for (size_t col = 0; col < cols; ++col) s += std::fabs(double(x[b * ldx + col]));
              scale[b * ldy + r] = s * alpha[r] + std::fabs(double(bias[r])) + 1e-30;
            }
          const long bad = pyrt_test::first_outside(got.data(), want.data(), scale.data(), got.size(), 1e-5);
          CHECK(bad < 0, isa_name(isa), " bwn cols=", cols, " rows=", rows, " batch=", batch, " at ", bad);
        }
      }
    }
  }
}

PYRT_TEST(binarize_matches_ref) {
  const BinaryKernels& ref = binary_kernels(Isa::ref);
  Rng rng(13);
  const float scales[][2] = {{1.f, 0.f}, {0.7f, -0.3f}, {-1.3f, 0.1f}, {3.1f, 2.9f}};
  for (auto [scale, shift] : scales) {
    const std::vector<float> specials = threshold_values(scale, shift);
    for (size_t cols : kCols) {
      const size_t kw = (cols + 63) / 64;
      for (size_t batch = 1; batch <= 9; batch += (batch < 3 ? 1 : 3)) {
        const size_t ldx = cols + 3, ldo = kw + 1;
        const std::vector<float> x = sign_inputs(rng, batch * ldx, specials);
        std::vector<uint64_t> want(batch * ldo + 1, 0x5A5A5A5A5A5A5A5Aull);
        ref.binarize(x.data(), ldx, batch, cols, scale, shift, want.data(), ldo);
        for (Isa isa : pyrt_test::fast_isas()) {
          std::vector<uint64_t> got(batch * ldo + 1, 0x5A5A5A5A5A5A5A5Aull);
          binary_kernels(isa).binarize(x.data(), ldx, batch, cols, scale, shift, got.data(), ldo);
          CHECK(same_bytes(got, want), isa_name(isa), " binarize cols=", cols, " batch=", batch, " scale=", scale);
        }
      }
    }
  }
}

PYRT_TEST(binarize_hwc_matches_ref) {
  const BinaryKernels& ref = binary_kernels(Isa::ref);
  Rng rng(14);
  const float scales[][2] = {{1.f, 0.f}, {0.7f, -0.3f}, {-1.3f, 0.1f}};
  for (auto [scale, shift] : scales) {
    const std::vector<float> specials = threshold_values(scale, shift);
    for (size_t channels : {size_t(1), size_t(3), size_t(31), size_t(32), size_t(33), size_t(64), size_t(65),
                            size_t(130)}) {
      const size_t cw = (channels + 63) / 64;
      for (size_t pixels : {size_t(1), size_t(3), size_t(4), size_t(7), size_t(8), size_t(9), size_t(21)}) {
        for (size_t batch : {size_t(1), size_t(2), size_t(3)}) {
          const std::vector<float> x = sign_inputs(rng, batch * channels * pixels, specials);
          std::vector<uint64_t> want(batch * pixels * cw + 1, 0x5A5A5A5A5A5A5A5Aull);
          ref.binarize_hwc(x.data(), batch, channels, pixels, scale, shift, want.data());
          for (Isa isa : pyrt_test::fast_isas()) {
            std::vector<uint64_t> got(want.size(), 0x5A5A5A5A5A5A5A5Aull);
            binary_kernels(isa).binarize_hwc(x.data(), batch, channels, pixels, scale, shift, got.data());
            CHECK(same_bytes(got, want), isa_name(isa), " binarize_hwc channels=", channels, " pixels=", pixels,
                  " batch=", batch, " scale=", scale);
          }
        }
      }
    }
  }
}

PYRT_TEST(dot_epilogue_matches_ref) {
  const BinaryKernels& ref = binary_kernels(Isa::ref);
  Rng rng(15);
  for (size_t o : {size_t(1), size_t(3), size_t(4), size_t(5), size_t(15), size_t(16), size_t(17), size_t(63),
                   size_t(64), size_t(65), size_t(130)}) {
    for (size_t n : {size_t(1), size_t(3), size_t(9)}) {
      std::vector<int32_t> kv(n), m(n * o), lim2(o);
      std::vector<float> alpha(o), bias(o);
      for (size_t i = 0; i < n; ++i) {
        kv[i] = int32_t(1 + rng.below(600));
        for (size_t r = 0; r < o; ++r) m[i * o + r] = int32_t(rng.below(uint32_t(kv[i]) + 1));
      }
      for (size_t r = 0; r < o; ++r) {
        alpha[r] = rng.uniform(0.01f, 2.f);
        bias[r] = rng.uniform();
        // on the threshold (position 0's dot) for a third of the rows, else anywhere
        lim2[r] = r % 3 == 0 ? kv[0] - 2 * m[r] : int32_t(rng.below(1300)) - 650;
      }
      // f32 into a separate array and in place (y = m)
      std::vector<int32_t> want_m = m;
      ref.dot_epilogue(m.data(), n, o, kv.data(), alpha.data(), bias.data(), nullptr, want_m.data(), 0);
      const size_t ldy = (o + 63) / 64 + 1;
      std::vector<uint64_t> want_bits(n * ldy + 1, 0x5A5A5A5A5A5A5A5Aull);
      ref.dot_epilogue(m.data(), n, o, kv.data(), alpha.data(), bias.data(), lim2.data(), want_bits.data(), ldy);
      for (Isa isa : pyrt_test::fast_isas()) {
        const DotEpilogueFn fn = binary_kernels(isa).dot_epilogue;
        std::vector<float> got(n * o + 1, 3.f), want(n * o + 1, 3.f);
        ref.dot_epilogue(m.data(), n, o, kv.data(), alpha.data(), bias.data(), nullptr, want.data(), 0);
        fn(m.data(), n, o, kv.data(), alpha.data(), bias.data(), nullptr, got.data(), 0);
        CHECK(same_bytes(got, want), isa_name(isa), " dot_epilogue f32 o=", o, " n=", n);
        std::vector<int32_t> in_place = m;
        fn(in_place.data(), n, o, kv.data(), alpha.data(), bias.data(), nullptr, in_place.data(), 0);
        CHECK(same_bytes(in_place, want_m), isa_name(isa), " dot_epilogue in place o=", o, " n=", n);
        std::vector<uint64_t> bits(want_bits.size(), 0x5A5A5A5A5A5A5A5Aull);
        fn(m.data(), n, o, kv.data(), alpha.data(), bias.data(), lim2.data(), bits.data(), ldy);
        CHECK(same_bytes(bits, want_bits), isa_name(isa), " dot_epilogue bits o=", o, " n=", n);
      }
    }
  }
}
