// pyruntime: the register tiles of the direct convolution (conv/direct.h), written once over a vector
// traits class V and instantiated by x86/conv_direct_avx2.cpp, x86/conv_direct_avx512.cpp and
// arm/conv_direct_neon.cpp with their own V. Include only from those files (the traits use ISA intrinsics);
// everything here has internal linkage, so the instantiations of two levels can never be merged by the linker.
//
// V provides: vec, mask, kLanes, kCheapMasks (masked loads as fast as plain ones); tail(n) (lanes [0, n),
// n clamped to kLanes); range(lo, hi) (lanes [lo, hi), any int64 bounds); zero(); set1(f); load(p),
// load(p, m) (masked lanes read nothing and are zero); fma(a, b, c) = a * b + c; min(a, b) = a < b ? a : b
// and max(a, b) = a > b ? a : b (vminps / vmaxps); store(p, v), store(p, v, m)
// (masked lanes written nothing); deinterleave2(a, b, &even, &odd) (the even / odd lanes of a then b).
//
// Tile: R output rows x NC vectors of output columns, R * NC <= 12 accumulators (8 for one vector): enough
// independent FMA chains to cover the FMA latency and to spread an entry's scalar work (its offset, weight
// and broadcast) over many FMAs, few enough to leave a register for the broadcast weight (the FMAs take
// their input straight from memory). 12 rather than 8 measured 10-20% faster on Zen 3 at 14 to 28 columns.
// Loads are never masked (a shifted row is whole vectors long: the last vector's extra lanes read the row's
// own zeros or input columns, and all loads are aligned; a padded plane is followed by kDirectSlack zeros);
// only the store of the last vector of a tile is, and only when it is partial, where masks cost extra. Rows
// split into tiles of equal height, at most R (direct_rows).
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

// The offset of entry e (direct.h): 16-bit, 16-bit in units of 8 floats (shifted planes, whose offsets are
// all multiples of 8: 16 bits then cover 512K floats of planes), or 32-bit.
struct Off16 {
  const uint16_t* p;
  size_t operator[](uint32_t e) const { return p[e]; }
};
struct Off16x8 {
  const uint16_t* p;
  size_t operator[](uint32_t e) const { return size_t(p[e]) << 3; }
};
struct Off32 {
  const uint32_t* p;
  size_t operator[](uint32_t e) const { return p[e]; }
};

// The output clamp in registers: min(hi, acc) then max(lo, that), as OutputClamp (a NaN passes both).
template <class V>
struct VClamp {
  typename V::vec lo, hi;
  typename V::vec operator()(typename V::vec v) const { return V::max(lo, V::min(hi, v)); }
};

// Where a tile's FMA chains start and end: the chain of an output runs over the entries of its channel in
// order, one block of input channels at a time (DirectConvLayout::cblocks); between blocks the partial sums
// wait in y (a float stored and loaded back: exact), so the result does not depend on the blocking.
struct ChainPart {
  bool first, last;  // first block: start at the bias; last block: clamp and store the result
};

// Output rows [oy, oy + R), columns [0, (NC - 1) * kLanes + popcount(last)) relative to x / y, where x is
// the padded input of the row oy and first column, y the output of that row and column.
// res: the residual at y's position (Conv2d::run_residual), added on the last block before the clamp as
// fma(1, res, acc) (one rounding: the sum), or null.
template <class V, int R, int NC, bool Masked, class Off, class W>
inline void direct_tile(Off off, const W& w, uint32_t e0, uint32_t e1, const float* x, size_t row_step,
                        float bias, float* y, const float* res, size_t out_w, typename V::mask last,
                        const VClamp<V>& cl, ChainPart part) {
  constexpr int L = V::kLanes;
  typename V::vec acc[R][NC];
  if (part.first) {
    const typename V::vec b = V::set1(bias);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < NC; ++c) acc[r][c] = b;
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (int c = 0; c < NC - 1; ++c) acc[r][c] = V::load(y + r * out_w + c * L);
      const float* q = y + r * out_w + (NC - 1) * L;
      acc[r][NC - 1] = Masked ? V::load(q, last) : V::load(q);
    }
  }
  for (uint32_t e = e0; e < e1; ++e) {
    const typename V::vec wv = V::set1(w(e));
    const float* p = x + off[e];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (int c = 0; c < NC - 1; ++c) acc[r][c] = V::fma(wv, V::load(p + r * row_step + c * L), acc[r][c]);
      // the last vector too is a plain load: lanes past the block read the padded input's next columns (or
      // the slack), and are never stored
      acc[r][NC - 1] = V::fma(wv, V::load(p + r * row_step + (NC - 1) * L), acc[r][NC - 1]);
    }
  }
  if (part.last) {
    if (res) {
      const typename V::vec one = V::set1(1.0f);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
        for (int c = 0; c < NC - 1; ++c) acc[r][c] = V::fma(one, V::load(res + r * out_w + c * L), acc[r][c]);
        const float* q = res + r * out_w + (NC - 1) * L;
        acc[r][NC - 1] = V::fma(one, Masked ? V::load(q, last) : V::load(q), acc[r][NC - 1]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < NC; ++c) acc[r][c] = cl(acc[r][c]);
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < NC - 1; ++c) V::store(y + r * out_w + c * L, acc[r][c]);
    if (Masked) V::store(y + r * out_w + (NC - 1) * L, acc[r][NC - 1], last);
    else V::store(y + r * out_w + (NC - 1) * L, acc[r][NC - 1]);
  }
}

// The last t < R rows [oy, oy + t) in one tile of t rows (T counts down from R - 1 to find it), so a
// short tail still has t independent FMA chains per vector (7 rows: one tile of 7, not 4 + 2 + 1).
template <class V, int T, int NC, bool Masked, class Off, class W>
inline void direct_tail(const DirectConvLayout& Lw, Off off, const W& w, uint32_t e0, uint32_t e1,
                        const float* xg, float bias, float* yo, const float* ro, uint32_t ox0, uint32_t oy,
                        uint32_t t, typename V::mask last, const VClamp<V>& cl, ChainPart part) {
  if constexpr (T >= 1) {
    const size_t at = size_t(oy) * Lw.out_w + ox0;
    if (t == T)
      return direct_tile<V, T, NC, Masked>(off, w, e0, e1, xg + oy * Lw.row_step + ox0, Lw.row_step, bias,
                                           yo + at, ro ? ro + at : nullptr, Lw.out_w, last, cl, part);
    direct_tail<V, T - 1, NC, Masked>(Lw, off, w, e0, e1, xg, bias, yo, ro, ox0, oy, t, last, cl, part);
  }
}

// Rows [oy0, oy1) of the column block at ox0, tile by tile of at most R rows. Within a tile,
// block by block of input channels, every output channel [o0, o1) runs over the block's entries before the
// next block: the tile's input of one block is read from L1 by all of them.
template <class V, int R, int NC, bool Masked, class Off, class W>
inline void direct_rows(const DirectConvLayout& Lw, Off off, const W& w, const float* xg, const float* bias,
                        float* y, uint32_t o0, uint32_t o1, uint32_t ox0, uint32_t oy0, uint32_t oy1,
                        typename V::mask last, const VClamp<V>& cl) {
  const size_t plane = size_t(Lw.out_h) * Lw.out_w;
  const uint32_t nb = Lw.cblocks;
  // tiles of as equal a height as R allows (13 rows at R = 6: 5, 4, 4, not 6, 6, 1): a short tile has few
  // FMA chains, and each entry then waits for the FMA before it on the same chain
  const uint32_t n = oy1 - oy0, tiles = (n + R - 1) / R;
  for (uint32_t k = 0, oy = oy0, t = 0; k < tiles; ++k, oy += t) {
    t = oy0 + uint32_t(uint64_t(n) * (k + 1) / tiles) - oy;
    for (uint32_t cb = 0; cb < nb; ++cb) {
      const ChainPart part{cb == 0, cb + 1 == nb};
      for (uint32_t o = o0; o < o1; ++o) {
        const float b = bias ? bias[o] : 0.0f;
        const uint32_t* bp = Lw.blockptr + size_t(cb) * (Lw.out_c + 1) + o;
        const uint32_t e0 = bp[0], e1 = bp[1];
        if (e0 == e1 && !part.first && !part.last) continue;  // nothing to add
        float* yo = y + o * plane;
        const float* ro = Lw.residual ? Lw.residual + o * plane : nullptr;
        const size_t at = size_t(oy) * Lw.out_w + ox0;
        if (t == R)
          direct_tile<V, R, NC, Masked>(off, w, e0, e1, xg + oy * Lw.row_step + ox0, Lw.row_step, b, yo + at,
                                        ro ? ro + at : nullptr, Lw.out_w, last, cl, part);
        else
          direct_tail<V, R - 1, NC, Masked>(Lw, off, w, e0, e1, xg, b, yo, ro, ox0, oy, t, last, cl, part);
      }
    }
  }
}

// A column block of NC vectors: the last one stored masked unless it is full and masked stores cost more
// than plain ones (AVX2 vmaskmovps; AVX-512 masks are free, so V::kCheapMasks skips the unmasked copy).
template <class V, int R, int NC, class Off, class W>
inline void direct_block(const DirectConvLayout& Lw, Off off, const W& w, const float* xg, const float* bias,
                         float* y, uint32_t o0, uint32_t o1, uint32_t ox0, uint32_t oy0, uint32_t oy1,
                         uint32_t n_last, const VClamp<V>& cl) {
  if constexpr (!V::kCheapMasks)
    if (n_last == V::kLanes)
      return direct_rows<V, R, NC, false>(Lw, off, w, xg, bias, y, o0, o1, ox0, oy0, oy1, V::tail(V::kLanes), cl);
  direct_rows<V, R, NC, true>(Lw, off, w, xg, bias, y, o0, o1, ox0, oy0, oy1, V::tail(n_last), cl);
}

// Plain loads where a whole vector lies inside the input row, masked ones at its edges (masked lanes read
// nothing and are zero). Stores are never masked (AVX2's masked stores cost tens of cycles on Zen 3: with
// two per padded row they were most of a depthwise layer's time): the last vector of a padded row (or
// phase) runs up to a vector past its end, into the next phase, row or channel, which the copy writes
// afterwards, or into rows this call does not read, or the slack after the last channel (kDirectSlack).
template <class V>
inline typename V::vec load_span(const float* src, int64_t s0, int64_t w) {
  if (s0 >= 0 && s0 + V::kLanes <= w) return V::load(src + s0);
  return V::load(src + s0, V::range(-s0, w - s0));
}

// One padded row (conv/direct.h) from the input row src (null: a padding row): rs floats at dst, straight
// from x: stride_w 1 as it is, stride_w 2 as two vectors split into their even and odd phase in registers
// (a copy through memory would stall on store forwarding, 40 cycles a row). Larger strides (rare) copy
// one float at a time.
template <class V>
inline void pad_row(const DirectConvLayout& Lw, const float* src, float* dst) {
  constexpr int64_t L = V::kLanes;
  const int64_t rs = Lw.rs, pl = Lw.pad_left, w = Lw.in_w;
  if (src == nullptr) {
    for (int64_t j = 0; j < rs; j += L) V::store(dst + j, V::zero());
    return;
  }
  if (Lw.stride_w == 1) {
    for (int64_t j = 0; j < rs; j += L) V::store(dst + j, load_span<V>(src, j - pl, w));  // dst[j] = src[j - pl]
    return;
  }
  const int64_t wph = Lw.wph;
  if (Lw.stride_w == 2) {
    typename V::vec odd0 = V::zero();
    for (int64_t j = 0; j < wph; j += L) {  // dst[ph * wph + j + t] = src[2 * (j + t) + ph - pl]
      const int64_t s0 = 2 * j - pl;
      typename V::vec even, odd;
      V::deinterleave2(load_span<V>(src, s0, w), load_span<V>(src, s0 + L, w), &even, &odd);
      V::store(dst + j, even);  // the last one runs into the odd phase's first vector: stored again below
      V::store(dst + wph + j, odd);
      if (j == 0) odd0 = odd;
    }
    V::store(dst + wph, odd0);
    return;
  }
  for (int64_t ph = 0; ph < Lw.stride_w; ++ph)
    for (int64_t j = 0; j < wph; ++j) {
      const int64_t ix = j * Lw.stride_w + ph - pl;
      dst[ph * wph + j] = ix >= 0 && ix < w ? src[ix] : 0.0f;
    }
}

// One shifted row (conv/direct.h) of every kernel column from the input row src (null: a padding row): for
// kx in [0, kw), rs floats at dst + kx * plane, dst[kx * plane + j] = src[j * stride_w + kx * dilation_w -
// pad_left] (0 outside the row). rs is a whole number of vectors, so every store is a full aligned one.
// Stride 1 loads the span as it is, stride 2 splits two vectors into their even lanes in registers; larger
// strides (rare) copy one float at a time.
template <class V>
inline void shift_row(const DirectConvLayout& Lw, const float* src, float* dst) {
  constexpr int64_t L = V::kLanes;
  const int64_t rs = Lw.rs, w = Lw.in_w, sw = Lw.stride_w;
  for (uint32_t kx = 0; kx < Lw.kw; ++kx, dst += Lw.plane) {
    if (src == nullptr) {
      for (int64_t j = 0; j < rs; j += L) V::store(dst + j, V::zero());
      continue;
    }
    const int64_t s = int64_t(kx) * Lw.dilation_w - Lw.pad_left;  // input column of output column 0
    if (sw == 1) {
      for (int64_t j = 0; j < rs; j += L) V::store(dst + j, load_span<V>(src, j + s, w));
    } else if (sw == 2) {
      for (int64_t j = 0; j < rs; j += L) {
        typename V::vec even, odd;
        V::deinterleave2(load_span<V>(src, 2 * j + s, w), load_span<V>(src, 2 * j + s + L, w), &even, &odd);
        V::store(dst + j, even);
      }
    } else {
      for (int64_t j = 0; j < rs; ++j) {
        const int64_t ix = j * sw + s;
        dst[j] = ix >= 0 && ix < w ? src[ix] : 0.0f;
      }
    }
  }
}

// The rows that output rows [oy0, oy1) read, of the group's channels at x, into xp: padded (pad_row) or
// shifted (shift_row, Lw.shifted) rows.
template <class V>
void pad_group(const DirectConvLayout& Lw, const float* x, float* xp, uint32_t oy0, uint32_t oy1) {
  const uint32_t r_lo = oy0 * Lw.stride_h, r_hi = (oy1 - 1) * Lw.stride_h + Lw.taps_h;
  // windows shorter than the stride (1x1 stride 2) leave rows no output reads: skip them
  const bool gaps = Lw.taps_h < Lw.stride_h;
  const size_t channel = Lw.shifted ? size_t(Lw.kw) * Lw.plane : Lw.plane;
  for (uint32_t c = 0; c < Lw.group_in_c; ++c) {
    const float* xc = x + size_t(c) * Lw.in_h * Lw.in_w;
    for (uint32_t r = r_lo; r < r_hi; ++r) {
      if (gaps && r % Lw.stride_h >= Lw.taps_h) continue;
      const int64_t iy = int64_t(r) - Lw.pad_top;
      const float* src = iy >= 0 && iy < int64_t(Lw.in_h) ? xc + size_t(iy) * Lw.in_w : nullptr;
      float* dst = xp + c * channel + size_t(r) * Lw.rs;
      if (Lw.shifted) shift_row<V>(Lw, src, dst);
      else pad_row<V>(Lw, src, dst);
    }
  }
}

// Output channels [o0, o1) of one group over its padded input xg: column block by column block, tile by
// tile (direct_rows), every channel over a tile before the next.
template <class V, class Off, class W>
void direct_channels(const DirectConvLayout& Lw, Off off, const W& w, const float* xg, float* y,
                     const float* bias, uint32_t o0, uint32_t o1, uint32_t oy0, uint32_t oy1) {
  constexpr uint32_t L = V::kLanes;
  const VClamp<V> cl{V::set1(Lw.lo), V::set1(Lw.hi)};
  // column blocks of up to 4 vectors; a narrower last block takes fewer vectors and more rows
  for (uint32_t ox0 = 0; ox0 < Lw.out_w;) {
    const uint32_t n = std::min(Lw.out_w - ox0, 4 * L), nc = (n + L - 1) / L, n_last = n - (nc - 1) * L;
    switch (nc) {
      case 1: direct_block<V, 8, 1>(Lw, off, w, xg, bias, y, o0, o1, ox0, oy0, oy1, n_last, cl); break;
      case 2: direct_block<V, 6, 2>(Lw, off, w, xg, bias, y, o0, o1, ox0, oy0, oy1, n_last, cl); break;
      case 3: direct_block<V, 4, 3>(Lw, off, w, xg, bias, y, o0, o1, ox0, oy0, oy1, n_last, cl); break;
      default: direct_block<V, 3, 4>(Lw, off, w, xg, bias, y, o0, o1, ox0, oy0, oy1, n_last, cl); break;
    }
    ox0 += n;
  }
}

// The kernel of one ISA (DirectConvFn): group by group, the copy (shifted or padded), then the group's channels.
template <class V>
void direct_conv(const DirectConvLayout& Lw, const float* x, float* xp, float* y, const float* bias, uint32_t oy0,
                 uint32_t oy1) {
  const size_t in_group = size_t(Lw.group_in_c) * Lw.in_h * Lw.in_w;
  for (uint32_t grp = 0; grp < Lw.groups; ++grp) {
    const uint32_t o0 = std::max(grp * Lw.group_out, Lw.o_begin), o1 = std::min((grp + 1) * Lw.group_out, Lw.o_end);
    if (o0 >= o1) continue;  // no channel of this group asked for (Conv2d::run_channels)
    pad_group<V>(Lw, x + grp * in_group, xp, oy0, oy1);
    auto run = [&](auto off) {
      if (Lw.val) direct_channels<V>(Lw, off, F32Entries{Lw.val}, xp, y, bias, o0, o1, oy0, oy1);
      else direct_channels<V>(Lw, off, LutEntries{Lw.idx, Lw.lut}, xp, y, bias, o0, o1, oy0, oy1);
    };
    if (Lw.off16 && Lw.off_shift == 3) run(Off16x8{Lw.off16});
    else if (Lw.off16) run(Off16{Lw.off16});
    else run(Off32{Lw.off32});
  }
}

}  // namespace
}  // namespace pyrt::kernels
