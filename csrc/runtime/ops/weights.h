// pyruntime: what the weighted op families (linear, conv2d) share: a bias, owned or read in place from a
// mapped file, and the LayerInfo fields of a weight tensor.
#pragma once

#include <cstddef>

#include "common/aligned.h"
#include "kernels/conv/conv2d.h"
#include "runtime/step.h"

namespace pyrt::runtime::ops {

class Bias {
 public:
  // The node's second tensor when it has one (null data otherwise); adds its bytes to `li`.
  Bias(const BuildContext& ctx, LayerInfo& li);
  const float* data() const { return data_; }
  size_t in_place_bytes() const { return in_place_bytes_; }

 private:
  const float* data_ = nullptr;
  AlignedArray<float> owned_;
  size_t in_place_bytes_ = 0;
};

// name, encoding, shape, nnz, bits, codebook_size, file_bytes and dense_bytes of the node's weight
// (tensor 0); the caller adds layout, method, exec_bytes and in_place.
void describe_weight(const BuildContext& ctx, LayerInfo& li);

// The geometry of a conv2d node (its input and output shapes, attributes and weight shape).
kernels::Conv2dGeometry conv_geometry(const BuildContext& ctx);

}  // namespace pyrt::runtime::ops
