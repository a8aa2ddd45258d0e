// pyruntime: 2-D max / average / global-average pools (NCHW). Portable loops: a pool reads each input
// about kernel^2 / stride^2 times and is bound by memory, not arithmetic, next to the convolutions around
// it, once its inner loops are contiguous (f32 max: separable, rows then columns). The window bounds are
// computed once per output row / column, not per tap.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/kernels.h"
#include "kernels/pool_max_f32.h"
#include "kernels/ref/ref_kernels.h"

namespace pyrt::kernels::ref {
namespace {

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

// The separable f32 max pool (kernels/pool_max_f32.h), compiled here for the baseline ISA; the x86 levels
// compile the same code with their vector widths (x86/pool_avx2.cpp, x86/pool_avx512.cpp).
void max_pool2d_f32(const Pool2dGeometry& g, const float* x, size_t batch, float* y) {
  max_pool2d_f32_impl<ScalarPoolOps>(g, x, batch, y);
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
