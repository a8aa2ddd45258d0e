// pyruntime: depthwise int8 convolutions (groups = input channels), run directly: no patches and no GEMM
// (a group's one-row GEMM would pad it to 16 rows). Per sample, its int8 input (quantized here when dynamic,
// FORMAT.md 2.5), then per channel its padded plane in the phase layout of kernels/int8/int8_conv.h, and per
// output channel of the group one kernel call that sums the taps in int32 and applies the int8 epilogue. The
// sums are exact, so splitting channels (batch 1) or samples across threads never changes a bit.
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/int8/int8_conv.h"
#include "kernels/int8/int8_layouts.h"
#include "kernels/kernels.h"
#include "runtime/ops/conv_int8.h"
#include "runtime/ops/weights.h"

namespace pyrt::runtime::ops {
namespace {

constexpr uint64_t kMinMacsPerTask = 256 * 1024;  // as ops/conv.cpp

class Int8DepthwiseStep final : public Step {
 public:
  Int8DepthwiseStep(const BuildContext& ctx, LayerInfo& li, bool is_static, const QLinearAttrs& a)
      : g_(conv_geometry(ctx)), static_(is_static), in_scale_(a.input_scale) {
    const DecodedTensor& w = ctx.tensor(0);
    const size_t taps = size_t(g_.kh) * g_.kw, rows = g_.out_c;
    taps_.assign(rows * taps, 0);
    if (w.encoding == Encoding::int8) {
      std::copy(w.qvalues.begin(), w.qvalues.end(), taps_.begin());
    } else {  // csr+int8: the pruned taps are zeros, which the kernel skips
      for (size_t r = 0; r < rows; ++r)
        for (uint32_t j = w.rowptr[r]; j < w.rowptr[r + 1]; ++j) taps_[r * taps + w.colidx[j]] = w.qvalues[j];
    }
    wscale_.assign(w.scales.begin(), w.scales.end());
    bias_.assign(rows, 0.0f);
    if (ctx.node.tensors.size() == 2) {
      std::memcpy(bias_.data(), ctx.tensor(1).value_data(), rows * sizeof(float));
      li.file_bytes += ctx.tensor_file_bytes(1);
      li.exec_bytes += rows * sizeof(float);
      li.dense_bytes += rows * sizeof(float);
    }
    lo_ = is_static ? a.min : -std::numeric_limits<float>::infinity();
    hi_ = is_static ? a.max : std::numeric_limits<float>::infinity();
    inv_out_ = is_static && a.output_scale > 0 ? 1.0f / a.output_scale : 0.0f;
    li.layout = "i8_dw";
    li.method = is_static ? "direct-static" : "direct-dynamic";
    li.groups = g_.groups;
    li.exec_bytes += taps_.size() + rows * sizeof(float);
    macs_ = w.nnz() * uint64_t(g_.out_h) * g_.out_w;
    const size_t hp = ops::padded_rows(g_), wp = ops::padded_cols(g_);
    const size_t sub_rows = (hp + g_.stride_h - 1) / g_.stride_h;
    phase_len_ = (wp + g_.stride_w - 1) / g_.stride_w;
    sub_bytes_ = sub_rows * phase_len_;
    plane_bytes_ = sub_bytes_ * g_.stride_h * g_.stride_w + kernels::kInt8DwSlack;
    // Work counts the padded plane each channel is copied into, not only the multiply-adds: padding
    // and strides far past a small output make that plane gigabytes (found by fuzzing: 4 GB for a 1x1
    // output), which max_work must see. Thread splits weigh the multiply-adds.
    work_ = macs_ + uint64_t(g_.groups) * plane_bytes_;
  }

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    if (ctx.pool && batch > 1 && macs_ * batch >= 2 * kMinMacsPerTask) {
      const unsigned parts = static_cast<unsigned>(std::min<size_t>(ctx.pool->threads(), batch));
      ctx.pool->run(parts, [&](unsigned i) {
        for (size_t b = batch * i / parts; b < batch * (i + 1) / parts; ++b) {
          float scale = 0.0f;
          const int8_t* q = sample_input(ctx.isa, in[0], b, &scale);
          channels(ctx.isa, q, scale, out, b, 0, g_.groups);
        }
      });
      return;
    }
    const unsigned parts = ctx.pool && macs_ >= 2 * kMinMacsPerTask
                               ? static_cast<unsigned>(std::min<size_t>(ctx.pool->threads(), g_.groups))
                               : 1;
    for (size_t b = 0; b < batch; ++b) {
      float scale = 0.0f;
      const int8_t* q = sample_input(ctx.isa, in[0], b, &scale);
      if (parts < 2) {
        channels(ctx.isa, q, scale, out, b, 0, g_.groups);
        continue;
      }
      ctx.pool->run(parts, [&](unsigned i) {
        channels(ctx.isa, q, scale, out, b, size_t(g_.groups) * i / parts, size_t(g_.groups) * (i + 1) / parts);
      });
    }
  }

  uint64_t work() const override { return work_; }

  uint32_t set_threads(unsigned threads) override {
    return threads > 1 && macs_ >= 2 * kMinMacsPerTask ? uint32_t(std::min<size_t>(threads, g_.groups)) : 1;
  }

 private:
  // Sample b's int8 input [C, H, W]: the input itself (static) or quantized into this thread's
  // kernels::Scratch::kRows (dynamic), and its scale.
  const int8_t* sample_input(kernels::Isa isa, const void* x, size_t b, float* scale) const {
    const size_t n = g_.in_size();
    if (static_) {
      *scale = in_scale_;
      return static_cast<const int8_t*>(x) + b * n;
    }
    int8_t* q = reinterpret_cast<int8_t*>(kernels::thread_scratch(n / 4 + 16, kernels::Scratch::kRows));
    kernels::quantize_rows(isa, static_cast<const float*>(x) + b * n, 1, n, n, q, scale);
    return q;
  }

  // Groups (= input channels) [c0, c1) of sample b.
  void channels(kernels::Isa isa, const int8_t* q, float scale, void* y, size_t b, size_t c0, size_t c1) const {
    const kernels::Conv2dGeometry& g = g_;
    const size_t plane_in = size_t(g.in_h) * g.in_w, plane_out = size_t(g.out_h) * g.out_w, og = g.group_out();
    const size_t taps = size_t(g.kh) * g.kw, out_bytes = inv_out_ > 0 ? 1 : 4;
    int8_t* plane = reinterpret_cast<int8_t*>(kernels::thread_scratch(plane_bytes_ / 4 + 16, kernels::Scratch::kConv));
    std::memset(plane + plane_bytes_ - kernels::kInt8DwSlack, 0, kernels::kInt8DwSlack);
    const kernels::Int8DwPhases phases{g.in_h, g.in_w, g.pad_top, g.pad_left, g.stride_h, g.stride_w, sub_bytes_,
                                       phase_len_};
    for (size_t c = c0; c < c1; ++c) {
      kernels::int8_dw_phases(isa, phases, q + c * plane_in, plane);
      for (size_t o = c * og; o < (c + 1) * og; ++o) {
        kernels::Int8DwPlane p{plane, sub_bytes_, phase_len_, taps_.data() + o * taps, g.kh, g.kw, g.stride_h,
                               g.stride_w, g.dilation_h, g.dilation_w, g.out_h, g.out_w, scale * wscale_[o],
                               bias_[o], lo_, hi_, inv_out_,
                               static_cast<uint8_t*>(y) + (b * g.out_size() + o * plane_out) * out_bytes};
        kernels::int8_dwconv_plane(isa, p);
      }
    }
  }

  kernels::Conv2dGeometry g_;
  bool static_;
  float in_scale_;
  std::vector<int8_t> taps_;   // per output channel: kh * kw int8 weights
  std::vector<float> wscale_;  // per output channel
  std::vector<float> bias_;    // per output channel (0 without a bias)
  float lo_, hi_, inv_out_;
  uint64_t macs_ = 0, work_ = 0;
  size_t phase_len_ = 0, sub_bytes_ = 0;  // the phase layout of a padded input plane
  size_t plane_bytes_ = 0;                // all its sub-planes and the kernel's slack
};

}  // namespace

std::unique_ptr<Step> make_int8_depthwise(const BuildContext& ctx, LayerInfo& li, bool is_static,
                                          const QLinearAttrs& a) {
  return std::make_unique<Int8DepthwiseStep>(ctx, li, is_static, a);
}

}  // namespace pyrt::runtime::ops
