// pyruntime: the registry of op families. A new op is one line here (and a build function in its family's
// file under runtime/ops/).
#include "runtime/step.h"

#include "common/error.h"

namespace pyrt::runtime {
namespace {

// A linear layer over the last axis of a value of rank > 1 (format version 5): each of a sample's `rows`
// vectors is a sample of the layer's step (the weight is streamed once for all of them: one batch of rows
// for the GEMM kernels).
class RowsStep final : public Step {
 public:
  RowsStep(std::unique_ptr<Step> inner, uint64_t rows) : inner_(std::move(inner)), rows_(rows) {}
  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    inner_->run(ctx, in, batch * rows_, out);
  }
  uint64_t work() const override { return inner_->work() * rows_; }
  uint32_t set_threads(unsigned threads) override { return inner_->set_threads(threads); }
  size_t in_place_bytes() const override { return inner_->in_place_bytes(); }

 private:
  std::unique_ptr<Step> inner_;
  uint64_t rows_;
};

StepSpec over_rows(StepSpec spec, const BuildContext& ctx) {
  const std::vector<uint32_t>& x = *ctx.in_shapes[0];
  if (x.size() > 1) spec.step = std::make_unique<RowsStep>(std::move(spec.step), shape_numel(x) / x.back());
  return spec;
}

}  // namespace

StepSpec build_step(const BuildContext& ctx) {
  switch (ctx.node.op) {
    case Op::linear: return over_rows(build_linear(ctx), ctx);
    case Op::qlinear: return over_rows(build_qlinear(ctx), ctx);
    case Op::conv2d: return build_conv2d(ctx);
    case Op::qconv2d: return build_qconv2d(ctx);
    case Op::max_pool2d:
    case Op::avg_pool2d:
    case Op::global_avg_pool: return build_pool(ctx);
    case Op::relu:
    case Op::clamp:
    case Op::softmax: return build_elementwise(ctx);
    case Op::add:
      if (ctx.node.inputs.size() == 2 && *ctx.in_shapes[0] == *ctx.in_shapes[1]) return build_elementwise(ctx);
      return build_arithmetic(ctx);
    case Op::sub:
    case Op::mul:
    case Op::div: return build_arithmetic(ctx);
    case Op::gelu:
    case Op::silu:
    case Op::sigmoid:
    case Op::tanh:
    case Op::leaky_relu: return build_activation(ctx);
    case Op::layer_norm:
    case Op::softmax_axis: return build_normalize(ctx);
    case Op::matmul: return build_matmul(ctx);
    case Op::transpose:
    case Op::slice: return build_layout(ctx);
    case Op::embedding: return build_embedding(ctx);
    case Op::upsample_nearest:
    case Op::adaptive_avg_pool2d: return build_resample(ctx);
    case Op::flatten:
    case Op::reshape:
    case Op::concat: return build_shape(ctx);
    case Op::sign: return build_sign(ctx);
    case Op::blinear: return build_blinear(ctx);
    case Op::bconv2d: return build_bconv2d(ctx);
  }
  fail(PYRT_INTERNAL, "no op family builds op code ", static_cast<unsigned>(ctx.node.op));
}

}  // namespace pyrt::runtime
