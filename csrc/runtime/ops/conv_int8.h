// pyruntime: what the int8 convolution steps share (ops/conv_int8.cpp: im2col into the int8 GEMM;
// ops/conv_int8_depthwise.cpp: direct depthwise).
#pragma once

#include <algorithm>
#include <memory>

#include "kernels/conv/conv2d.h"
#include "runtime/step.h"

namespace pyrt::runtime::ops {

// The rows and columns of the zero-padded input the int8 convolutions copy: the input with its top / left
// padding, or as far as the last window reaches, whichever is larger (bottom / right padding is implied).
inline size_t padded_rows(const kernels::Conv2dGeometry& g) {
  return std::max<size_t>(size_t(g.pad_top) + g.in_h, size_t(g.out_h - 1) * g.stride_h + size_t(g.kh - 1) * g.dilation_h + 1);
}
inline size_t padded_cols(const kernels::Conv2dGeometry& g) {
  return std::max<size_t>(size_t(g.pad_left) + g.in_w, size_t(g.out_w - 1) * g.stride_w + size_t(g.kw - 1) * g.dilation_w + 1);
}

// A depthwise int8 convolution (one input channel per group): conv2d with an int8 weight (dynamic) or
// qconv2d (static, attributes a). Fills li's layout, method and bytes.
std::unique_ptr<Step> make_int8_depthwise(const BuildContext& ctx, LayerInfo& li, bool is_static,
                                          const QLinearAttrs& a);

}  // namespace pyrt::runtime::ops
