// pyruntime: the register tiles of the direct convolution (conv/direct.h), written once over a vector
// traits class V and instantiated by x86/conv_direct_avx2.cpp and x86/conv_direct_avx512.cpp with their
// own V. Include only from those files (the traits use ISA intrinsics); everything here has internal
// linkage, so the AVX2 and AVX-512 instantiations can never be merged by the linker.
//
// V provides: vec, mask, kLanes; tail(n) (lanes [0, n)); set1(f); load(p), load(p, m) (masked lanes read
// nothing); fma(a, b, c) = a * b + c; store(p, v),
// store(p, v, m).
//
// Tile: R output rows x NC vectors of output columns, R * NC <= 8 accumulators (enough independent FMA
// chains to cover the FMA latency, few enough to leave registers for the loads and the broadcast weight).
// Only the last vector of a tile is masked. Rows left over below R go through tiles of R / 2, R / 4, ...
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/conv/direct.h"

namespace pyrt::kernels {
namespace {

// The weight of entry e: the stored f32, or the centroid its codebook index names.
struct F32Entries {
  const float* val;
  float operator()(uint32_t e) const { return val[e]; }
};
struct LutEntries {
  const uint8_t* idx;
  const float* lut;
  float operator()(uint32_t e) const { return lut[idx[e]]; }
};

// Output rows [oy, oy + R), columns [0, (NC - 1) * kLanes + popcount(last)) relative to x / y, where x is
// the padded input of the row oy and first column, y the output of that row and column.
template <class V, int R, int NC, class Off, class W>
inline void direct_tile(const Off* off, const W& w, uint32_t e0, uint32_t e1, const float* x, size_t row_step,
                        float bias, float* y, size_t out_w, typename V::mask last) {
  constexpr int L = V::kLanes;
  typename V::vec acc[R][NC];
  const typename V::vec b = V::set1(bias);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) acc[r][c] = b;
  for (uint32_t e = e0; e < e1; ++e) {
    const typename V::vec wv = V::set1(w(e));
    const float* p = x + off[e];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (int c = 0; c < NC - 1; ++c) acc[r][c] = V::fma(wv, V::load(p + r * row_step + c * L), acc[r][c]);
      acc[r][NC - 1] = V::fma(wv, V::load(p + r * row_step + (NC - 1) * L, last), acc[r][NC - 1]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < NC - 1; ++c) V::store(y + r * out_w + c * L, acc[r][c]);
    V::store(y + r * out_w + (NC - 1) * L, acc[r][NC - 1], last);
  }
}

// Rows [oy, oy1) in tiles of R, the rest in tiles of R / 2, R / 4, ..., 1.
template <class V, int R, int NC, class Off, class W>
inline void direct_rows(const DirectConvLayout& Lw, const Off* off, const W& w, uint32_t e0, uint32_t e1,
                        const float* xg, float bias, float* yo, uint32_t ox0, uint32_t oy, uint32_t oy1,
                        typename V::mask last) {
  for (; oy + R <= oy1; oy += R)
    direct_tile<V, R, NC>(off, w, e0, e1, xg + oy * Lw.row_step + ox0, Lw.row_step, bias,
                          yo + size_t(oy) * Lw.out_w + ox0, Lw.out_w, last);
  if constexpr (R > 1)
    if (oy < oy1) direct_rows<V, R / 2, NC>(Lw, off, w, e0, e1, xg, bias, yo, ox0, oy, oy1, last);
}

template <class V, class Off, class W>
void direct_channels(const DirectConvLayout& Lw, const Off* off, const W& w, const float* xp, float* y,
                     const float* bias, uint32_t oy0, uint32_t oy1) {
  constexpr uint32_t L = V::kLanes;
  const size_t plane = size_t(Lw.out_h) * Lw.out_w;
  for (uint32_t o = 0; o < Lw.out_c; ++o) {
    const float* xg = xp + size_t(o / Lw.group_out) * Lw.group_in;
    float* yo = y + o * plane;
    const float b = bias ? bias[o] : 0.0f;
    const uint32_t e0 = Lw.rowptr[o], e1 = Lw.rowptr[o + 1];
    // column blocks of up to 4 vectors; a narrower last block takes fewer vectors and more rows
    for (uint32_t ox0 = 0; ox0 < Lw.out_w;) {
      const uint32_t n = std::min(Lw.out_w - ox0, 4 * L), nc = (n + L - 1) / L;
      const typename V::mask last = V::tail(n - (nc - 1) * L);
      switch (nc) {
        case 1: direct_rows<V, 8, 1>(Lw, off, w, e0, e1, xg, b, yo, ox0, oy0, oy1, last); break;
        case 2: direct_rows<V, 4, 2>(Lw, off, w, e0, e1, xg, b, yo, ox0, oy0, oy1, last); break;
        case 3: direct_rows<V, 2, 3>(Lw, off, w, e0, e1, xg, b, yo, ox0, oy0, oy1, last); break;
        default: direct_rows<V, 2, 4>(Lw, off, w, e0, e1, xg, b, yo, ox0, oy0, oy1, last); break;
      }
      ox0 += n;
    }
  }
}

// The kernel of one ISA: picks the offset width and the weight source.
template <class V>
void direct_conv(const DirectConvLayout& Lw, const float* xp, float* y, const float* bias, uint32_t oy0, uint32_t oy1) {
  if (Lw.off16) {
    if (Lw.val) direct_channels<V>(Lw, Lw.off16, F32Entries{Lw.val}, xp, y, bias, oy0, oy1);
    else direct_channels<V>(Lw, Lw.off16, LutEntries{Lw.idx, Lw.lut}, xp, y, bias, oy0, oy1);
  } else {
    if (Lw.val) direct_channels<V>(Lw, Lw.off32, F32Entries{Lw.val}, xp, y, bias, oy0, oy1);
    else direct_channels<V>(Lw, Lw.off32, LutEntries{Lw.idx, Lw.lut}, xp, y, bias, oy0, oy1);
  }
}

}  // namespace
}  // namespace pyrt::kernels
