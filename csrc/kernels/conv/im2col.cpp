// pyruntime: the im2col convolution (conv/im2col.h): patch building, per-group weights, the tiled run.
#include "kernels/conv/im2col.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "kernels/kernels.h"
#include "kernels/packed_weight.h"

namespace pyrt::kernels {

void im2col_patches(const Conv2dGeometry& g, const float* xg, size_t p0, size_t T, size_t pa, size_t pb, float* X) {
  const size_t K = g.patch(), in_plane = size_t(g.in_h) * g.in_w;
  const size_t lo = std::clamp(pa, p0, p0 + T), hi = std::clamp(pb, lo, p0 + T);
  // zero rows for the positions outside the requested range
  std::memset(X, 0, (lo - p0) * K * sizeof(float));
  std::memset(X + (hi - p0) * K, 0, (p0 + T - hi) * K * sizeof(float));
  // runs of positions on one output row: the taps of a run share the input row and the in-bounds test
  // per kx, so the inner loop is a plain strided copy
  for (size_t p = lo; p < hi;) {
    const uint32_t oy = uint32_t(p / g.out_w), oxa = uint32_t(p % g.out_w);
    const uint32_t oxb = uint32_t(std::min<size_t>(g.out_w, oxa + (hi - p)));
    float* Xr = X + (p - p0) * K;  // row of position (oy, oxa)
    for (uint32_t c = 0; c < g.group_in(); ++c) {
      for (uint32_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = int64_t(oy) * g.stride_h - int64_t(g.pad_top) + int64_t(ky) * g.dilation_h;
        const bool row_in = iy >= 0 && iy < int64_t(g.in_h);
        const float* xrow = row_in ? xg + c * in_plane + size_t(iy) * g.in_w : nullptr;
        for (uint32_t kx = 0; kx < g.kw; ++kx) {
          float* dst = Xr + (size_t(c) * g.kh + ky) * g.kw + kx;
          // ix = ox * sw + dx, dx = kx * dw - pad_left; inside for ox in [a, b)
          const int64_t dx = int64_t(kx) * g.dilation_w - int64_t(g.pad_left);
          const int64_t sw = g.stride_w;
          int64_t a = oxa, b = oxa;
          if (row_in) {
            a = std::max<int64_t>(oxa, dx >= 0 ? 0 : (-dx + sw - 1) / sw);
            b = std::min<int64_t>(oxb, int64_t(g.in_w) - 1 - dx < 0 ? 0 : (int64_t(g.in_w) - 1 - dx) / sw + 1);
            if (b < a) b = a;
          }
          int64_t ox = oxa;
          for (; ox < a; ++ox) dst[(ox - oxa) * K] = 0.0f;
          for (; ox < b; ++ox) dst[(ox - oxa) * K] = xrow[ox * sw + dx];
          for (; ox < oxb; ++ox) dst[(ox - oxa) * K] = 0.0f;
        }
      }
    }
    p += oxb - oxa;
  }
}

DecodedTensor slice_rows(const DecodedTensor& t, uint32_t r0, uint32_t r1) {
  DecodedTensor s;
  s.name = t.name;
  s.encoding = t.encoding;
  s.shape = {r1 - r0, uint32_t(t.cols())};
  s.index_bits = t.index_bits;
  s.gap_bits = t.gap_bits;
  s.centroids = t.centroids;
  const size_t cols = t.cols();
  if (is_sparse(t.encoding)) {
    const uint32_t j0 = t.rowptr[r0], j1 = t.rowptr[r1];
    s.rowptr.resize(r1 - r0 + 1);
    for (uint32_t r = r0; r <= r1; ++r) s.rowptr[r - r0] = t.rowptr[r] - j0;
    s.colidx.assign(t.colidx.begin() + j0, t.colidx.begin() + j1);
    if (t.encoding == Encoding::csr) s.values.assign(t.values.begin() + j0, t.values.begin() + j1);
    else s.indices.assign(t.indices.begin() + j0, t.indices.begin() + j1);
  } else if (t.encoding == Encoding::codebook) {
    s.indices.assign(t.indices.begin() + r0 * cols, t.indices.begin() + r1 * cols);
  } else if (t.borrowed_values) {
    s.borrowed_values = t.borrowed_values + r0 * cols;
    if (t.mapped_values) s.mapped_values = t.mapped_values + r0 * cols;
  } else {
    s.values.assign(t.values.begin() + r0 * cols, t.values.begin() + r1 * cols);
  }
  return s;
}

namespace {

constexpr size_t kPatchBytes = 256 * 1024;  // X of one tile stays in L2 (with the GEMM's own scratch)
constexpr size_t kMinTile = 64;

// Positions per GEMM call: as many as fit kPatchBytes (a multiple of 8, at least 8), then evened out so
// that ceil(P / T) tiles cover the P positions of the plane with fewer than 8 positions to spare in all.
size_t tile_positions(const Conv2dGeometry& g) {
  const size_t K = g.patch(), P = size_t(g.out_h) * g.out_w;
  const size_t cap = std::max<size_t>(kMinTile, kPatchBytes / (K * sizeof(float)) / 8 * 8);
  const size_t tiles = (P + cap - 1) / cap;
  return ((P + tiles - 1) / tiles + 7) / 8 * 8;
}

class Im2colConv final : public Conv2d {
 public:
  Im2colConv(const Conv2dGeometry& g, const DecodedTensor& w, bool in_place) : Conv2d(g), tile_(tile_positions(g)) {
    if (g.groups == 1) {
      parts_.push_back(pack(w, in_place));
    } else {
      for (uint32_t grp = 0; grp < g.groups; ++grp)
        parts_.push_back(pack(slice_rows(w, grp * g.group_out(), (grp + 1) * g.group_out()), in_place));
    }
    for (const auto& p : parts_) raw_.push_back(p.get());
  }

  void run(Isa isa, const float* x, size_t batch, float* y, const float* bias, uint32_t oy0,
           uint32_t oy1) const override {
    if (oy0 >= oy1) return;
    const Conv2dGeometry& g = geom_;
    const size_t plane = size_t(g.out_h) * g.out_w;
    if (isa == Isa::ref) {
      ref::conv2d(geom_, raw_.data(), uint32_t(raw_.size()), x, batch, y, bias, oy0, oy1);
      for (size_t c = 0; c < batch * g.out_c; ++c)
        clamp_.apply(y + c * plane + size_t(oy0) * g.out_w, size_t(oy1 - oy0) * g.out_w);
      return;
    }
    const size_t K = g.patch(), og = g.group_out(), T = tile_;
    const size_t in_group = size_t(g.group_in()) * g.in_h * g.in_w;
    const OutputClamp clamp = clamp_;
    const size_t xsize = (T * K + 15) / 16 * 16;  // keeps Y 64-byte aligned
    float* X = thread_scratch(xsize + T * og, Scratch::kConv);
    float* Y = X + xsize;
    const size_t pa = size_t(oy0) * g.out_w, pb = size_t(oy1) * g.out_w;
    for (size_t b = 0; b < batch; ++b) {
      const float* xb = x + b * g.in_size();
      float* yb = y + b * g.out_size();
      for (size_t p0 = pa / T * T; p0 < pb; p0 += T) {
        const size_t lo = std::max(p0, pa), hi = std::min(p0 + T, pb);
        for (uint32_t grp = 0; grp < g.groups; ++grp) {
          im2col_patches(g, xb + grp * in_group, p0, T, pa, pb, X);
          raw_[grp]->gemm(isa, X, T, Y, bias ? bias + grp * og : nullptr);
          // Y[t][o] -> y[grp * og + o][p0 + t]: contiguous writes, strided reads of the small Y
          for (size_t o = 0; o < og; ++o) {
            float* yo = yb + (grp * og + o) * plane;
            for (size_t p = lo; p < hi; ++p) yo[p] = clamp(Y[(p - p0) * og + o]);  // (-inf, inf): a copy
          }
        }
      }
    }
  }

  size_t bytes() const override {
    size_t n = 0;
    for (const auto& p : parts_) n += p->bytes();
    return n;
  }
  const char* layout() const override { return parts_[0]->layout(); }
  const char* method() const override { return "im2col"; }
  bool in_place() const override {
    return std::all_of(parts_.begin(), parts_.end(), [](const auto& p) { return p->in_place(); });
  }

 private:
  size_t tile_;
  std::vector<std::unique_ptr<PackedWeight>> parts_;  // the whole weight, or one per group
  std::vector<const PackedWeight*> raw_;
};

}  // namespace

std::unique_ptr<Conv2d> make_im2col_conv(const Conv2dGeometry& g, const DecodedTensor& w, bool in_place) {
  return std::make_unique<Im2colConv>(g, w, in_place);
}

}  // namespace pyrt::kernels
