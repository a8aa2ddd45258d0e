// pyruntime: the direct convolution (conv/direct.h): entries packed at create() time, the padded,
// phase-split input copy, the scalar twin of the vector kernels (x86/conv_direct_*.cpp) and the dispatch.
#include "kernels/conv/direct.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/aligned.h"
#include "common/error.h"
#include "kernels/kernels.h"

namespace pyrt::kernels {
namespace {

// Shape of the padded, phase-split input (conv/direct.h). hp / wp cover every tap of every output
// (the implied bottom / right padding included) and at least the input itself.
struct PaddedPlane {
  uint32_t hp = 0, wph = 0, rs = 0;
  size_t plane = 0;
  explicit PaddedPlane(const Conv2dGeometry& g) {
    const uint64_t ext_h = uint64_t(g.dilation_h) * (g.kh - 1) + 1, ext_w = uint64_t(g.dilation_w) * (g.kw - 1) + 1;
    hp = uint32_t(std::max<uint64_t>(uint64_t(g.pad_top) + g.in_h, uint64_t(g.out_h - 1) * g.stride_h + ext_h));
    const uint64_t wp = std::max<uint64_t>(uint64_t(g.pad_left) + g.in_w, uint64_t(g.out_w - 1) * g.stride_w + ext_w);
    wph = uint32_t((wp + g.stride_w - 1) / g.stride_w);
    rs = g.stride_w * wph;
    plane = size_t(hp) * rs;
  }
  // Offset of tap (c, ky, kx) from channel 0, row 0 of the group's padded input.
  size_t offset(const Conv2dGeometry& g, uint32_t c, uint32_t ky, uint32_t kx) const {
    const size_t dx = size_t(kx) * g.dilation_w;
    return c * plane + size_t(ky) * g.dilation_h * rs + dx % g.stride_w * wph + dx / g.stride_w;
  }
};

// Copies the padded rows that output rows [oy0, oy1) read, of every channel of one sample, into xp.
// Rows outside that range are not touched (never read).
void pad_input(const Conv2dGeometry& g, const PaddedPlane& pp, const float* x, float* xp, uint32_t oy0, uint32_t oy1) {
  const uint32_t r_lo = oy0 * g.stride_h, r_hi = (oy1 - 1) * g.stride_h + (g.kh - 1) * g.dilation_h + 1;
  const uint32_t sw = g.stride_w;
  for (uint32_t c = 0; c < g.in_c; ++c) {
    const float* xc = x + size_t(c) * g.in_h * g.in_w;
    for (uint32_t r = r_lo; r < r_hi; ++r) {
      float* dst = xp + c * pp.plane + size_t(r) * pp.rs;
      const int64_t iy = int64_t(r) - g.pad_top;
      if (iy < 0 || iy >= int64_t(g.in_h)) {
        std::fill(dst, dst + pp.rs, 0.0f);
        continue;
      }
      const float* src = xc + size_t(iy) * g.in_w;
      if (sw == 1) {
        const uint32_t n = std::min(g.in_w, pp.rs - g.pad_left);
        std::fill(dst, dst + g.pad_left, 0.0f);
        std::memcpy(dst + g.pad_left, src, n * sizeof(float));
        std::fill(dst + g.pad_left + n, dst + pp.rs, 0.0f);
        continue;
      }
      for (uint32_t ph = 0; ph < sw; ++ph) {
        // column j of this phase reads x at ix = j * sw + ph - pad_left: inside for j in [j0, j1)
        float* d = dst + size_t(ph) * pp.wph;
        const int64_t first = int64_t(g.pad_left) - ph;  // smallest j * sw with ix >= 0
        const uint32_t j0 = uint32_t(std::min<int64_t>(first <= 0 ? 0 : (first + sw - 1) / sw, pp.wph));
        const int64_t last = int64_t(g.in_w) - 1 + g.pad_left - ph;  // largest j * sw with ix < in_w
        const uint32_t j1 = last < 0 ? j0 : std::max(j0, uint32_t(std::min<int64_t>(last / sw + 1, pp.wph)));
        std::fill(d, d + j0, 0.0f);
        const float* s = src + (int64_t(j0) * sw + ph - g.pad_left);
        for (uint32_t j = j0; j < j1; ++j) d[j] = s[size_t(j - j0) * sw];
        std::fill(d + j1, d + pp.wph, 0.0f);
      }
    }
  }
}

DirectConvFn direct_kernel(Isa isa) {
#if PYRT_HAVE_X86_KERNELS
  if (isa == Isa::avx512) return &pyrt_conv_direct__avx512;
  if (isa == Isa::avx2) return &pyrt_conv_direct__avx2;
#endif
  return &pyrt_conv_direct__ref;
}

class DirectConv final : public Conv2d {
 public:
  DirectConv(const Conv2dGeometry& g, const DecodedTensor& w) : Conv2d(g), pp_(g) {
    const uint32_t K = g.patch(), khw = g.kh * g.kw;
    // tap offsets by weight column (c * kh + ky) * kw + kx
    std::vector<uint32_t> col_off(K);
    for (uint32_t c = 0; c < g.group_in(); ++c)
      for (uint32_t ky = 0; ky < g.kh; ++ky)
        for (uint32_t kx = 0; kx < g.kw; ++kx) col_off[c * khw + ky * g.kw + kx] = uint32_t(pp_.offset(g, c, ky, kx));
    const bool sparse = is_sparse(w.encoding), codebook = has_codebook(w.encoding);
    const size_t n = sparse ? w.colidx.size() : size_t(g.out_c) * K;
    rowptr_.resize(g.out_c + 1);
    for (uint32_t o = 0; o <= g.out_c; ++o) rowptr_[o] = sparse ? w.rowptr[o] : o * K;
    wide_ = size_t(g.group_in()) * pp_.plane > 65536;
    if (wide_) off32_.resize(n);
    else off16_.resize(n);
    for (size_t j = 0; j < n; ++j) {
      const uint32_t off = col_off[sparse ? w.colidx[j] : j % K];
      if (wide_) off32_[j] = off;
      else off16_[j] = uint16_t(off);
    }
    if (codebook) {
      idx_.resize(n);
      std::memcpy(idx_.data(), w.indices.data(), n);
      lut_.resize(256);
      std::copy(w.centroids.begin(), w.centroids.end(), lut_.data());
      k_ = uint32_t(w.centroids.size());
    } else {
      val_.resize(n);
      if (n) std::memcpy(val_.data(), w.value_data(), n * sizeof(float));
    }
    static const char* const names[] = {"direct_f32", "direct_csr_f32", "direct_lut8", "direct_csr_lut8"};
    layout_ = names[static_cast<uint32_t>(w.encoding)];
  }

  void run(Isa isa, const float* x, size_t batch, float* y, const float* bias, uint32_t oy0,
           uint32_t oy1) const override {
    if (oy0 >= oy1) return;
    const DirectConvLayout L = view();
    const DirectConvFn fn = direct_kernel(isa);
    float* xp = thread_scratch(size_t(geom_.in_c) * pp_.plane, Scratch::kConv);
    for (size_t b = 0; b < batch; ++b) {
      pad_input(geom_, pp_, x + b * geom_.in_size(), xp, oy0, oy1);
      fn(L, xp, y + b * geom_.out_size(), bias, oy0, oy1);
    }
  }

  size_t bytes() const override {
    return rowptr_.bytes() + off16_.bytes() + off32_.bytes() + val_.bytes() + idx_.bytes() + k_ * sizeof(float);
  }
  const char* layout() const override { return layout_; }
  const char* method() const override { return "direct"; }

 private:
  DirectConvLayout view() const {
    DirectConvLayout L{};
    L.rowptr = rowptr_.data();
    L.off16 = wide_ ? nullptr : off16_.data();
    L.off32 = wide_ ? off32_.data() : nullptr;
    L.val = k_ ? nullptr : val_.data();
    L.idx = idx_.data();
    L.lut = lut_.data();
    L.out_c = geom_.out_c;
    L.out_h = geom_.out_h;
    L.out_w = geom_.out_w;
    L.group_out = geom_.group_out();
    L.rs = pp_.rs;
    L.row_step = size_t(geom_.stride_h) * pp_.rs;
    L.group_in = size_t(geom_.group_in()) * pp_.plane;
    return L;
  }

  PaddedPlane pp_;
  bool wide_ = false;
  uint32_t k_ = 0;
  const char* layout_ = "";
  AlignedArray<uint32_t> rowptr_;
  AlignedArray<uint16_t> off16_;
  AlignedArray<uint32_t> off32_;
  AlignedArray<float> val_;
  AlignedArray<uint8_t> idx_;
  AlignedArray<float> lut_;
};

template <class Off, class Weight>
void direct_ref(const DirectConvLayout& L, const Off* off, Weight weight, const float* xp, float* y,
                const float* bias, uint32_t oy0, uint32_t oy1) {
  const size_t plane = size_t(L.out_h) * L.out_w;
  for (uint32_t o = 0; o < L.out_c; ++o) {
    const float* xg = xp + size_t(o / L.group_out) * L.group_in;
    float* yo = y + o * plane;
    const uint32_t e0 = L.rowptr[o], e1 = L.rowptr[o + 1];
    for (uint32_t oy = oy0; oy < oy1; ++oy) {
      const float* xr = xg + oy * L.row_step;
      for (uint32_t ox = 0; ox < L.out_w; ++ox) {
        float acc = bias ? bias[o] : 0.0f;  // as the vector kernels: the chain starts at the bias
        for (uint32_t e = e0; e < e1; ++e) acc += weight(e) * xr[off[e] + ox];
        yo[size_t(oy) * L.out_w + ox] = acc;
      }
    }
  }
}

}  // namespace

// The scalar twin of the vector kernels: one output at a time, entries in order.
void pyrt_conv_direct__ref(const DirectConvLayout& L, const float* xp, float* y, const float* bias, uint32_t oy0,
                           uint32_t oy1) {
  auto run = [&](const auto* off) {
    if (L.val) direct_ref(L, off, [&](uint32_t e) { return L.val[e]; }, xp, y, bias, oy0, oy1);
    else direct_ref(L, off, [&](uint32_t e) { return L.lut[L.idx[e]]; }, xp, y, bias, oy0, oy1);
  };
  if (L.off16) run(L.off16);
  else run(L.off32);
}

std::unique_ptr<Conv2d> make_direct_conv(const Conv2dGeometry& g, const DecodedTensor& w) {
  return std::make_unique<DirectConv>(g, w);
}

}  // namespace pyrt::kernels
