// pyruntime: linear layers over every f32 weight encoding (kernels::PackedWeight).
//
// A batch is computed in chunks of kBatchChunk samples, one kernel call per chunk, whatever the thread
// count: the kernels pick their method (and so their order of additions) by batch size, so a sample's
// outputs depend on its chunk only, and threads take whole chunks. A single chunk is split by output rows
// instead (gemm_rows: the same kernel on a view of the rows, bit-identical), each thread gathering its
// rows for every sample in a scratch block and copying them into place.
#include <algorithm>
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/packed_weight.h"
#include "runtime/model.h"
#include "runtime/ops/weights.h"

namespace pyrt::runtime {
namespace {

// A layer is split across threads when one pass streams at least this many weight bytes per task: waking
// the pool costs a few microseconds, about what a core needs to stream this much.
constexpr size_t kMinBytesPerTask = 64 * 1024;

class LinearStep final : public Step {
 public:
  LinearStep(const BuildContext& ctx, LayerInfo& li)
      : weight_(kernels::pack(ctx.tensor(0), ctx.in_place)),
        rows_(weight_->rows()),
        cols_(weight_->cols()),
        bias_(ctx, li),
        clamp_(ctx.fuse ? ctx.fuse->clamp : kernels::OutputClamp{}) {
    li.layout = weight_->layout();
    li.method = "gemm";
    li.exec_bytes += weight_->bytes();
    li.in_place = weight_->in_place();
  }

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out);
    const kernels::PackedWeight& w = *weight_;
    const size_t chunk_n = Model::kBatchChunk;
    const size_t chunks = (batch + chunk_n - 1) / chunk_n;
    auto chunk = [&](size_t c) {
      const size_t b0 = c * chunk_n, n = std::min(batch - b0, chunk_n);
      w.gemm(ctx.isa, x + b0 * cols_, n, y + b0 * rows_, bias_.data());
      clamp_.apply(y + b0 * rows_, n * rows_);
    };
    if (ctx.pool && chunks == 1 && !splits_.empty()) {
      ctx.pool->run(static_cast<unsigned>(splits_.size() - 1), [&](unsigned i) {
        const uint32_t r0 = splits_[i], r1 = splits_[i + 1], n = r1 - r0;
        if (batch == 1) {
          w.gemm_rows(ctx.isa, x, 1, y + r0, bias_.data(), r0, r1);
          return clamp_.apply(y + r0, n);
        }
        float* block = kernels::thread_scratch(batch * n, kernels::Scratch::kRows);
        w.gemm_rows(ctx.isa, x, batch, block, bias_.data(), r0, r1);
        clamp_.apply(block, batch * n);
        for (size_t b = 0; b < batch; ++b) std::memcpy(y + b * rows_ + r0, block + b * n, n * sizeof(float));
      });
    } else if (ctx.pool && chunks >= 2 && w.bytes() * batch >= 2 * kMinBytesPerTask) {
      ctx.pool->run(static_cast<unsigned>(chunks), [&](unsigned c) { chunk(c); });
    } else {
      for (size_t c = 0; c < chunks; ++c) chunk(c);
    }
  }

  uint64_t work() const override { return weight_->nnz(); }  // stored entries: what the kernel visits

  uint32_t set_threads(unsigned threads) override {
    splits_.clear();
    const unsigned parts = static_cast<unsigned>(std::min<size_t>(threads, weight_->bytes() / kMinBytesPerTask));
    if (threads > 1 && parts >= 2) splits_ = weight_->row_splits(parts);
    if (splits_.size() < 3) splits_.clear();  // one piece: not worth the pool
    return splits_.empty() ? 1 : static_cast<uint32_t>(splits_.size() - 1);
  }

  size_t in_place_bytes() const override {
    return (weight_->in_place() ? weight_->bytes() : 0) + bias_.in_place_bytes();
  }

 private:
  std::unique_ptr<kernels::PackedWeight> weight_;
  size_t rows_, cols_;
  ops::Bias bias_;
  kernels::OutputClamp clamp_;    // a fused relu / clamp (fusion.h), applied to each piece as it is written
  std::vector<uint32_t> splits_;  // batch-1 and single-chunk row boundaries for the pool
};

}  // namespace

StepSpec build_linear(const BuildContext& ctx) {
  if (is_int8(ctx.tensor(0).encoding)) return build_linear_int8(ctx);
  StepSpec s;
  ops::describe_weight(ctx, s.layer);
  s.step = std::make_unique<LinearStep>(ctx, s.layer);
  s.takes = {ValueType::f32()};
  s.gives = ValueType::f32();
  s.fused = ctx.fuse != nullptr;
  return s;
}

}  // namespace pyrt::runtime
