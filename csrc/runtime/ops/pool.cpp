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
    // the batch's channels are one run of planes: pieces of them go to the pool's threads (split_items)
    const size_t in_plane = size_t(g_.in_h) * g_.in_w;
    const size_t out_plane = op_ == Op::global_avg_pool ? 1 : size_t(g_.out_h) * g_.out_w;
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out);
    split_items(ctx, batch * g_.channels, (in_plane + out_plane) * sizeof(float), [&](size_t c0, size_t c1) {
      kernels::ref::Pool2dGeometry g = g_;
      g.channels = uint32_t(c1 - c0);
      const float* xc = x + c0 * in_plane;
      float* yc = y + c0 * out_plane;
      switch (op_) {
        case Op::max_pool2d: return kernels::max_pool2d_f32(ctx.isa, g, xc, 1, yc);
        case Op::avg_pool2d: return kernels::ref::avg_pool2d_f32(g, xc, 1, yc);
        default: return kernels::ref::global_avg_pool_f32(xc, 1, g.channels, in_plane, yc);
      }
    });
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
