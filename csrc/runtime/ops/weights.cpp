#include "runtime/ops/weights.h"

#include <cstring>

namespace pyrt::runtime::ops {

Bias::Bias(const BuildContext& ctx, LayerInfo& li) {
  if (ctx.node.tensors.size() < 2) return;
  const DecodedTensor& b = ctx.tensor(1);
  const size_t n = b.value_count();
  if (b.mapped_values && ctx.in_place) {  // 4-byte aligned in the file: no kernel needs more for a bias
    data_ = b.mapped_values;
    in_place_bytes_ = n * sizeof(float);
  } else {
    owned_.resize(n);
    if (n) std::memcpy(owned_.data(), b.value_data(), n * sizeof(float));
    data_ = owned_.data();
  }
  li.file_bytes += ctx.tensor_file_bytes(1);
  li.exec_bytes += n * sizeof(float);
  li.dense_bytes += n * sizeof(float);
}

void describe_weight(const BuildContext& ctx, LayerInfo& li) {
  const DecodedTensor& w = ctx.tensor(0);
  li.name = w.name;
  li.encoding = encoding_name(w.encoding);
  li.shape = w.shape;
  li.nnz = w.count_nonzero();
  li.bits = has_codebook(w.encoding)          ? w.index_bits
            : is_int8(w.encoding)               ? 8
            : w.encoding == Encoding::binary    ? 1
                                                : 32;
  li.codebook_size = has_codebook(w.encoding) ? uint32_t(w.centroids.size()) : 0;
  li.file_bytes = ctx.tensor_file_bytes(0);
  li.dense_bytes = w.numel() * sizeof(float);
}

kernels::Conv2dGeometry conv_geometry(const BuildContext& ctx) {
  const std::vector<uint32_t>& in = *ctx.in_shapes[0];
  const std::vector<uint32_t>& out = ctx.out_shape;
  const DecodedTensor& w = ctx.tensor(0);
  const Conv2dAttrs a = conv2d_attrs(ctx.node.attrs);
  kernels::Conv2dGeometry g;
  g.in_c = in[0], g.in_h = in[1], g.in_w = in[2];
  g.out_c = out[0], g.out_h = out[1], g.out_w = out[2];
  g.kh = w.shape[2], g.kw = w.shape[3];
  g.stride_h = a.stride_h, g.stride_w = a.stride_w, g.pad_top = a.pad_top, g.pad_left = a.pad_left;
  g.dilation_h = a.dilation_h, g.dilation_w = a.dilation_w, g.groups = a.groups;
  return g;
}

}  // namespace pyrt::runtime::ops
