// pyruntime: conv2d over every f32 weight encoding (kernels::Conv2d: im2col or direct, chosen at load).
// A convolution computes sample by sample, so threads split it by output rows at batch 1 and by samples
// above, and every output is bit-identical to one thread's.
#include <algorithm>

#include "kernels/conv/conv2d.h"
#include "runtime/ops/weights.h"

namespace pyrt::runtime {
namespace {

// A conv (whose weights are reused at every output position) is split when a task gets at least this
// many multiply-adds: about 20 us of work, several times the cost of waking the pool.
constexpr uint64_t kMinMacsPerTask = 256 * 1024;

class ConvStep final : public Step {
 public:
  ConvStep(const BuildContext& ctx, const DecodedTensor& weight, LayerInfo& li)
      : conv_(kernels::Conv2d::create(ops::conv_geometry(ctx), weight, ctx.in_place)), bias_(ctx, li) {
    if (ctx.fuse) conv_->set_output_clamp(ctx.fuse->clamp);
    const kernels::Conv2dGeometry& g = conv_->geometry();
    li.layout = conv_->layout();
    li.method = conv_->method();
    li.groups = g.groups;
    li.exec_bytes += conv_->bytes();
    li.in_place = conv_->in_place();
    work_ = weight.nnz() * uint64_t(g.out_h) * g.out_w;
    in_size_ = g.in_size();
    out_size_ = g.out_size();
  }

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out);
    if (ctx.pool && batch == 1 && !splits_.empty()) {
      ctx.pool->run(static_cast<unsigned>(splits_.size() - 1), [&](unsigned i) {
        conv_->run(ctx.isa, x, 1, y, bias_.data(), splits_[i], splits_[i + 1]);
      });
    } else if (ctx.pool && batch > 1 && work_ * batch >= 2 * kMinMacsPerTask) {
      const unsigned parts = static_cast<unsigned>(std::min<size_t>(ctx.pool->threads(), batch));
      ctx.pool->run(parts, [&](unsigned i) {
        const size_t b0 = batch * i / parts, b1 = batch * (i + 1) / parts;
        conv_->run(ctx.isa, x + b0 * in_size_, b1 - b0, y + b0 * out_size_, bias_.data());
      });
    } else {
      conv_->run(ctx.isa, x, batch, y, bias_.data());
    }
  }

  uint64_t work() const override { return work_; }

  uint32_t set_threads(unsigned threads) override {  // output rows, evenly: every row of a conv costs the same
    splits_.clear();
    const uint32_t rows = conv_->geometry().out_h;
    const unsigned parts = static_cast<unsigned>(std::min<uint64_t>({threads, rows, work_ / kMinMacsPerTask}));
    for (unsigned k = 0; threads > 1 && parts >= 2 && k <= parts; ++k)
      splits_.push_back(uint32_t(uint64_t(rows) * k / parts));
    if (splits_.size() < 3) splits_.clear();
    return splits_.empty() ? 1 : static_cast<uint32_t>(splits_.size() - 1);
  }

  size_t in_place_bytes() const override {
    return (conv_->in_place() ? conv_->bytes() : 0) + bias_.in_place_bytes();
  }

 private:
  std::unique_ptr<kernels::Conv2d> conv_;
  ops::Bias bias_;
  uint64_t work_ = 0;
  size_t in_size_ = 0, out_size_ = 0;
  std::vector<uint32_t> splits_;  // batch-1 output-row boundaries for the pool
};

}  // namespace

StepSpec build_conv2d(const BuildContext& ctx) {
  if (is_int8(ctx.tensor(0).encoding)) return build_conv2d_int8(ctx);
  return build_conv2d_with(ctx, ctx.tensor(0));
}

StepSpec build_conv2d_with(const BuildContext& ctx, const DecodedTensor& weight) {
  StepSpec s;
  ops::describe_weight(ctx, s.layer);
  s.step = std::make_unique<ConvStep>(ctx, weight, s.layer);
  s.takes = {ValueType::f32()};
  s.gives = ValueType::f32();
  s.fused = ctx.fuse != nullptr;
  return s;
}

}  // namespace pyrt::runtime
