// pyruntime: what the int8 convolution steps share (ops/conv_int8.cpp: im2col into the int8 GEMM;
// ops/conv_int8_depthwise.cpp: direct depthwise).
#pragma once

#include <memory>

#include "runtime/step.h"

namespace pyrt::runtime::ops {

// A depthwise int8 convolution (one input channel per group): conv2d with an int8 weight (dynamic) or
// qconv2d (static, attributes a). Fills li's layout, method and bytes.
std::unique_ptr<Step> make_int8_depthwise(const BuildContext& ctx, LayerInfo& li, bool is_static,
                                          const QLinearAttrs& a);

}  // namespace pyrt::runtime::ops
