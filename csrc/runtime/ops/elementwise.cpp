// pyruntime: elementwise ops: relu, clamp, softmax (over all of a sample's elements) and add (which may
// apply a relu / clamp fused into it: runtime/fusion.h). relu also takes an i8 value as it is (max(q, 0) is
// exact: the scale is positive and the zero point 0).
#include <algorithm>
#include <cstring>

#include "kernels/ref/ref_kernels.h"
#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

class ElementwiseStep final : public Step {
 public:
  ElementwiseStep(Op op, uint64_t elements, DType dtype, ClampAttrs clamp, kernels::OutputClamp fused)
      : op_(op), n_(elements), dtype_(dtype), clamp_(clamp), fused_(fused) {}

  // Every element but softmax's depends on its own inputs only: pieces of the batch's elements go to the
  // pool's threads (split_items).
  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const size_t n = batch * n_;
    if (dtype_ == DType::i8) {  // relu
      const int8_t* x = static_cast<const int8_t*>(in[0]);
      int8_t* y = static_cast<int8_t*>(out);
      for (size_t i = 0; i < n; ++i) y[i] = std::max<int8_t>(x[i], 0);
      return;
    }
    float* y = static_cast<float*>(out);
    if (op_ == Op::add) {
      const float* a = static_cast<const float*>(in[0]);
      const float* b = static_cast<const float*>(in[1]);
      const kernels::OutputClamp c = fused_;  // a fused relu / clamp (fusion.h), in the same pass
      split_items(ctx, n, 3 * sizeof(float), [&](size_t lo, size_t hi) {
        if (!c.active()) return kernels::ref::add_f32(a + lo, b + lo, y + lo, hi - lo);
        for (size_t i = lo; i < hi; ++i) y[i] = c(a[i] + b[i]);
      }, 16);
      return;
    }
    if (op_ != Op::relu && op_ != Op::clamp) {  // softmax, over all of a sample's elements
      if (in[0] != out) std::memcpy(y, in[0], n * sizeof(float));
      return kernels::ref::softmax_f32(y, batch, n_);
    }
    const float* x = static_cast<const float*>(in[0]);
    split_items(ctx, n, 2 * sizeof(float), [&](size_t lo, size_t hi) {
      if (x != y) std::memcpy(y + lo, x + lo, (hi - lo) * sizeof(float));
      if (op_ == Op::relu) kernels::ref::relu_f32(y + lo, hi - lo);
      else kernels::ref::clamp_f32(y + lo, hi - lo, clamp_.min, clamp_.max);
    }, 16);
  }

  uint64_t work() const override { return n_; }

 private:
  Op op_;
  uint64_t n_;  // elements per sample
  DType dtype_;
  ClampAttrs clamp_;
  kernels::OutputClamp fused_;  // add: an activation fused into it
};

}  // namespace

StepSpec build_elementwise(const BuildContext& ctx) {
  const Op op = ctx.node.op;
  const ValueType t = op == Op::relu && ctx.in_types[0].dtype == DType::i8 ? ctx.in_types[0] : ValueType::f32();
  StepSpec s;
  const bool fuse = op == Op::add && ctx.fuse != nullptr;
  s.step = std::make_unique<ElementwiseStep>(op, shape_numel(ctx.out_shape), t.dtype,
                                             op == Op::clamp ? clamp_attrs(ctx.node.attrs) : ClampAttrs{0, 0},
                                             fuse ? ctx.fuse->clamp : kernels::OutputClamp{});
  s.takes.assign(ctx.node.inputs.size(), t);
  s.gives = t;
  s.fused = fuse;
  return s;
}

}  // namespace pyrt::runtime
