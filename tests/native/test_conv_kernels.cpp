// The direct convolution methods (kernels/conv/direct.h) at every level this CPU has, against the same conv
// run at Isa::ref (the scalar twin of the vector kernels), built through the public interface
// (Conv2d::create with the method forced to direct, and to direct_lanes where it applies: groups 1) from
// dense, csr, codebook and csr+codebook weights. Edge geometries: 1x1 (stride 1 and 2), 3x3 stride 1 and 2
// with padding, 7x7 stride 2 on 3 input channels, stride 3, dilation 2, depthwise and grouped convs, output
// widths not a multiple of 4 and past one column block, input channels split into blocks, 32-bit tap
// offsets; with and without bias and a relu clamp, batches 1 and 2. f32 tolerance: 1e-5 of
// sum |w| |x| + |bias| per output (the Python suite's); output rows run in pieces give the same bits as
// the whole (threads split a layer by rows), and rows outside the piece are left alone.
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "common/tensor.h"
#include "harness.h"
#include "kernels/conv/conv2d.h"
#include "kernels/packed_weight.h"

using namespace pyrt;
using namespace pyrt::kernels;
using pyrt_test::Rng;

namespace {

struct Geometry {
  uint32_t in_c, in_h, in_w, out_c, k, stride, pad, groups, dilation;
};

Conv2dGeometry make_geometry(const Geometry& s) {
  Conv2dGeometry g;
  g.in_c = s.in_c;
  g.in_h = s.in_h;
  g.in_w = s.in_w;
  g.out_c = s.out_c;
  g.kh = g.kw = s.k;
  g.stride_h = g.stride_w = s.stride;
  g.pad_top = g.pad_left = s.pad;
  g.dilation_h = g.dilation_w = s.dilation;
  g.groups = s.groups;
  const uint32_t ext = s.dilation * (s.k - 1) + 1;
  g.out_h = (s.in_h + 2 * s.pad - ext) / s.stride + 1;
  g.out_w = (s.in_w + 2 * s.pad - ext) / s.stride + 1;
  return g;
}

// A random [out_c, patch] weight of the encoding, about `density` nonzero; codebooks of 16 centroids,
// centroid 0 zero.
DecodedTensor make_weight(Rng& rng, Encoding e, uint32_t rows, uint32_t cols, double density) {
  DecodedTensor t;
  t.name = "w";
  t.encoding = e;
  t.shape = {rows, cols};
  const bool sparse = is_sparse(e), codebook = has_codebook(e);
  const uint32_t k = 16;
  if (codebook) {
    t.centroids.resize(k);
    for (uint32_t i = 0; i < k; ++i) t.centroids[i] = i == 0 ? 0.f : rng.uniform();
    t.index_bits = 4;
  }
  if (sparse) t.rowptr.push_back(0);
  for (uint32_t r = 0; r < rows; ++r) {
    for (uint32_t c = 0; c < cols; ++c) {
      const bool keep = rng.chance(density);
      if (sparse) {
        if (!keep) continue;
        t.colidx.push_back(c);
        if (codebook) t.indices.push_back(uint8_t(1 + rng.below(k - 1)));
        else t.values.push_back(rng.uniform());
      } else if (codebook) {
        t.indices.push_back(uint8_t(keep ? 1 + rng.below(k - 1) : 0));
      } else {
        t.values.push_back(keep ? rng.uniform() : 0.f);
      }
    }
    if (sparse) t.rowptr.push_back(uint32_t(t.colidx.size()));
  }
  t.validate(1);
  return t;
}

// sum |w| |x| + |bias| of every output, per sample [out_c][out_h][out_w], from the decoded weight.
std::vector<double> magnitudes(const Conv2dGeometry& g, const DecodedTensor& t, const std::vector<float>& x,
                               size_t batch, const float* bias) {
  const std::unique_ptr<PackedWeight> w = pack(t);
  const uint32_t K = g.patch();
  std::vector<float> row(K);
  std::vector<double> out(batch * g.out_size());
  for (uint32_t o = 0; o < g.out_c; ++o) {
    w->decode_row(o, row.data());
    const uint32_t grp = o / g.group_out();
    for (size_t b = 0; b < batch; ++b)
      for (uint32_t oy = 0; oy < g.out_h; ++oy)
        for (uint32_t ox = 0; ox < g.out_w; ++ox) {
          double s = bias ? std::fabs(double(bias[o])) : 0.0;
          for (uint32_t c = 0; c < g.group_in(); ++c)
            for (uint32_t ky = 0; ky < g.kh; ++ky)
              for (uint32_t kx = 0; kx < g.kw; ++kx) {
                const int64_t iy = int64_t(oy) * g.stride_h - g.pad_top + int64_t(ky) * g.dilation_h;
                const int64_t ix = int64_t(ox) * g.stride_w - g.pad_left + int64_t(kx) * g.dilation_w;
                if (iy < 0 || ix < 0 || iy >= int64_t(g.in_h) || ix >= int64_t(g.in_w)) continue;
                const float v = x[b * g.in_size() + ((size_t(grp) * g.group_in() + c) * g.in_h + iy) * g.in_w + ix];
                s += std::fabs(double(row[(c * g.kh + ky) * g.kw + kx])) * std::fabs(double(v));
              }
          out[b * g.out_size() + (size_t(o) * g.out_h + oy) * g.out_w + ox] = s + 1e-30;
        }
  }
  return out;
}

const char* method_name(Conv2d::Method m) { return m == Conv2d::Method::kDirect ? "direct" : "direct_lanes"; }

void check_conv(const Geometry& s, Encoding e, double density, Conv2d::Method method, bool relu, uint64_t seed) {
  Rng rng(seed);
  const Conv2dGeometry g = make_geometry(s);
  const DecodedTensor t = make_weight(rng, e, g.out_c, g.patch(), density);
  const std::unique_ptr<Conv2d> conv = Conv2d::create(g, t, false, method);
  CHECK(std::strcmp(conv->method(), method_name(method)) == 0, "method ", conv->method(), " for ", method_name(method));
  if (relu) conv->set_output_clamp(OutputClamp{0.0f, std::numeric_limits<float>::infinity()});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (size_t batch : {size_t(1), size_t(2)}) {
    std::vector<float> x(batch * g.in_size()), bias(g.out_c);
    for (float& v : x) v = rng.uniform();
    for (float& v : bias) v = rng.uniform();
    for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
      std::vector<float> want(batch * g.out_size(), nan);
      conv->run(Isa::ref, x.data(), batch, want.data(), b);
      const std::vector<double> scale = magnitudes(g, t, x, batch, b);
      for (Isa isa : pyrt_test::fast_isas()) {
        std::vector<float> got(want.size(), nan);
        conv->run(isa, x.data(), batch, got.data(), b);
        const long bad = pyrt_test::first_outside(got.data(), want.data(), scale.data(), got.size(), 1e-5);
        CHECK(bad < 0, method_name(method), " ", conv->layout(), " in ", s.in_c, "x", s.in_h, "x", s.in_w, " out_c ",
              s.out_c, " k ", s.k, " s ", s.stride, " p ", s.pad, " g ", s.groups, " d ", s.dilation,
              relu ? " relu" : "", b ? " bias" : "", " batch ", batch, " at ", isa_name(isa), ": y[", bad,
              "] = ", got[bad < 0 ? 0 : bad], ", ref ", want[bad < 0 ? 0 : bad]);
        // output rows in pieces: [0, a), [a, c), [c, out_h), each into a fresh buffer
        const uint32_t a = g.out_h / 3, c = g.out_h - g.out_h / 4;
        std::vector<float> parts(want.size(), nan);
        for (auto [r0, r1] : {std::pair<uint32_t, uint32_t>{0, a}, {a, c}, {c, g.out_h}}) {
          std::vector<float> piece(want.size(), nan);
          conv->run(isa, x.data(), batch, piece.data(), b, r0, r1);
          for (size_t i = 0; i < piece.size(); ++i) {
            const uint32_t oy = uint32_t(i / g.out_w % g.out_h);
            if (oy >= r0 && oy < r1) parts[i] = piece[i];
            else CHECK(std::isnan(piece[i]), "rows [", r0, ", ", r1, ") wrote row ", oy, " at ", isa_name(isa));
          }
        }
        CHECK(std::memcmp(parts.data(), got.data(), got.size() * sizeof(float)) == 0, method_name(method), " ",
              conv->layout(), " in ", s.in_c, "x", s.in_h, "x", s.in_w, " k ", s.k, " s ", s.stride,
              ": rows in pieces differ from the whole at ", isa_name(isa));
      }
    }
  }
}

//                              in_c in_h in_w out_c k  s  p  groups dil
const Geometry kGeometries[] = {{8, 9, 9, 6, 1, 1, 0, 1, 1},       // 1x1, width 9
                                {4, 9, 10, 5, 1, 2, 0, 1, 1},      // 1x1 stride 2 (rows no output reads)
                                {5, 10, 11, 7, 3, 1, 1, 1, 1},     // 3x3 stride 1, padding
                                {4, 13, 14, 6, 3, 2, 1, 1, 1},     // 3x3 stride 2, padding
                                {3, 23, 21, 16, 7, 2, 3, 1, 1},    // 7x7 stride 2 on 3 channels (a first conv)
                                {3, 15, 17, 20, 7, 2, 3, 1, 1},    // the same, out_c past a lanes block
                                {3, 6, 37, 5, 3, 1, 1, 1, 1},      // width 37: column blocks and a tail
                                {12, 9, 14, 12, 3, 1, 1, 12, 1},   // depthwise
                                {10, 11, 19, 10, 3, 2, 1, 10, 1},  // depthwise stride 2, width 10
                                {8, 7, 9, 6, 3, 1, 1, 2, 1},       // 2 groups
                                {3, 11, 11, 4, 3, 1, 2, 1, 2},     // dilation 2
                                {2, 10, 13, 3, 3, 3, 0, 1, 1},     // stride 3 (the scalar padded copy)
                                {24, 6, 20, 5, 3, 1, 1, 1, 1},     // input channels in blocks (width > 16)
                                {8, 100, 90, 3, 1, 1, 0, 1, 1}};   // a padded group over 65536 floats

}  // namespace

PYRT_TEST(direct_conv_matches_ref) {
  uint64_t seed = 1;
  for (const Geometry& s : kGeometries)
    for (Encoding e : {Encoding::dense_f32, Encoding::csr, Encoding::codebook, Encoding::csr_codebook})
      for (bool relu : {false, true}) check_conv(s, e, is_sparse(e) ? 0.5 : 0.9, Conv2d::Method::kDirect, relu, seed++);
}

PYRT_TEST(direct_lanes_conv_matches_ref) {
  uint64_t seed = 1000;
  for (const Geometry& s : kGeometries) {
    if (s.groups != 1) continue;
    for (Encoding e : {Encoding::dense_f32, Encoding::codebook})
      for (bool relu : {false, true}) check_conv(s, e, 1.0, Conv2d::Method::kDirectLanes, relu, seed++);
  }
}
