// pyruntime: 2-D max / average / global-average pools (NCHW). Portable loops: a pool reads each input
// about kernel^2 / stride^2 times and is bound by memory, not arithmetic, next to the convolutions around
// it, once its inner loops are contiguous (f32 max: separable, rows then columns). The window bounds are
// computed once per output row / column, not per tap.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/kernels.h"
#include "kernels/ref/ref_kernels.h"

namespace pyrt::kernels::ref {
namespace {

struct Span {
  int64_t lo, hi;    // clipped to the input
  int64_t padded;    // length clipped to the padded extent (count_include_pad divisor)
};

Span window(uint32_t o, uint32_t stride, uint32_t pad_lo, uint32_t pad_hi, uint32_t kernel, uint32_t in) {
  const int64_t start = int64_t(o) * stride - pad_lo;
  const int64_t end = std::min<int64_t>(start + kernel, int64_t(in) + pad_hi);
  return {std::max<int64_t>(start, 0), std::min<int64_t>(end, in), end - start};
}

template <class T, class Reduce>
void pool(const Pool2dGeometry& g, const T* x, size_t batch, T* y, Reduce reduce) {
  const size_t in_plane = size_t(g.in_h) * g.in_w, out_plane = size_t(g.out_h) * g.out_w;
  for (size_t p = 0; p < batch * g.channels; ++p) {
    const T* xp = x + p * in_plane;
    T* yp = y + p * out_plane;
    for (uint32_t oy = 0; oy < g.out_h; ++oy) {
      const Span r = window(oy, g.stride_h, g.pad_top, g.pad_bottom, g.kernel_h, g.in_h);
      for (uint32_t ox = 0; ox < g.out_w; ++ox) {
        const Span c = window(ox, g.stride_w, g.pad_left, g.pad_right, g.kernel_w, g.in_w);
        yp[size_t(oy) * g.out_w + ox] = reduce(xp, r, c);
      }
    }
  }
}

}  // namespace

// NaN wins (as torch), else the larger. Two selects without branches (vmaxps, then a NaN m kept), so the
// row loop vectorizes and the column loop does not mispredict on random data.
inline float max_or_nan(float m, float v) {
  const float r = m > v ? m : v;  // v when either is NaN
  return m != m ? m : r;
}

// Separable: per output row, the max over its window's input rows, column by column (a vector loop over
// the row), then per output the max over its window's columns of that row. For the second pass the row of
// maxima is split into stride_w phases (phase ph holds columns ph, ph + stride_w, ...), so that for the
// outputs whose window lies inside the row every tap is a contiguous vector loop over ox; the few outputs
// at the edges (windows clipped by the padding) take the scalar loop. A window holds at least one input
// (FORMAT.md 2.4). Scratch (kConv): the row of maxima, then its phases.
void max_pool2d_f32(const Pool2dGeometry& g, const float* x, size_t batch, float* y) {
  const size_t W = g.in_w, sw = g.stride_w, wph = (W + sw - 1) / sw;
  float* rowmax = thread_scratch(W + sw * wph, Scratch::kConv);
  float* phases = rowmax + W;
  const size_t in_plane = size_t(g.in_h) * W, out_plane = size_t(g.out_h) * g.out_w;
  // outputs [ox_lo, ox_hi) read columns ox * sw - pad_left + [0, kernel_w), all inside the row
  const int64_t pl = g.pad_left, kw = g.kernel_w;
  const int64_t ox_lo = std::min<int64_t>(g.out_w, (pl + int64_t(sw) - 1) / int64_t(sw));
  const int64_t last = int64_t(W) + pl - kw;  // the largest ox * sw with the window inside
  const int64_t ox_hi = std::max<int64_t>(ox_lo, last < 0 ? 0 : std::min<int64_t>(g.out_w, last / int64_t(sw) + 1));
  for (size_t p = 0; p < batch * g.channels; ++p) {
    const float* xp = x + p * in_plane;
    float* yp = y + p * out_plane;
    for (uint32_t oy = 0; oy < g.out_h; ++oy) {
      const Span r = window(oy, g.stride_h, g.pad_top, g.pad_bottom, g.kernel_h, g.in_h);
      std::copy(xp + r.lo * W, xp + (r.lo + 1) * W, rowmax);
      for (int64_t iy = r.lo + 1; iy < r.hi; ++iy) {
        const float* row = xp + iy * W;
        for (size_t ix = 0; ix < W; ++ix) rowmax[ix] = max_or_nan(rowmax[ix], row[ix]);
      }
      float* yr = yp + size_t(oy) * g.out_w;
      auto edge = [&](int64_t ox) {
        const Span c = window(uint32_t(ox), g.stride_w, g.pad_left, g.pad_right, g.kernel_w, g.in_w);
        float m = rowmax[c.lo];
        for (int64_t ix = c.lo + 1; ix < c.hi; ++ix) m = max_or_nan(m, rowmax[ix]);
        yr[ox] = m;
      };
      for (int64_t ox = 0; ox < ox_lo; ++ox) edge(ox);
      if (ox_lo < ox_hi) {
        const float* ph = rowmax;
        if (sw > 1) {
          for (size_t q = 0; q < sw; ++q)
            for (size_t j = 0; j * sw + q < W; ++j) phases[q * wph + j] = rowmax[j * sw + q];
          ph = phases;
        }
        for (int64_t k = 0; k < kw; ++k) {
          // column ox * sw + k - pl = phase q, index ox + d within it
          const int64_t t = k - pl, q = ((t % int64_t(sw)) + int64_t(sw)) % int64_t(sw), d = (t - q) / int64_t(sw);
          const float* src = ph + q * wph + d;
          if (k == 0) {
            for (int64_t ox = ox_lo; ox < ox_hi; ++ox) yr[ox] = src[ox];
          } else {
            for (int64_t ox = ox_lo; ox < ox_hi; ++ox) yr[ox] = max_or_nan(yr[ox], src[ox]);
          }
        }
      }
      for (int64_t ox = ox_hi; ox < int64_t(g.out_w); ++ox) edge(ox);
      for (uint32_t ox = 0; ox < g.out_w; ++ox)
        yr[ox] = yr[ox] != yr[ox] ? std::numeric_limits<float>::quiet_NaN() : yr[ox];
    }
  }
}

void max_pool2d_s8(const Pool2dGeometry& g, const int8_t* x, size_t batch, int8_t* y) {
  pool(g, x, batch, y, [&](const int8_t* xp, const Span& r, const Span& c) {
    int8_t m = std::numeric_limits<int8_t>::min();  // every window overlaps the input (FORMAT.md 2.4)
    for (int64_t iy = r.lo; iy < r.hi; ++iy)
      for (int64_t ix = c.lo; ix < c.hi; ++ix) m = std::max(m, xp[iy * g.in_w + ix]);
    return m;
  });
}

void max_pool2d_b1c(const Pool2dGeometry& g, const uint64_t* x, size_t batch, uint64_t* y) {
  const size_t cw = (size_t(g.channels) + 63) / 64, in_pixels = size_t(g.in_h) * g.in_w;
  for (size_t b = 0; b < batch; ++b, x += in_pixels * cw) {
    for (uint32_t oy = 0; oy < g.out_h; ++oy) {
      const Span r = window(oy, g.stride_h, g.pad_top, g.pad_bottom, g.kernel_h, g.in_h);
      for (uint32_t ox = 0; ox < g.out_w; ++ox, y += cw) {
        const Span c = window(ox, g.stride_w, g.pad_left, g.pad_right, g.kernel_w, g.in_w);
        std::fill(y, y + cw, uint64_t(0));
        for (int64_t iy = r.lo; iy < r.hi; ++iy)
          for (int64_t ix = c.lo; ix < c.hi; ++ix) {
            const uint64_t* px = x + (size_t(iy) * g.in_w + size_t(ix)) * cw;
            for (size_t j = 0; j < cw; ++j) y[j] |= px[j];
          }
      }
    }
  }
}

void avg_pool2d_f32(const Pool2dGeometry& g, const float* x, size_t batch, float* y) {
  pool(g, x, batch, y, [&](const float* xp, const Span& r, const Span& c) {
    float s = 0.0f;
    for (int64_t iy = r.lo; iy < r.hi; ++iy)
      for (int64_t ix = c.lo; ix < c.hi; ++ix) s += xp[iy * g.in_w + ix];
    const int64_t n = g.count_include_pad ? r.padded * c.padded : (r.hi - r.lo) * (c.hi - c.lo);
    return s / static_cast<float>(n);
  });
}

void global_avg_pool_f32(const float* x, size_t batch, uint32_t channels, size_t plane, float* y) {
  for (size_t p = 0; p < batch * channels; ++p) {
    const float* xp = x + p * plane;
    double s = 0.0;  // planes can be large (112 x 112): keep the mean exact to float precision
    for (size_t i = 0; i < plane; ++i) s += xp[i];
    y[p] = static_cast<float>(s / static_cast<double>(plane));
  }
}

}  // namespace pyrt::kernels::ref
