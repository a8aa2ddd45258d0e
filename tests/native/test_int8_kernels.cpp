// The int8 kernels at every level this CPU has, against the scalar references bit for bit (memcmp): the dense
// (i8_r16k4) and sparse (i8_p128) GEMMs through Int8Weight over edge shapes (one column, columns around 4,
// 16 and the 128-column panel, rows past a 16-row block, batches 1 to 9), f32 and int8 outputs, with and
// without bias and clamps, whole and by blocks of rows; saturation-prone weights and activations (all +-127);
// an all-zero row of scale 0; the activation quantizers (quantize_rows, quantize_s8: ties, NaN, infinities);
// and the int8 conv tile.
#include <cstring>
#include <limits>
#include <memory>

#include "common/tensor.h"
#include "harness.h"
#include "kernels/int8/int8_conv.h"
#include "kernels/int8/int8_weight.h"

using namespace pyrt;
using namespace pyrt::kernels;
using pyrt_test::Rng;

namespace {

enum class Fill { random, saturated };

int8_t random_q(Rng& rng) { return static_cast<int8_t>(int(rng.below(255)) - 127); }

// An int8 or csr+int8 weight: about `density` of the entries nonzero; row 0 all zero with scale 0 when
// rows > 2; saturated: every kept weight +-127.
DecodedTensor make_weight(Rng& rng, bool sparse, uint32_t rows, uint32_t cols, double density, Fill fill) {
  DecodedTensor t;
  t.name = "w";
  t.encoding = sparse ? Encoding::csr_int8 : Encoding::int8;
  t.shape = {rows, cols};
  if (sparse) t.rowptr.push_back(0);
  for (uint32_t r = 0; r < rows; ++r) {
    const bool zero_row = rows > 2 && r == 0;
    t.scales.push_back(zero_row ? 0.0f : rng.uniform(0.001f, 0.05f));
    for (uint32_t c = 0; c < cols; ++c) {
      const bool keep = !zero_row && rng.chance(density);
      int8_t v = 0;
      if (keep) v = fill == Fill::saturated ? (rng.chance(0.5) ? 127 : -127) : random_q(rng);
      if (sparse) {
        if (!keep) continue;
        t.colidx.push_back(c);
      }
      t.qvalues.push_back(v);
    }
    if (sparse) t.rowptr.push_back(static_cast<uint32_t>(t.colidx.size()));
  }
  t.validate(1);
  return t;
}

struct Epi {
  float lo, hi, inv_out;
  bool bias;
};
const Epi kEpis[] = {
    {-std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity(), 0.0f, false},
    {0.0f, 6.0f, 0.0f, true},
    {-std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity(), 1.0f / 0.05f, true},
    {-1.0f, 1.0f, 1.0f / 0.01f, false},
};

void check_weight(const DecodedTensor& t, Fill act, uint64_t seed) {
  Rng rng(seed);
  const std::unique_ptr<Int8Weight> w = Int8Weight::pack(t);
  const uint32_t rows = w->rows(), cols = w->cols(), kp = w->kp();
  std::vector<float> bias(w->padded_rows(), 0.0f);
  for (uint32_t r = 0; r < rows; ++r) bias[r] = rng.uniform(-2.f, 2.f);
  for (size_t batch : {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 33}) {  // amx: 16-sample tiles in pairs, from 4 samples
    if (batch > 3 && batch != 5 && batch != 9 && rows * cols > 4000) continue;
    const size_t ldq = kp + (batch % 2 ? 0 : 12);
    std::vector<int8_t> q(batch * ldq + kInt8ActPad, 0);
    std::vector<float> xs(batch);
    for (size_t b = 0; b < batch; ++b) {
      for (uint32_t c = 0; c < cols; ++c)
        q[b * ldq + c] = act == Fill::saturated ? static_cast<int8_t>(b % 2 ? -127 : 127) : random_q(rng);
      for (size_t c = kp; c < ldq; ++c) q[b * ldq + c] = 99;  // past kp: never read into a sum
      xs[b] = b == 3 ? 0.0f : b == 7 ? std::numeric_limits<float>::quiet_NaN() : rng.uniform(0.001f, 0.1f);
    }
    for (size_t c = batch * ldq; c < q.size(); ++c) q[c] = -99;  // the readable padding
    const Int8Act a{q.data(), xs.data(), batch, ldq};
    const size_t ldy = rows + 3;
    for (const Epi& e : kEpis) {
      const Int8Epilogue ep{w->wscale(), e.bias ? bias.data() : nullptr, e.lo, e.hi, e.inv_out};
      const size_t esize = e.inv_out > 0 ? 1 : 4;
      // the whole layer, and blocks of rows as threads split it (r0 a multiple of 16)
      std::vector<std::pair<uint32_t, uint32_t>> ranges{{0, rows}};
      if (rows > 16) ranges.push_back({16, rows});
      if (rows > 17) ranges.push_back({0, 16});
      if (rows > 33) ranges.push_back({16, rows - 1});
      for (auto [r0, r1] : ranges) {
        std::vector<uint8_t> want(batch * ldy * esize, 0xA5);
        w->gemm(Isa::ref, a, ep, r0, r1, want.data(), ldy);
        for (Isa isa : pyrt_test::fast_isas()) {
          std::vector<uint8_t> got(want.size(), 0xA5);
          w->gemm(isa, a, ep, r0, r1, got.data(), ldy);
          size_t at = 0;
          while (at < got.size() && got[at] == want[at]) ++at;
          CHECK(at == got.size(), w->layout(), " ", rows, "x", cols, " nnz ", w->nnz(), " batch ", batch,
                act == Fill::saturated ? " saturated" : "", " rows [", r0, ", ", r1, ") lo ", e.lo, " hi ", e.hi,
                " inv_out ", e.inv_out, e.bias ? " bias" : "", " at ", isa_name(isa), ": output byte ", at,
                " (sample ", at / esize / ldy, ", row ", at / esize % ldy, ") differs from ref");
        }
      }
    }
  }
}

}  // namespace

PYRT_TEST(int8_gemm_matches_the_reference_bit_for_bit) {
  const uint32_t shapes[][2] = {{1, 1},   {3, 5},   {16, 4},  {17, 15}, {16, 16}, {33, 17},
                                {40, 33}, {64, 63}, {7, 129}, {20, 260}, {70, 300}};
  uint64_t seed = 1;
  for (auto& s : shapes)
    for (double density : {0.3, 1.0}) {
      Rng rng(seed++);
      check_weight(make_weight(rng, false, s[0], s[1], density, Fill::random), Fill::random, seed++);
    }
}

PYRT_TEST(int8_spmm_matches_the_reference_bit_for_bit) {
  const uint32_t shapes[][2] = {{1, 1},   {3, 5},    {17, 15},  {16, 128}, {33, 129},
                                {40, 200}, {20, 257}, {70, 300}, {5, 1000}};
  uint64_t seed = 100;
  for (auto& s : shapes)
    for (double density : {0.02, 0.2, 0.7, 1.0}) {
      Rng rng(seed++);
      check_weight(make_weight(rng, true, s[0], s[1], density, Fill::random), Fill::random, seed++);
    }
}

PYRT_TEST(int8_kernels_saturation_prone_sums_are_exact) {
  // all weights and activations +-127: the largest sums (the neon kernel adds two products in int16)
  uint64_t seed = 500;
  for (bool sparse : {false, true})
    for (auto s : {std::pair<uint32_t, uint32_t>{17, 1}, {33, 64}, {20, 1031}, {3, 5000}}) {
      Rng rng(seed++);
      check_weight(make_weight(rng, sparse, s.first, s.second, 1.0, Fill::saturated), Fill::saturated, seed++);
      check_weight(make_weight(rng, sparse, s.first, s.second, 0.6, Fill::saturated), Fill::saturated, seed++);
    }
}

PYRT_TEST(quantize_rows_matches_the_reference_bit_for_bit) {
  Rng rng(7);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (size_t cols : {1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 257}) {
    const size_t batch = 6, ldq = (cols + 3) / 4 * 4 + 8;
    std::vector<float> x(batch * cols);
    for (float& v : x) v = rng.uniform(-3.f, 3.f);
    for (size_t c = 0; c < cols; ++c) {
      x[1 * cols + c] = 0.0f;                                              // scale 0
      x[2 * cols + c] = static_cast<float>(int(c % 255) - 127) + 0.5f;     // ties after scaling (max 127.5)
      x[4 * cols + c] = c % 2 ? -1e30f : 1e30f;                            // huge but finite
      x[5 * cols + c] = c % 3 == 0 ? -0.0f : static_cast<float>(c % 5) - 2.0f;
    }
    x[2 * cols] = 127.0f;  // row 2's max is 127 when cols is small: inv_scale 1, the ties stay ties
    x[3 * cols + cols / 2] = cols % 2 ? nan : inf;  // row 3 not finite: scale NaN
    std::vector<int8_t> want(batch * ldq, 0x55);
    std::vector<float> want_s(batch, -1.f);
    ref::quantize_rows(x.data(), batch, cols, ldq, want.data(), want_s.data());
    for (Isa isa : pyrt_test::fast_isas()) {
      std::vector<int8_t> got(batch * ldq, 0x55);
      std::vector<float> got_s(batch, -1.f);
      quantize_rows(isa, x.data(), batch, cols, ldq, got.data(), got_s.data());
      CHECK(std::memcmp(got.data(), want.data(), got.size()) == 0, "quantize_rows cols ", cols, " at ",
            isa_name(isa), ": bytes differ");
      CHECK(std::memcmp(got_s.data(), want_s.data(), batch * sizeof(float)) == 0, "quantize_rows cols ", cols,
            " at ", isa_name(isa), ": scales differ");
    }
  }
}

PYRT_TEST(quantize_s8_matches_the_reference_bit_for_bit) {
  Rng rng(8);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (size_t n : {1, 5, 15, 16, 17, 32, 47, 100}) {
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) {
      switch (i % 8) {
        case 0: x[i] = static_cast<float>(int(rng.below(300)) - 150) + 0.5f; break;  // ties (inv 1)
        case 1: x[i] = nan; break;
        case 2: x[i] = i % 16 == 2 ? inf : -inf; break;
        case 3: x[i] = -0.0f; break;
        default: x[i] = rng.uniform(-200.f, 200.f);
      }
    }
    for (float inv : {1.0f, 0.37f, 2.5f, 1e-30f, inf}) {
      std::vector<int8_t> want(n + 4, 0x55), got(n + 4, 0x55);
      ref::quantize_s8(x.data(), n, inv, want.data());
      for (Isa isa : pyrt_test::fast_isas()) {
        std::fill(got.begin(), got.end(), 0x55);
        quantize_s8(isa, x.data(), n, inv, got.data());
        CHECK(std::memcmp(got.data(), want.data(), got.size()) == 0, "quantize_s8 n ", n, " inv_scale ", inv,
              " at ", isa_name(isa), ": bytes differ");
      }
    }
  }
}

PYRT_TEST(int8_conv_tile_matches_the_reference_bit_for_bit) {
  Rng rng(9);
  for (size_t n : {1, 5, 16, 17, 40, 64})
    for (size_t og : {1, 3, 4, 5, 9, 16, 33})  // amx: 16-row blocks in pairs
      for (size_t kp : {4, 8, 12, 36, 64, 68, 132})  // amx: 64-column chunks, the last one partial
        for (bool saturated : {false, true}) {
          const size_t blocks = (n + 15) / 16, plane = n + 5;
          std::vector<int8_t> a(blocks * 16 * kp + kInt8ConvTilePad, 0), w(og * kp);
          for (size_t i = blocks * 16 * kp; i < a.size(); ++i) a[i] = 99;  // the readable pad: never in a sum
          const size_t K = kp - (kp > 4 ? 3 : 0);  // zero from K to kp
          for (size_t p = 0; p < n; ++p)
            for (size_t k = 0; k < K; ++k)
              a[(p / 16) * 16 * kp + (k / 4) * 64 + (p % 16) * 4 + k % 4] =
                  saturated ? static_cast<int8_t>(p % 2 ? -127 : 127) : random_q(rng);
          std::vector<int32_t> wsum(og, 0);
          for (size_t o = 0; o < og; ++o)
            for (size_t k = 0; k < kp; ++k) {
              const int8_t v = k >= K ? 0 : saturated ? static_cast<int8_t>(o % 2 ? 127 : -127) : random_q(rng);
              w[o * kp + k] = v;
              wsum[o] += v;
            }
          std::vector<float> wscale(og), bias(og);
          for (size_t o = 0; o < og; ++o) {
            wscale[o] = o == 1 ? 0.0f : rng.uniform(0.001f, 0.05f);
            bias[o] = rng.uniform(-1.f, 1.f);
          }
          for (const Epi& e : kEpis) {
            Int8ConvTile t{a.data(),     n,  w.data(), wsum.data(), og, kp, 0.02f, wscale.data(),
                           e.bias ? bias.data() : nullptr, e.lo, e.hi, e.inv_out, nullptr, plane};
            const size_t esize = e.inv_out > 0 ? 1 : 4;
            std::vector<uint8_t> want(og * plane * esize, 0xA5);
            t.y = want.data();
            pyrt_i8_conv_tile__ref(t);
            for (Isa isa : pyrt_test::fast_isas()) {
              std::vector<uint8_t> got(want.size(), 0xA5);
              t.y = got.data();
              int8_conv_tile(isa, t);
              CHECK(std::memcmp(got.data(), want.data(), got.size()) == 0, "int8 conv tile n ", n, " og ", og,
                    " kp ", kp, saturated ? " saturated" : "", " inv_out ", e.inv_out, " at ", isa_name(isa),
                    ": outputs differ");
            }
          }
        }
}

PYRT_TEST(int8_dwconv_matches_the_reference_bit_for_bit) {
  struct Geo {
    uint32_t in_h, in_w, kh, kw, stride, dilation, pad;
  };
  // stride 2 and 3, dilation 2, a 1-row plane, blocks of rows (50 x 50), a row longer than a block (3000),
  // more than 64 taps (9 x 9)
  const Geo geos[] = {{7, 9, 3, 3, 1, 1, 1},   {12, 13, 3, 3, 2, 1, 1},  {10, 11, 5, 5, 1, 2, 4},
                      {1, 40, 1, 3, 1, 1, 0},  {50, 50, 3, 3, 1, 1, 1},  {3, 3000, 3, 3, 1, 1, 0},
                      {20, 21, 9, 9, 1, 1, 4}, {9, 17, 3, 3, 3, 1, 2}};
  Rng rng(10);
  for (const Geo& g : geos)
    for (bool saturated : {false, true}) {
      const uint32_t hp = g.in_h + 2 * g.pad, wp = g.in_w + 2 * g.pad;
      const uint32_t out_h = (hp - g.dilation * (g.kh - 1) - 1) / g.stride + 1;
      const uint32_t out_w = (wp - g.dilation * (g.kw - 1) - 1) / g.stride + 1;
      const size_t phase_len = (wp + g.stride - 1) / g.stride, sub_rows = (hp + g.stride - 1) / g.stride;
      const size_t sub_bytes = sub_rows * phase_len;
      std::vector<int8_t> src(size_t(g.in_h) * g.in_w);
      for (int8_t& v : src) v = saturated ? static_cast<int8_t>(rng.chance(0.5) ? 127 : -127) : random_q(rng);
      std::vector<int8_t> x(sub_bytes * g.stride * g.stride + kInt8DwSlack, 0);
      const Int8DwPhases f{g.in_h, g.in_w, g.pad, g.pad, g.stride, g.stride, sub_bytes, phase_len};
      int8_dw_phases(Isa::ref, f, src.data(), x.data());
      std::vector<int8_t> w(size_t(g.kh) * g.kw);
      for (size_t t = 0; t < w.size(); ++t)
        w[t] = t % 7 == 3 ? 0 : saturated ? static_cast<int8_t>(t % 2 ? 127 : -127) : random_q(rng);
      for (const Epi& e : kEpis) {
        const size_t esize = e.inv_out > 0 ? 1 : 4;
        std::vector<uint8_t> want(size_t(out_h) * out_w * esize + 16, 0xA5);
        Int8DwPlane p{x.data(), sub_bytes,  phase_len, w.data(), g.kh,   g.kw,
                      g.stride, g.stride,   g.dilation, g.dilation, out_h, out_w,
                      0.003f,   e.bias ? 0.25f : 0.0f, e.lo, e.hi, e.inv_out, want.data()};
        pyrt_i8_dwconv__ref(p);
        for (Isa isa : pyrt_test::fast_isas()) {
          std::vector<uint8_t> got(want.size(), 0xA5);
          p.y = got.data();
          int8_dwconv_plane(isa, p);
          CHECK(std::memcmp(got.data(), want.data(), got.size()) == 0, "int8 dwconv ", g.in_h, "x", g.in_w, " k ",
                g.kh, "x", g.kw, " stride ", g.stride, " dilation ", g.dilation, saturated ? " saturated" : "",
                " inv_out ", e.inv_out, " at ", isa_name(isa), ": outputs differ");
        }
      }
    }
}
