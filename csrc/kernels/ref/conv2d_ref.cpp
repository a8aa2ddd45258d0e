// pyruntime: the scalar oracle of the 2-D convolution (kernels/conv/conv2d.h), exactly the formula at the
// top of conv2d.h. Plain loops, f32 accumulation in natural order (c, ky, kx), padding taps skipped (they
// read zero), bias added last. The weight stays packed: one row is decoded at a time (decode_row) into a
// buffer of K floats, reused for every sample and output position of that row.
#include <vector>

#include "kernels/conv/conv2d.h"

namespace pyrt::kernels::ref {

void conv2d(const Conv2dGeometry& g, const PackedWeight* const* parts, uint32_t nparts, const float* x, size_t batch,
            float* y, const float* bias, uint32_t oy0, uint32_t oy1) {
  const uint32_t cg = g.group_in(), og = g.group_out(), rows_per_part = g.out_c / nparts;
  const size_t in_plane = size_t(g.in_h) * g.in_w, out_plane = size_t(g.out_h) * g.out_w;
  std::vector<float> row(g.patch());  // one decoded weight row (an oracle: allocation is fine here)
  for (uint32_t o = 0; o < g.out_c; ++o) {
    parts[o / rows_per_part]->decode_row(o % rows_per_part, row.data());
    const uint32_t grp = o / og;
    for (size_t b = 0; b < batch; ++b) {
      const float* xg = x + b * g.in_size() + size_t(grp) * cg * in_plane;
      float* yo = y + b * g.out_size() + size_t(o) * out_plane;
      for (uint32_t oy = oy0; oy < oy1; ++oy) {
        for (uint32_t ox = 0; ox < g.out_w; ++ox) {
          float acc = 0.0f;
          for (uint32_t c = 0; c < cg; ++c) {
            for (uint32_t ky = 0; ky < g.kh; ++ky) {
              // signed: taps above / left of the input are padding
              const int64_t iy = int64_t(oy) * g.stride_h - int64_t(g.pad_top) + int64_t(ky) * g.dilation_h;
              if (iy < 0 || iy >= int64_t(g.in_h)) continue;
              const float* xrow = xg + c * in_plane + size_t(iy) * g.in_w;
              const float* wrow = row.data() + (size_t(c) * g.kh + ky) * g.kw;
              for (uint32_t kx = 0; kx < g.kw; ++kx) {
                const int64_t ix = int64_t(ox) * g.stride_w - int64_t(g.pad_left) + int64_t(kx) * g.dilation_w;
                if (ix < 0 || ix >= int64_t(g.in_w)) continue;
                acc += wrow[kx] * xrow[ix];
              }
            }
          }
          yo[size_t(oy) * g.out_w + ox] = acc + (bias ? bias[o] : 0.0f);
        }
      }
    }
  }
}

}  // namespace pyrt::kernels::ref
