// pyruntime: linear layers with int8 weights (int8, csr+int8): `linear` quantizes its f32 input per sample at
// run time and gives f32 (dynamic, as PyTorch's quantize_dynamic and ONNX Runtime's MatMulInteger);
// `qlinear` takes an i8 value of its static input scale and gives i8 of its output scale, or f32 when that
// is 0 (static: scales calibrated by the converter and stored in the file), with its clamp (a fused relu or
// relu6) applied before the output is quantized. docs/RUNTIME.md "int8 numerics".
//
// A batch runs in chunks of kChunk samples (the quantized activations of a chunk live in a per-thread
// scratch, so its size is bounded); a chunk is split across threads by output rows when the layer is big
// enough, else by samples. The sums are exact integers, so no split changes a bit.
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/int8/int8_weight.h"
#include "kernels/kernels.h"
#include "kernels/ref/quantize.h"
#include "runtime/ops/weights.h"

namespace pyrt::runtime {
namespace {

constexpr size_t kChunk = 256;
constexpr size_t kMinBytesPerTask = 64 * 1024;     // as ops/linear.cpp: a row split needs this much weight
constexpr uint64_t kMinMacsPerTask = 256 * 1024;   // a sample split needs this much work per task

class Int8LinearStep final : public Step {
 public:
  Int8LinearStep(const BuildContext& ctx, LayerInfo& li, bool is_static, const QLinearAttrs& a)
      : weight_(kernels::Int8Weight::pack(ctx.tensor(0))), static_(is_static), in_scale_(a.input_scale) {
    const uint32_t rows = weight_->rows();
    bias_.resize(weight_->padded_rows());
    if (ctx.node.tensors.size() == 2) {
      const DecodedTensor& b = ctx.tensor(1);
      std::memcpy(bias_.data(), b.value_data(), rows * sizeof(float));
      li.file_bytes += ctx.tensor_file_bytes(1);
      li.exec_bytes += rows * sizeof(float);
      li.dense_bytes += rows * sizeof(float);
    }
    ep_.wscale = weight_->wscale();
    ep_.bias = ctx.node.tensors.size() == 2 ? bias_.data() : nullptr;
    ep_.lo = is_static ? a.min : -std::numeric_limits<float>::infinity();
    ep_.hi = is_static ? a.max : std::numeric_limits<float>::infinity();
    ep_.inv_out = is_static && a.output_scale > 0 ? 1.0f / a.output_scale : 0.0f;
    li.layout = weight_->layout();
    li.method = is_static ? "gemm-static" : "gemm-dynamic";
    li.exec_bytes += weight_->bytes();
    li.steps = weight_->steps();
  }

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const size_t cols = weight_->cols(), rows = weight_->rows(), kp = weight_->kp();
    const size_t out_bytes = ep_.inv_out > 0 ? 1 : 4;
    for (size_t b0 = 0; b0 < batch; b0 += kChunk) {
      const size_t n = std::min(kChunk, batch - b0);
      // q: n rows of kp int8, then the scales (64-byte aligned), then kInt8ActPad bytes
      const size_t qbytes = (n * kp + kernels::kInt8ActPad + 63) / 64 * 64;
      uint8_t* scratch = reinterpret_cast<uint8_t*>(
          kernels::thread_scratch((qbytes + n * sizeof(float) + 3) / 4, kernels::Scratch::kInt8));
      int8_t* q = reinterpret_cast<int8_t*>(scratch);
      float* xs = reinterpret_cast<float*>(scratch + qbytes);
      if (static_) {
        const int8_t* x = static_cast<const int8_t*>(in[0]) + b0 * cols;
        for (size_t b = 0; b < n; ++b) {
          std::memcpy(q + b * kp, x + b * cols, cols);
          std::memset(q + b * kp + cols, 0, kp - cols);
          xs[b] = in_scale_;
        }
      } else {
        kernels::quantize_rows(ctx.isa, static_cast<const float*>(in[0]) + b0 * cols, n, cols, kp, q, xs);
      }
      std::memset(q + n * kp, 0, kernels::kInt8ActPad);
      void* y = static_cast<uint8_t*>(out) + b0 * rows * out_bytes;
      const kernels::Int8Act act{q, xs, n, kp};
      if (ctx.pool && !splits_.empty()) {
        ctx.pool->run(static_cast<unsigned>(splits_.size() - 1), [&](unsigned i) {
          weight_->gemm(ctx.isa, act, ep_, splits_[i], splits_[i + 1], y, rows);
        });
      } else if (ctx.pool && n > 1 && weight_->nnz() * n >= 2 * kMinMacsPerTask) {
        const unsigned parts = static_cast<unsigned>(std::min<size_t>(ctx.pool->threads(), n));
        ctx.pool->run(parts, [&](unsigned i) {
          const size_t s0 = n * i / parts, s1 = n * (i + 1) / parts;
          const kernels::Int8Act part{q + s0 * kp, xs + s0, s1 - s0, kp};
          weight_->gemm(ctx.isa, part, ep_, 0, uint32_t(rows), static_cast<uint8_t*>(y) + s0 * rows * out_bytes,
                        rows);
        });
      } else {
        weight_->gemm(ctx.isa, act, ep_, 0, uint32_t(rows), y, rows);
      }
    }
  }

  uint64_t work() const override { return weight_->nnz(); }

  uint32_t set_threads(unsigned threads) override {
    splits_.clear();
    const unsigned parts = static_cast<unsigned>(std::min<size_t>(threads, weight_->bytes() / kMinBytesPerTask));
    if (threads > 1 && parts >= 2) splits_ = weight_->row_splits(parts);
    if (splits_.size() < 3) splits_.clear();
    return splits_.empty() ? 1 : static_cast<uint32_t>(splits_.size() - 1);
  }

 private:
  std::unique_ptr<kernels::Int8Weight> weight_;
  bool static_;
  float in_scale_;
  AlignedArray<float> bias_;  // padded to a multiple of 16, as the epilogue reads it
  kernels::Int8Epilogue ep_{};
  std::vector<uint32_t> splits_;
};

}  // namespace

StepSpec build_linear_int8(const BuildContext& ctx) {
  StepSpec s;
  ops::describe_weight(ctx, s.layer);
  s.step = std::make_unique<Int8LinearStep>(ctx, s.layer, false, QLinearAttrs{0, 0, 0, 0});
  s.takes = {ValueType::f32()};
  s.gives = ValueType::f32();
  return s;
}

StepSpec build_qlinear(const BuildContext& ctx) {
  const QLinearAttrs a = qlinear_attrs(ctx.node.attrs);
  StepSpec s;
  ops::describe_weight(ctx, s.layer);
  s.step = std::make_unique<Int8LinearStep>(ctx, s.layer, true, a);
  s.takes = {ValueType::i8(a.input_scale)};
  s.gives = a.output_scale > 0 ? ValueType::i8(a.output_scale) : ValueType::f32();
  return s;
}

}  // namespace pyrt::runtime
