// pyruntime: the direct convolution (conv/direct.h): entries packed at create() time, the padded,
// phase-split input copy, the scalar twin of the vector kernels (x86/conv_direct_*.cpp) and the dispatch.
#include "kernels/conv/direct.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/aligned.h"
#include "common/error.h"
#include "kernels/kernels.h"

namespace pyrt::kernels {
namespace {

DirectConvFn direct_kernel(Isa isa) {
#if PYRT_HAVE_X86_KERNELS
  if (isa >= Isa::avx512) return &pyrt_conv_direct__avx512;
  if (isa == Isa::avx2) return &pyrt_conv_direct__avx2;
#endif
#if PYRT_HAVE_ARM_KERNELS
  if (isa >= Isa::neon) return &pyrt_conv_direct__neon;
#endif
  return &pyrt_conv_direct__ref;
}

class DirectConv final : public Conv2d {
 public:
  // shifted: the input copied into kw column-shifted planes (aligned loads, direct.h) rather than one padded
  // plane per channel (shifted_planes_pay decides)
  DirectConv(const Conv2dGeometry& g, const DecodedTensor& w, bool shifted)
      : Conv2d(g), shifted_(shifted), pp_(g), sp_(g) {
    const uint32_t K = g.patch(), khw = g.kh * g.kw;
    // tap offsets by weight column (c * kh + ky) * kw + kx
    std::vector<uint32_t> col_off(K);
    for (uint32_t c = 0; c < g.group_in(); ++c)
      for (uint32_t ky = 0; ky < g.kh; ++ky)
        for (uint32_t kx = 0; kx < g.kw; ++kx) col_off[c * khw + ky * g.kw + kx] =
              uint32_t(shifted_ ? sp_.offset(g, c, ky, kx) : pp_.offset(g, c, ky, kx));
    const bool sparse = is_sparse(w.encoding), codebook = has_codebook(w.encoding);
    // Stored entries of the weight: (source position in the tensor's values / indices, column). A dense-
    // index codebook stores pruned weights as a zero centroid: those entries are dropped here as CSR drops
    // them, so a pruned layer costs its nonzeros whatever its encoding.
    std::vector<uint32_t> src, col;
    rowptr_.resize(g.out_c + 1);
    rowptr_[0] = 0;
    for (uint32_t o = 0; o < g.out_c; ++o) {
      const size_t j0 = sparse ? w.rowptr[o] : size_t(o) * K, j1 = sparse ? w.rowptr[o + 1] : j0 + K;
      for (size_t j = j0; j < j1; ++j) {
        if (codebook && !sparse && w.centroids[w.indices[j]] == 0.0f) continue;  // +0 or -0
        src.push_back(uint32_t(j));
        col.push_back(sparse ? w.colidx[j] : uint32_t(j - j0));
      }
      rowptr_[o + 1] = uint32_t(src.size());
    }
    const size_t n = src.size();
    // shifted planes' offsets are multiples of 8 floats (rs and plane are): 16 bits of them cover 512K floats
    const size_t copy_floats = shifted_ ? sp_.group_floats(g) : size_t(g.group_in()) * pp_.plane;
    off_shift_ = shifted_ && copy_floats > 65536 ? 3 : 0;
    wide_ = ((copy_floats - 1) >> off_shift_) > 65535;
    if (wide_) off_shift_ = 0;
    if (wide_) off32_.resize(n);
    else off16_.resize(n);
    for (size_t e = 0; e < n; ++e) {
      const uint32_t off = col_off[col[e]];
      if (wide_) off32_[e] = off;
      else off16_[e] = uint16_t(off >> off_shift_);
    }
    if (codebook) {
      idx_.resize(n);
      for (size_t e = 0; e < n; ++e) idx_[e] = w.indices[src[e]];
      lut_.resize(256);
      std::copy(w.centroids.begin(), w.centroids.end(), lut_.data());
      k_ = uint32_t(w.centroids.size());
    } else {
      val_.resize(n);
      const float* v = w.value_data();
      for (size_t e = 0; e < n; ++e) val_[e] = v[src[e]];
    }
    // Blocks of input channels whose rows of a tile (up to 4 output rows x 32 floats of each of the kw
    // shifted planes, AVX2's tile) take at most kBlockBytes of cache lines, so that they stay in L1 while every
    // output channel reads them; blocks of at least kMinBlockEntries entries per output channel on average, so
    // that the partial sums' trips through y stay cheap next to the FMAs. Narrow outputs (out_w <= 16: a tile
    // of one or two vectors is most of the plane) block by whole shifted planes instead, kNarrowBlockBytes of
    // them, with at least kNarrowMinEntries entries: ResNet-18's 14x14 and 7x7 layers 1.2-1.3x, SqueezeNet's
    // 13x13 classifier 1.5x (Sapphire Rapids, 48 KB L1; one block was faster on Zen 3, 32 KB L1, at larger
    // blocks). With the shifted planes (three times the footprint of one padded plane for a 3x3 conv), block
    // sizes from 8 to 32 entries per output channel, and 16 to 64 KB narrow, all ran ResNet-18's layers within
    // the host's noise (5%); 16 keeps a block within a 32 KB L1.
    const uint64_t rows_read = 3 * uint64_t(g.stride_h) + (uint64_t(g.kh) - 1) * g.dilation_h + 1;
    // a tile's 32 floats per row: 2 lines of each shifted plane, or the lines of the padded row it spans
    const uint64_t lines = shifted_ ? 2 * uint64_t(g.kw)
                                    : (32 * uint64_t(g.stride_w) + uint64_t(g.kw - 1) * g.dilation_w + 15) / 16 + 1;
    const uint64_t min_entries = shifted_ ? kMinBlockEntries : kMinBlockEntriesPadded;
    const uint64_t narrow_min = shifted_ ? kNarrowMinEntries : kNarrowMinEntriesPadded;
    const size_t channel_floats = shifted_ ? size_t(sp_.kw) * sp_.plane : pp_.plane;
    const double per_channel = double(n) / std::max<uint64_t>(1, uint64_t(g.out_c) * g.group_in());  // entries
    uint64_t per_block = std::max<uint64_t>(1, kBlockBytes / (rows_read * lines * 64));
    per_block = std::max<uint64_t>(per_block, uint64_t(min_entries / std::max(per_channel, 1e-9)));
    if (g.out_w <= 16) {
      per_block = std::max<uint64_t>(1, kNarrowBlockBytes / (channel_floats * sizeof(float)));
      per_block = std::max<uint64_t>(per_block, uint64_t(narrow_min / std::max(per_channel, 1e-9)));
    }
    if (per_block >= g.group_in()) per_block = g.group_in();
    cblocks_ = uint32_t((g.group_in() + per_block - 1) / per_block);
    if (cblocks_ > 1) block_major(col, per_block * khw);
    static const char* const names[] = {"direct_f32", "direct_csr_f32", "direct_lut8", "direct_csr_lut8"};
    layout_ = names[static_cast<uint32_t>(w.encoding)];
  }

  void run(Isa isa, const float* x, size_t batch, float* y, const float* bias, uint32_t oy0,
           uint32_t oy1) const override {
    run_residual(isa, x, batch, y, bias, nullptr, oy0, oy1);
  }

  bool adds_residual() const override { return true; }
  void run_residual(Isa isa, const float* x, size_t batch, float* y, const float* bias, const float* r,
                    uint32_t oy0, uint32_t oy1) const override {
    if (oy0 >= oy1) return;
    DirectConvLayout L = view();
    const DirectConvFn fn = direct_kernel(isa);
    float* xp = thread_scratch(L.scratch, Scratch::kConv);
    std::fill(xp + L.group_in, xp + L.scratch, 0.0f);  // the slack (direct.h)
    for (size_t b = 0; b < batch; ++b) {
      L.residual = r ? r + b * geom_.out_size() : nullptr;
      fn(L, x + b * geom_.in_size(), xp, y + b * geom_.out_size(), bias, oy0, oy1);
    }
  }

  bool run_channels(Isa isa, const float* x, float* y, const float* bias, uint32_t o0, uint32_t o1,
                    const float* r) const override {
    if (o0 >= o1) return true;
    DirectConvLayout L = view();
    L.o_begin = o0;
    L.o_end = o1;
    L.residual = r;
    float* xp = thread_scratch(L.scratch, Scratch::kConv);
    std::fill(xp + L.group_in, xp + L.scratch, 0.0f);  // the slack (direct.h)
    direct_kernel(isa)(L, x, xp, y, bias, 0, geom_.out_h);
    return true;
  }

  // Stores the entries block by block (DirectConvLayout::blockptr): a tile's pass over the blocks then reads
  // them in storage order, one sequential stream the hardware prefetches, where channel-major order jumps to
  // every channel's next block (a 512 x 512 x 3 x 3 layer's 1.4 MB of entries, not in cache at 7 x 7: 1.3x as
  // slow as from cache that way). Each output's chain (the entries in column order) is unchanged.
  void block_major(const std::vector<uint32_t>& col, uint64_t block_cols) {
    const uint32_t out_c = geom_.out_c, nb = cblocks_;
    blockptr_.resize(size_t(nb) * (out_c + 1));
    std::vector<uint32_t> start(size_t(nb) * out_c);  // first entry of (o, b) in channel-major order
    for (uint32_t o = 0; o < out_c; ++o) {
      uint32_t e = rowptr_[o];
      for (uint32_t b = 0; b < nb; ++b) {
        start[size_t(o) * nb + b] = e;
        while (e < rowptr_[o + 1] && col[e] < (b + 1) * block_cols) ++e;
      }
    }
    std::vector<uint32_t> perm;  // block-major position -> channel-major entry
    perm.reserve(rowptr_[out_c]);
    for (uint32_t b = 0; b < nb; ++b)
      for (uint32_t o = 0; o <= out_c; ++o) {
        blockptr_[size_t(b) * (out_c + 1) + o] = uint32_t(perm.size());
        if (o == out_c) break;
        const uint32_t e1 = b + 1 < nb ? start[size_t(o) * nb + b + 1] : rowptr_[o + 1];
        for (uint32_t e = start[size_t(o) * nb + b]; e < e1; ++e) perm.push_back(e);
      }
    auto permute = [&](auto& a) {
      if (a.size() == 0) return;
      std::remove_reference_t<decltype(a)> t;
      t.resize(a.size());
      for (size_t i = 0; i < perm.size(); ++i) t[i] = a[perm[i]];
      a = std::move(t);
    };
    permute(off16_);
    permute(off32_);
    permute(idx_);
    permute(val_);
  }

  std::vector<uint32_t> channel_splits(unsigned parts) const override {
    std::vector<uint32_t> cuts{0};
    const uint32_t out_c = geom_.out_c;
    const uint64_t total = rowptr_[out_c];
    for (unsigned k = 1; k < parts; ++k) {  // the first channel whose entries start at or past k / parts
      const uint64_t want = total * k / parts;
      uint32_t o = cuts.back();
      while (o < out_c && rowptr_[o] < want) ++o;
      cuts.push_back(o);
    }
    cuts.push_back(out_c);
    return cuts;
  }

  size_t bytes() const override {
    return rowptr_.bytes() + blockptr_.bytes() + off16_.bytes() + off32_.bytes() + val_.bytes() + idx_.bytes() + k_ * sizeof(float);
  }
  const char* layout() const override { return layout_; }
  const char* method() const override { return "direct"; }

 private:
  DirectConvLayout view() const {
    DirectConvLayout L = shifted_ ? shifted_layout(geom_, sp_, clamp_) : padded_layout(geom_, pp_, clamp_);
    L.rowptr = rowptr_.data();
    L.blockptr = cblocks_ > 1 ? blockptr_.data() : rowptr_.data();
    L.cblocks = cblocks_;
    L.off16 = wide_ ? nullptr : off16_.data();
    L.off32 = wide_ ? off32_.data() : nullptr;
    L.off_shift = off_shift_;
    L.o_begin = 0;
    L.o_end = geom_.out_c;
    L.val = k_ ? nullptr : val_.data();
    L.idx = idx_.data();
    L.lut = lut_.data();
    return L;
  }

  bool shifted_;
  PaddedPlane pp_;
  ShiftedPlanes sp_;
  bool wide_ = false;
  uint32_t off_shift_ = 0;  // DirectConvLayout::off_shift
  uint32_t k_ = 0;
  const char* layout_ = "";
  static constexpr uint64_t kBlockBytes = 16 * 1024, kMinBlockEntries = 16, kMinBlockEntriesPadded = 48;
  static constexpr uint64_t kNarrowBlockBytes = 32 * 1024, kNarrowMinEntries = 24, kNarrowMinEntriesPadded = 48;
  AlignedArray<uint32_t> rowptr_;
  AlignedArray<uint32_t> blockptr_;  // DirectConvLayout::blockptr
  uint32_t cblocks_ = 1;
  AlignedArray<uint16_t> off16_;
  AlignedArray<uint32_t> off32_;
  AlignedArray<float> val_;
  AlignedArray<uint8_t> idx_;
  AlignedArray<float> lut_;
};

template <class Off, class Weight>
void direct_ref(const DirectConvLayout& L, const Off* off, Weight weight, const float* x, float* xp, float* y,
                const float* bias, uint32_t oy0, uint32_t oy1) {
  const size_t plane = size_t(L.out_h) * L.out_w, in_group = size_t(L.group_in_c) * L.in_h * L.in_w;
  for (uint32_t grp = 0; grp < L.groups; ++grp) {
    if ((grp + 1) * L.group_out <= L.o_begin || grp * L.group_out >= L.o_end) continue;  // no channel asked for
    pad_group_ref(L, x + grp * in_group, xp, oy0, oy1);
    for (uint32_t o = std::max(grp * L.group_out, L.o_begin); o < std::min((grp + 1) * L.group_out, L.o_end); ++o) {
      float* yo = y + o * plane;
      for (uint32_t oy = oy0; oy < oy1; ++oy) {
        const float* xr = xp + oy * L.row_step;
        for (uint32_t ox = 0; ox < L.out_w; ++ox) {
          float acc = bias ? bias[o] : 0.0f;  // as the vector kernels: the chain starts at the bias
          for (uint32_t b = 0; b < L.cblocks; ++b) {  // the channel's entries, block by block (blockptr)
            const uint32_t* bp = L.blockptr + size_t(b) * (L.out_c + 1) + o;
            for (uint32_t e = bp[0]; e < bp[1]; ++e) acc += weight(e) * xr[(size_t(off[e]) << L.off_shift) + ox];
          }
          if (L.residual) acc += L.residual[o * plane + size_t(oy) * L.out_w + ox];
          yo[size_t(oy) * L.out_w + ox] = OutputClamp{L.lo, L.hi}(acc);
        }
      }
    }
  }
}

}  // namespace

// Copies the rows that output rows [oy0, oy1) read, of the group_in_c channels at x, into xp: padded,
// phase-split rows, or with L.shifted one shifted row per kernel column (direct.h). Rows outside that range
// are not touched (never read).
void pad_group_ref(const DirectConvLayout& L, const float* x, float* xp, uint32_t oy0, uint32_t oy1) {
  const uint32_t r_lo = oy0 * L.stride_h, r_hi = (oy1 - 1) * L.stride_h + L.taps_h, sw = L.stride_w;
  const size_t channel = L.shifted ? size_t(L.kw) * L.plane : L.plane;
  for (uint32_t c = 0; c < L.group_in_c; ++c) {
    for (uint32_t r = r_lo; r < r_hi; ++r) {
      float* dst = xp + c * channel + size_t(r) * L.rs;
      const int64_t iy = int64_t(r) - L.pad_top;
      const bool row_in = iy >= 0 && iy < int64_t(L.in_h);
      const float* src = row_in ? x + (size_t(c) * L.in_h + size_t(iy)) * L.in_w : nullptr;
      // padded: floats [ph * wph, (ph + 1) * wph) of the row are phase ph; shifted: [kx * plane, + rs) kx's
      const uint32_t parts = L.shifted ? L.kw : sw, len = L.shifted ? L.rs : L.wph;
      for (uint32_t k = 0; k < parts; ++k)
        for (uint32_t j = 0; j < len; ++j) {
          const int64_t ix = L.shifted ? int64_t(j) * sw + int64_t(k) * L.dilation_w - L.pad_left
                                       : int64_t(j) * sw + k - L.pad_left;  // column of x, or padding
          const bool inside = row_in && ix >= 0 && ix < int64_t(L.in_w);
          dst[(L.shifted ? k * L.plane : k * L.wph) + j] = inside ? src[ix] : 0.0f;
        }
    }
  }
}

DirectConvLayout padded_layout(const Conv2dGeometry& g, const PaddedPlane& pp, const OutputClamp& clamp) {
  DirectConvLayout L{};
  L.out_c = g.out_c;
  L.o_begin = 0;
  L.o_end = g.out_c;
  L.out_h = g.out_h;
  L.out_w = g.out_w;
  L.groups = g.groups;
  L.group_out = g.group_out();
  L.group_in_c = g.group_in();
  L.in_h = g.in_h;
  L.in_w = g.in_w;
  L.pad_top = g.pad_top;
  L.pad_left = g.pad_left;
  L.stride_h = g.stride_h;
  L.stride_w = g.stride_w;
  L.taps_h = (g.kh - 1) * g.dilation_h + 1;
  L.wph = pp.wph;
  L.rs = pp.rs;
  L.shifted = false;
  L.off_shift = 0;
  L.kw = 1;
  L.dilation_w = 0;
  L.plane = pp.plane;
  L.row_step = size_t(g.stride_h) * pp.rs;
  L.group_in = size_t(g.group_in()) * pp.plane;
  L.scratch = L.group_in + kDirectSlack;
  L.lo = clamp.lo;
  L.hi = clamp.hi;
  L.residual = nullptr;
  return L;
}

DirectConvLayout shifted_layout(const Conv2dGeometry& g, const ShiftedPlanes& sp, const OutputClamp& clamp) {
  PaddedPlane pp(g);
  DirectConvLayout L = padded_layout(g, pp, clamp);
  L.shifted = true;
  L.wph = 0;
  L.rs = sp.rs;
  L.kw = sp.kw;
  L.dilation_w = g.dilation_w;
  L.plane = sp.plane;
  L.row_step = size_t(g.stride_h) * sp.rs;
  L.group_in = sp.group_floats(g);
  L.scratch = L.group_in + kDirectSlack;
  return L;
}

// The scalar twin of the vector kernels: one output at a time, entries in order.
void pyrt_conv_direct__ref(const DirectConvLayout& L, const float* x, float* xp, float* y, const float* bias,
                           uint32_t oy0, uint32_t oy1) {
  auto run = [&](const auto* off) {
    if (L.val) direct_ref(L, off, [&](uint32_t e) { return L.val[e]; }, x, xp, y, bias, oy0, oy1);
    else direct_ref(L, off, [&](uint32_t e) { return L.lut[L.idx[e]]; }, x, xp, y, bias, oy0, oy1);
  };
  if (L.off16) run(L.off16);
  else run(L.off32);
}

namespace {
std::atomic<DirectPlanes> g_planes{DirectPlanes::automatic};
}  // namespace

void set_direct_planes(DirectPlanes p) { g_planes.store(p); }
DirectPlanes direct_planes_setting() { return g_planes.load(); }

bool shifted_planes_pay(const Conv2dGeometry& g, Isa isa) {
  // never a copy out of proportion to the layer's input and output (kw planes: a wide kernel over a small
  // input), whatever the setting
  const uint64_t shifted = ShiftedPlanes(g).group_floats(g);
  if (!direct_scratch_in_proportion(g, shifted + kDirectSlack)) return false;
  const DirectPlanes p = g_planes.load();
  if (p != DirectPlanes::automatic) return p == DirectPlanes::shifted;
#if PYRT_HAVE_X86_KERNELS
  if (isa < Isa::avx512) return false;
  // depthwise: the copy is most of the work, and kw planes triple it
  if (g.group_in() == 1) return false;
  // offsets that would grow from 16 to 32 bits: the weight stream grows 1.7x
  const bool padded16 = size_t(g.group_in()) * PaddedPlane(g).plane <= 65536;
  return !padded16 || shifted <= (uint64_t(65536) << 3);
#else
  (void)isa;
  return false;
#endif
}

uint64_t direct_conv_scratch_floats(const Conv2dGeometry& g) {
  return uint64_t(g.group_in()) * PaddedPlane(g).plane + kDirectSlack;
}

bool direct_scratch_in_proportion(const Conv2dGeometry& g, uint64_t floats) {
  return floats <= 4 * (uint64_t(g.in_size()) + g.out_size()) + (uint64_t(1) << 16);
}

std::unique_ptr<Conv2d> make_direct_conv(const Conv2dGeometry& g, const DecodedTensor& w) {
  return std::make_unique<DirectConv>(g, w, shifted_planes_pay(g, active_isa()));
}

}  // namespace pyrt::kernels
