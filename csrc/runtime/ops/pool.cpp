// pyruntime: max, average and global-average pooling (f32); max_pool2d also takes an i8 value as it is (the
// largest q of a window is the largest value: exact, so a static int8 chain stays int8 through it), and b1c
// signs as they are (the max of +-1 values is the OR of their bits: a binary network stays in bits).
#include "kernels/pool2d.h"
#include "kernels/ref/ref_kernels.h"
#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

class PoolStep final : public Step {
 public:
  PoolStep(Op op, const kernels::ref::Pool2dGeometry& g, DType dtype) : op_(op), g_(g), dtype_(dtype) {}

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    if (dtype_ == DType::i8)
      return kernels::ref::max_pool2d_s8(g_, static_cast<const int8_t*>(in[0]), batch, static_cast<int8_t*>(out));
    if (dtype_ == DType::b1c)
      return kernels::ref::max_pool2d_b1c(g_, static_cast<const uint64_t*>(in[0]), batch, static_cast<uint64_t*>(out));
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out);
    switch (op_) {
      case Op::max_pool2d: return kernels::max_pool2d_f32(ctx.isa, g_, x, batch, y);
      case Op::avg_pool2d: return kernels::ref::avg_pool2d_f32(g_, x, batch, y);
      default: return kernels::ref::global_avg_pool_f32(x, batch, g_.channels, size_t(g_.in_h) * g_.in_w, y);
    }
  }

  uint64_t work() const override {  // window reads
    if (op_ == Op::global_avg_pool) return uint64_t(g_.channels) * g_.in_h * g_.in_w;
    return uint64_t(g_.channels) * g_.out_h * g_.out_w * g_.kernel_h * g_.kernel_w;
  }

 private:
  Op op_;
  kernels::ref::Pool2dGeometry g_;
  DType dtype_;
};

}  // namespace

StepSpec build_pool(const BuildContext& ctx) {
  const std::vector<uint32_t>& in = *ctx.in_shapes[0];
  const std::vector<uint32_t>& out = ctx.out_shape;
  kernels::ref::Pool2dGeometry g;
  g.channels = in[0], g.in_h = in[1], g.in_w = in[2];
  g.out_h = out[1], g.out_w = out[2];
  if (ctx.node.op != Op::global_avg_pool) {
    const Pool2dAttrs a = pool2d_attrs(ctx.node.op, ctx.node.attrs);
    g.kernel_h = a.kernel_h, g.kernel_w = a.kernel_w, g.stride_h = a.stride_h, g.stride_w = a.stride_w;
    g.pad_top = a.pad_top, g.pad_left = a.pad_left, g.pad_bottom = a.pad_bottom, g.pad_right = a.pad_right;
    g.count_include_pad = a.count_include_pad != 0;
  }
  const DType in_type = ctx.in_types[0].dtype;
  const ValueType t =
      ctx.node.op == Op::max_pool2d && (in_type == DType::i8 || in_type == DType::b1c) ? ctx.in_types[0] : ValueType::f32();
  StepSpec s;
  s.step = std::make_unique<PoolStep>(ctx.node.op, g, t.dtype);
  s.takes = {t};
  s.gives = t;
  return s;
}

}  // namespace pyrt::runtime
