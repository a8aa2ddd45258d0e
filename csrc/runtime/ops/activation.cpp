// pyruntime: the elementwise activations of format version 5 (f32 in, f32 out): gelu (erf or tanh form, as
// torch.nn.functional.gelu), silu, sigmoid, tanh and leaky_relu. A NaN stays NaN; +-inf give torch's limits.
//
// The transcendental ones run the kernels of kernels/ref/vector_math.h at the step's ISA level (accuracy and
// special values there); leaky_relu is exact at every level.
#include "kernels/ref/vector_math.h"
#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

class ActivationStep final : public Step {
 public:
  ActivationStep(Op op, uint64_t elements, uint32_t approximate, float slope)
      : op_(op), n_(elements), approximate_(approximate), slope_(slope) {}

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out);
    const size_t n = batch * n_;
    const kernels::MathKernels& k = kernels::math_kernels(ctx.isa);
    switch (op_) {
      case Op::gelu: return (approximate_ ? k.gelu_tanh : k.gelu_erf)(x, y, n);
      case Op::silu: return k.silu(x, y, n);
      case Op::sigmoid: return k.sigmoid(x, y, n);
      case Op::tanh: return k.tanh(x, y, n);
      default: return k.leaky_relu(x, y, n, slope_);
    }
  }

  uint64_t work() const override { return n_; }

 private:
  Op op_;
  uint64_t n_;             // elements per sample
  uint32_t approximate_;   // gelu: 0 = erf, 1 = tanh
  float slope_;            // leaky_relu
};

}  // namespace

StepSpec build_activation(const BuildContext& ctx) {
  const Op op = ctx.node.op;
  StepSpec s;
  s.step = std::make_unique<ActivationStep>(op, shape_numel(ctx.out_shape), op == Op::gelu ? ctx.node.attrs[0] : 0u,
                                            op == Op::leaky_relu ? f32_attr(ctx.node.attrs, 0) : 0.0f);
  s.takes = {ValueType::f32()};
  s.gives = ValueType::f32();
  return s;
}

}  // namespace pyrt::runtime
