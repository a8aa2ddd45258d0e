// pyruntime: the registry of op families. A new op is one line here (and a build function in its family's
// file under runtime/ops/).
#include "runtime/step.h"

#include "common/error.h"

namespace pyrt::runtime {

StepSpec build_step(const BuildContext& ctx) {
  switch (ctx.node.op) {
    case Op::linear: return build_linear(ctx);
    case Op::qlinear: return build_qlinear(ctx);
    case Op::conv2d: return build_conv2d(ctx);
    case Op::qconv2d: return build_qconv2d(ctx);
    case Op::max_pool2d:
    case Op::avg_pool2d:
    case Op::global_avg_pool: return build_pool(ctx);
    case Op::relu:
    case Op::clamp:
    case Op::softmax:
    case Op::add: return build_elementwise(ctx);
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
