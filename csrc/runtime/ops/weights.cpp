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
  li.bits = has_codebook(w.encoding) ? w.index_bits : is_int8(w.encoding) ? 8 : 32;
  li.codebook_size = has_codebook(w.encoding) ? uint32_t(w.centroids.size()) : 0;
  li.file_bytes = ctx.tensor_file_bytes(0);
  li.dense_bytes = w.numel() * sizeof(float);
}

}  // namespace pyrt::runtime::ops
