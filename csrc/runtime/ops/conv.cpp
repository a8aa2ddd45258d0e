// pyruntime: conv2d over every f32 weight encoding (kernels::Conv2d: im2col or direct, chosen at load).
// A convolution computes sample by sample, so threads split it by output rows at batch 1 and by samples
// above, and every output is bit-identical to one thread's.
#include <algorithm>
#include <string_view>

#include "kernels/conv/conv2d.h"
#include "kernels/conv/direct.h"
#include "runtime/ops/weights.h"

namespace pyrt::runtime {
namespace {

// A conv (whose weights are reused at every output position) is split when a task gets at least this
// many multiply-adds: about 20 us of work, several times the cost of waking the pool.
constexpr uint64_t kMinMacsPerTask = 256 * 1024;
constexpr uint32_t kChannelSplitRows = 16;

class ConvStep final : public Step {
 public:
  ConvStep(const BuildContext& ctx, const DecodedTensor& weight, LayerInfo& li)
      : conv_(kernels::Conv2d::create(ops::conv_geometry(ctx), weight, ctx.in_place)), bias_(ctx, li) {
    if (ctx.fuse) conv_->set_output_clamp(ctx.fuse->clamp);
    if (ctx.residual && conv_->adds_residual()) {  // the residual add (and its activation) fused (fusion.h)
      residual_ = true;
      if (ctx.residual_fuse) conv_->set_output_clamp(ctx.residual_fuse->clamp);
    }
    const kernels::Conv2dGeometry& g = conv_->geometry();
    li.layout = conv_->layout();
    li.method = conv_->method();
    li.groups = g.groups;
    li.exec_bytes += conv_->bytes();
    li.in_place = conv_->in_place();
    // Model.work's share: the stored weights' multiply-adds, and with the im2col method the patches it writes
    // (in_c * kh * kw floats per output position): a 1 x 2051 csr kernel with one nonzero, run im2col because
    // its direct copy would be out of proportion, ran 3.5 s under a work of 0.9 M. Thread splits weigh the
    // multiply-adds.
    macs_ = weight.nnz() * uint64_t(g.out_h) * g.out_w;
    work_ = macs_;
    if (std::string_view(conv_->method()) == "im2col") work_ += uint64_t(g.in_c) * g.kh * g.kw * g.out_h * g.out_w;
    in_size_ = g.in_size();
    out_size_ = g.out_size();
  }

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    const float* r = residual_ ? static_cast<const float*>(in[1]) : nullptr;  // [batch, out_c, out_h, out_w]
    float* y = static_cast<float*>(out);
    const uint32_t rows = conv_->geometry().out_h;
    auto conv = [&](size_t b0, size_t b1, uint32_t oy0, uint32_t oy1) {
      if (r) conv_->run_residual(ctx.isa, x + b0 * in_size_, b1 - b0, y + b0 * out_size_, bias_.data(),
                                 r + b0 * out_size_, oy0, oy1);
      else conv_->run(ctx.isa, x + b0 * in_size_, b1 - b0, y + b0 * out_size_, bias_.data(), oy0, oy1);
    };
    if (ctx.pool && batch == 1 && !channel_splits_.empty()) {
      ctx.pool->run(static_cast<unsigned>(channel_splits_.size() - 1), [&](unsigned i) {
        conv_->run_channels(ctx.isa, x, y, bias_.data(), channel_splits_[i], channel_splits_[i + 1], r);
      });
    } else if (ctx.pool && batch == 1 && !splits_.empty()) {
      ctx.pool->run(static_cast<unsigned>(splits_.size() - 1), [&](unsigned i) { conv(0, 1, splits_[i], splits_[i + 1]); });
    } else if (ctx.pool && batch > 1 && macs_ * batch >= 2 * kMinMacsPerTask) {
      const unsigned parts = static_cast<unsigned>(std::min<size_t>(ctx.pool->threads(), batch));
      ctx.pool->run(parts, [&](unsigned i) { conv(batch * i / parts, batch * (i + 1) / parts, 0, rows); });
    } else {
      conv(0, batch, 0, rows);
    }
  }

  bool fused_residual() const { return residual_; }

  uint64_t work() const override { return work_; }

  // Output rows, evenly (every row of a conv costs the same); or, for the direct method's narrow outputs
  // (at most kChannelSplitRows rows), output channels by equal entries: a row split there leaves each
  // thread streaming every entry for a few rows, and 7 rows do not split evenly. On two threads, channels
  // against rows: ResNet-18's 7x7 layers 1.24-1.36x, its 14x14 ones 1.12-1.18x, SqueezeNet's 13x13 ones
  // 1.22-1.26x, MobileNet-V2's depthwise 14x14 ones 1.6-1.7x.
  uint32_t set_threads(unsigned threads) override {
    splits_.clear();
    channel_splits_.clear();
    const kernels::Conv2dGeometry& g = conv_->geometry();
    // the cost of a task: its multiply-adds, and the elements it moves (8 each: a depthwise conv's copy and
    // per-channel work are most of its time, MobileNet-V2's 7x7 ones 70 us for 0.4 M multiply-adds)
    const uint64_t cost = macs_ + 8 * (uint64_t(in_size_) + out_size_);
    const uint64_t most = std::min<uint64_t>(threads, cost / kMinMacsPerTask);
    // each piece copies the whole input of its groups: worth it with groups, or with 32 multiply-adds per
    // float copied (a 1x1 conv 384 -> 64 on 14x14, 11 per float, ran 0.75x as fast split by channels).
    // Groups read their own input channels only: split them by channels where the producer of the input
    // was likely split so too (narrow too); a depthwise conv 28x28 -> 14x14 after a conv split by rows ran
    // 0.72x as fast on two threads as on one split by channels.
    const bool copy_pays = g.groups > 1 ? g.in_h <= kChannelSplitRows
                                        : macs_ >= 32 * kernels::direct_conv_scratch_floats(g);
    if (threads > 1 && g.out_h <= kChannelSplitRows && copy_pays && std::min<uint64_t>(most, g.out_c) >= 2) {
      channel_splits_ = conv_->channel_splits(static_cast<unsigned>(std::min<uint64_t>(most, g.out_c)));
      if (!channel_splits_.empty()) return static_cast<uint32_t>(channel_splits_.size() - 1);
    }
    const uint32_t rows = g.out_h;
    const unsigned parts = static_cast<unsigned>(std::min<uint64_t>(most, rows));
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
  bool residual_ = false;  // run() takes a second input, added to every output (fusion.h)
  ops::Bias bias_;
  uint64_t work_ = 0, macs_ = 0;  // Model.work's share (work() above); the stored weights' multiply-adds
  size_t in_size_ = 0, out_size_ = 0;
  std::vector<uint32_t> splits_;          // batch-1 output-row boundaries for the pool
  std::vector<uint32_t> channel_splits_;  // or batch-1 output-channel boundaries (direct, narrow outputs)
};

}  // namespace

StepSpec build_conv2d(const BuildContext& ctx) {
  if (is_int8(ctx.tensor(0).encoding)) return build_conv2d_int8(ctx);
  return build_conv2d_with(ctx, ctx.tensor(0));
}

StepSpec build_conv2d_with(const BuildContext& ctx, const DecodedTensor& weight) {
  StepSpec s;
  ops::describe_weight(ctx, s.layer);
  auto step = std::make_unique<ConvStep>(ctx, weight, s.layer);
  s.fused_residual = step->fused_residual();
  s.step = std::move(step);
  s.takes = {ValueType::f32()};
  if (s.fused_residual) s.takes.push_back(ValueType::f32());
  s.gives = ValueType::f32();
  s.fused = ctx.fuse != nullptr;
  return s;
}

}  // namespace pyrt::runtime
