// pyruntime: the normalizations of format version 5 (f32): layer_norm over the last axis (optional weight and
// bias) and softmax_axis along one per-sample axis.
//
// Numerics: layer_norm and softmax along the last axis run the row kernels of kernels/ref/vector_math.h at
// the step's ISA level (two passes for the mean and the biased variance; max, exp, sum, scale). softmax along
// another axis subtracts the max along the axis, exponentiates in float (expf) and sums in double. A slice of
// all -inf gives NaN (-inf - -inf), as torch. A NaN anywhere in a row (layer_norm) or a slice (softmax) makes
// all of it NaN.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ref/vector_math.h"
#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

class LayerNormStep final : public Step {
 public:
  LayerNormStep(uint64_t elements, uint32_t n, float eps, std::vector<float> weight, std::vector<float> bias)
      : elements_(elements), n_(n), eps_(eps), weight_(std::move(weight)), bias_(std::move(bias)) {}

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out);
    if (n_ == 0) return;
    const size_t rows = batch * (elements_ / n_);
    const float* w = weight_.empty() ? nullptr : weight_.data();
    const float* b = bias_.empty() ? nullptr : bias_.data();
    kernels::math_kernels(ctx.isa).layer_norm_rows(x, y, rows, n_, w, b, eps_);  // y may be x
  }

  uint64_t work() const override { return elements_; }

 private:
  uint64_t elements_;  // per sample
  uint32_t n_;         // the last axis
  float eps_;
  std::vector<float> weight_, bias_;  // [n] each, or empty
};

// Softmax along one axis of a sample [outer, len, inner]: a batch is `batch * outer` such blocks.
class SoftmaxAxisStep final : public Step {
 public:
  SoftmaxAxisStep(uint64_t outer, uint64_t len, uint64_t inner) : outer_(outer), len_(len), inner_(inner) {}

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out);
    const size_t blocks = batch * outer_, block = len_ * inner_;
    if (block == 0) return;
    if (inner_ == 1) return kernels::math_kernels(ctx.isa).softmax_rows(x, y, blocks, len_);
    // Per-thread scratch of `inner` maxima and sums, grown on a thread's first call.
    thread_local std::vector<float> max_scratch;
    thread_local std::vector<double> sum_scratch;
    if (max_scratch.size() < inner_) max_scratch.resize(inner_);
    if (sum_scratch.size() < inner_) sum_scratch.resize(inner_);
    for (size_t o = 0; o < blocks; ++o) strided(x + o * block, y + o * block, max_scratch.data(), sum_scratch.data());
  }

  uint64_t work() const override { return outer_ * len_ * inner_; }

 private:
  // inner_ slices at once, element a of slice j at x[a * inner_ + j]: every pass runs along contiguous rows.
  void strided(const float* x, float* y, float* m, double* s) const {
    const size_t n = len_, k = inner_;
    std::copy(x, x + k, m);
    for (size_t a = 1; a < n; ++a) {
      const float* xa = x + a * k;
      for (size_t j = 0; j < k; ++j) m[j] = std::max(m[j], xa[j]);
    }
    std::fill(s, s + k, 0.0);
    for (size_t a = 0; a < n; ++a) {
      const float* xa = x + a * k;
      float* ya = y + a * k;
      for (size_t j = 0; j < k; ++j) {
        ya[j] = std::exp(xa[j] - m[j]);
        s[j] += ya[j];
      }
    }
    for (size_t a = 0; a < n; ++a) {
      float* ya = y + a * k;
      for (size_t j = 0; j < k; ++j) ya[j] = static_cast<float>(double(ya[j]) / s[j]);
    }
  }

  uint64_t outer_, len_, inner_;
};

// A dense [n] tensor of the node, copied (the decoded tensor is not kept).
std::vector<float> copy_vector(const BuildContext& ctx, size_t k) {
  if (ctx.node.tensors.size() <= k) return {};
  const DecodedTensor& t = ctx.tensor(k);
  const float* v = t.value_data();
  return std::vector<float>(v, v + t.numel());
}

}  // namespace

StepSpec build_normalize(const BuildContext& ctx) {
  const std::vector<uint32_t>& x = *ctx.in_shapes[0];
  StepSpec s;
  if (ctx.node.op == Op::layer_norm) {
    std::vector<float> weight = copy_vector(ctx, 0), bias = copy_vector(ctx, 1);
    s.layer.exec_bytes = (weight.size() + bias.size()) * sizeof(float);
    s.step = std::make_unique<LayerNormStep>(shape_numel(x), x.back(), f32_attr(ctx.node.attrs, 0), std::move(weight),
                                             std::move(bias));
  } else {  // softmax_axis
    const uint32_t axis = ctx.node.attrs[0];
    uint64_t outer = 1, inner = 1;
    for (uint32_t i = 0; i < axis; ++i) outer *= x[i];
    for (size_t i = axis + 1; i < x.size(); ++i) inner *= x[i];
    s.step = std::make_unique<SoftmaxAxisStep>(outer, x[axis], inner);
  }
  s.takes = {ValueType::f32()};
  s.gives = ValueType::f32();
  return s;
}

}  // namespace pyrt::runtime
