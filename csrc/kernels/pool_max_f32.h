// pyruntime: the f32 max pool (ref_kernels.h: max_pool2d_f32), one body for every level over a policy Ops of
// its three contiguous loops: ScalarPoolOps here (ref/pool2d.cpp), vector ones in x86/pool_avx2.cpp and
// x86/pool_avx512.cpp. Every output is a max over the same inputs (max_or_nan is exact, and a NaN anywhere
// in a window gives the one quiet NaN), so every level gives the same bits. Include only from those files:
// everything here has internal linkage.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "kernels/kernels.h"
#include "kernels/ref/ref_kernels.h"

namespace pyrt::kernels {
namespace {

struct Span {
  int64_t lo, hi;    // clipped to the input
  int64_t padded;    // length clipped to the padded extent (count_include_pad divisor)
};

inline Span window(uint32_t o, uint32_t stride, uint32_t pad_lo, uint32_t pad_hi, uint32_t kernel, uint32_t in) {
  const int64_t start = int64_t(o) * stride - pad_lo;
  const int64_t end = std::min<int64_t>(start + kernel, int64_t(in) + pad_hi);
  return {std::max<int64_t>(start, 0), std::min<int64_t>(end, in), end - start};
}

// NaN wins (as torch), else the larger. Two selects without branches (vmaxps, then a NaN m kept), so the
// row loop vectorizes and the column loop does not mispredict on random data.
inline float max_or_nan(float m, float v) {
  const float r = m > v ? m : v;  // v when either is NaN
  return m != m ? m : r;
}

// The loops the vector levels replace. Their destinations other than finish()'s are scratch rows followed by
// kPoolSlack floats, which a vector level may overwrite (full-width stores: a masked store read back at once
// stalls the load on some cores); their sources may be the input, read no further than n.
constexpr size_t kPoolSlack = 16;
struct ScalarPoolOps {
  // y[i] = max_or_nan(a[i], b[i]), i < n
  static void max_of(float* y, const float* a, const float* b, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = max_or_nan(a[i], b[i]);
  }
  // even[j] = row[2 j], odd[j] = row[2 j + 1] for j < h (row holds 2 h floats, slack after it)
  static void split2(const float* row, size_t h, float* even, float* odd) {
    for (size_t j = 0; j < h; ++j) {
      even[j] = row[2 * j];
      odd[j] = row[2 * j + 1];
    }
  }
  // y[i] = src[i] with every NaN made the one quiet NaN, i < n (y: the output, written exactly)
  static void finish(float* y, const float* src, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = quiet(src[i]);
  }
  // windows of three: y[i] = max_or_nan(max_or_nan(a[i], b[i]), c[i]), as max_of twice in one pass
  static void max3_of(float* y, const float* a, const float* b, const float* c, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = max_or_nan(max_or_nan(a[i], b[i]), c[i]);
  }
  // the same then finish() in one pass (y: the output, written exactly)
  static void max3_finish(float* y, const float* a, const float* b, const float* c, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = quiet(max_or_nan(max_or_nan(a[i], b[i]), c[i]));
  }
  // windows of three at stride 2 straight from the padded row p: y[j] = the same of p[2 j], p[2 j + 1],
  // p[2 j + 2] (p may be read up to kPoolReadPast floats past 2 ow; y: the output, written exactly)
  static void max3s2_finish(float* y, const float* p, size_t n) {
    for (size_t j = 0; j < n; ++j) y[j] = quiet(max_or_nan(max_or_nan(p[2 * j], p[2 * j + 1]), p[2 * j + 2]));
  }
  static float quiet(float v) { return v != v ? std::numeric_limits<float>::quiet_NaN() : v; }
};
// floats past 2 ow that max3s2_finish may read (whole vectors of 16 outputs: up to 30), reserved at the end of
// the scratch; those reads land in the phases and output rows after the padded row (unused by 3x3 / 2 pools)
// and only feed lanes that are never stored
constexpr size_t kPoolReadPast = 48;

// Separable: per output row, the max over its window's input rows, column by column (a vector loop over
// the row), into a row of maxima padded with -inf on both sides (max_or_nan(-inf, v) = v, NaN included, and
// no window is all padding: FORMAT.md 2.4); then per output the max over its window's columns of that row.
// For the second pass the padded row is split into stride_w phases (phase q holds padded columns q,
// q + stride_w, ...), so that every tap is one contiguous vector loop over all the row's outputs, edges
// included (3-wide windows at stride 2, the common pool, read the padded row in place: max3s2_finish). Scratch
// (kConv): the padded row of maxima, its phases and the row of outputs, each followed by kPoolSlack floats.
template <class Ops>
void max_pool2d_f32_impl(const ref::Pool2dGeometry& g, const float* x, size_t batch, float* y) {
  const size_t W = g.in_w, sw = g.stride_w, kw = g.kernel_w, pl = g.pad_left, ow = g.out_w;
  // padded columns the outputs read: (out_w - 1) * sw + kw, at least pl + W; a whole number of phases
  const size_t wph = (std::max<size_t>((ow - 1) * sw + kw, pl + W) + sw - 1) / sw, wp = wph * sw;
  float* rowmax =
      thread_scratch(wp + kPoolSlack + sw * (wph + kPoolSlack) + ow + kPoolSlack + kPoolReadPast, Scratch::kConv);
  float* phases = rowmax + wp + kPoolSlack;
  float* out = phases + sw * (wph + kPoolSlack);
  const float ninf = -std::numeric_limits<float>::infinity();
  std::fill(rowmax, rowmax + pl, ninf);
  std::fill(rowmax + pl + W, rowmax + wp, ninf);
  float* row = rowmax + pl;
  const size_t in_plane = size_t(g.in_h) * W, out_plane = size_t(g.out_h) * ow;
  for (size_t p = 0; p < batch * g.channels; ++p) {
    const float* xp = x + p * in_plane;
    float* yp = y + p * out_plane;
    for (uint32_t oy = 0; oy < g.out_h; ++oy) {
      const Span r = window(oy, g.stride_h, g.pad_top, g.pad_bottom, g.kernel_h, g.in_h);
      if (r.hi - r.lo == 3) {  // 3x3 pools: one pass
        Ops::max3_of(row, xp + r.lo * W, xp + (r.lo + 1) * W, xp + (r.lo + 2) * W, W);
      } else if (r.hi - r.lo >= 2) {
        Ops::max_of(row, xp + r.lo * W, xp + (r.lo + 1) * W, W);
        for (int64_t iy = r.lo + 2; iy < r.hi; ++iy) Ops::max_of(row, row, xp + iy * W, W);
      } else {
        std::copy(xp + r.lo * W, xp + r.hi * W, row);
      }
      std::fill(row + W, rowmax + wp, ninf);  // the right padding, where the slack of a vector store ran
      if (sw == 2 && kw == 3) {  // 3x3 / 2 pools: no phases, one pass
        Ops::max3s2_finish(yp + size_t(oy) * ow, rowmax, ow);
        continue;
      }
      const float* ph = rowmax;
      size_t stride = 0;  // floats between phases
      if (sw == 2) {
        Ops::split2(rowmax, wph, phases, phases + wph + kPoolSlack);
        ph = phases, stride = wph + kPoolSlack;
      } else if (sw > 2) {
        for (size_t q = 0; q < sw; ++q)
          for (size_t j = 0; j < wph; ++j) phases[q * (wph + kPoolSlack) + j] = rowmax[j * sw + q];
        ph = phases, stride = wph + kPoolSlack;
      }
      // tap k of output ox: padded column ox * sw + k = phase k % sw, index ox + k / sw
      auto tap = [&](size_t k) { return ph + (k % sw) * stride + k / sw; };
      if (kw == 3) {
        Ops::max3_finish(yp + size_t(oy) * ow, tap(0), tap(1), tap(2), ow);
      } else if (kw >= 2) {
        Ops::max_of(out, tap(0), tap(1), ow);
        for (size_t k = 2; k < kw; ++k) Ops::max_of(out, out, tap(k), ow);
        Ops::finish(yp + size_t(oy) * ow, out, ow);
      } else {
        Ops::finish(yp + size_t(oy) * ow, tap(0), ow);
      }
    }
  }
}

}  // namespace
}  // namespace pyrt::kernels
