// pyruntime: elementwise ops: relu, clamp, softmax (over all of a sample's elements) and add. relu also
// takes an i8 value as it is (max(q, 0) is exact: the scale is positive and the zero point 0).
#include <algorithm>
#include <cstring>

#include "kernels/ref/ref_kernels.h"
#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

class ElementwiseStep final : public Step {
 public:
  ElementwiseStep(Op op, uint64_t elements, DType dtype, ClampAttrs clamp)
      : op_(op), n_(elements), dtype_(dtype), clamp_(clamp) {}

  void run(const RunContext&, const void* const* in, size_t batch, void* out) const override {
    const size_t n = batch * n_;
    if (dtype_ == DType::i8) {  // relu
      const int8_t* x = static_cast<const int8_t*>(in[0]);
      int8_t* y = static_cast<int8_t*>(out);
      for (size_t i = 0; i < n; ++i) y[i] = std::max<int8_t>(x[i], 0);
      return;
    }
    float* y = static_cast<float*>(out);
    if (op_ == Op::add) return kernels::ref::add_f32(static_cast<const float*>(in[0]), static_cast<const float*>(in[1]), y, n);
    if (in[0] != out) std::memcpy(y, in[0], n * sizeof(float));
    switch (op_) {
      case Op::relu: return kernels::ref::relu_f32(y, n);
      case Op::clamp: return kernels::ref::clamp_f32(y, n, clamp_.min, clamp_.max);
      default: return kernels::ref::softmax_f32(y, batch, n_);
    }
  }

  uint64_t work() const override { return n_; }

 private:
  Op op_;
  uint64_t n_;  // elements per sample
  DType dtype_;
  ClampAttrs clamp_;
};

}  // namespace

StepSpec build_elementwise(const BuildContext& ctx) {
  const Op op = ctx.node.op;
  const ValueType t = op == Op::relu && ctx.in_types[0].dtype == DType::i8 ? ctx.in_types[0] : ValueType::f32();
  StepSpec s;
  s.step = std::make_unique<ElementwiseStep>(op, shape_numel(ctx.out_shape), t.dtype,
                                             op == Op::clamp ? clamp_attrs(ctx.node.attrs) : ClampAttrs{0, 0});
  s.takes.assign(ctx.node.inputs.size(), t);
  s.gives = t;
  return s;
}

}  // namespace pyrt::runtime
