// pyruntime: resampling of images [C, H, W] (format version 5), f32:
// - upsample_nearest, integer scales sh, sw: [C, H, W] -> [C, H * sh, W * sw], out[c][y][x] =
//   in[c][y / sh][x / sw] (torch's nn.Upsample(scale_factor=int, mode="nearest")): each input row is
//   widened once and the widened row copied sh times;
// - adaptive_avg_pool2d to [C, oh, ow] with torch's windows: output row i averages input rows
//   floor(i * H / oh) .. ceil((i + 1) * H / oh) - 1 (columns likewise), so windows may overlap and differ
//   in size when H is not a multiple of oh. The window's sum (f32, row-major order) is divided by its rows
//   and then by its columns, as torch's CPU kernel does.
#include <cstring>

#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

class UpsampleStep final : public Step {
 public:
  UpsampleStep(const std::vector<uint32_t>& in, uint32_t sh, uint32_t sw)
      : c_(in[0]), h_(in[1]), w_(in[2]), sh_(sh), sw_(sw) {}

  void run(const RunContext&, const void* const* in, size_t batch, void* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out);
    const size_t ow = size_t(w_) * sw_, rows = batch * c_ * h_;  // input rows of the whole batch
    for (size_t r = 0; r < rows; ++r, x += w_) {
      float* row = y;
      if (sw_ == 1) {
        std::memcpy(row, x, w_ * sizeof(float));
      } else {
        for (uint32_t i = 0; i < w_; ++i)
          for (uint32_t j = 0; j < sw_; ++j) row[size_t(i) * sw_ + j] = x[i];
      }
      y += ow;
      for (uint32_t k = 1; k < sh_; ++k, y += ow) std::memcpy(y, row, ow * sizeof(float));
    }
  }

  uint64_t work() const override { return uint64_t(c_) * h_ * sh_ * w_ * sw_; }  // elements written

 private:
  uint32_t c_, h_, w_, sh_, sw_;
};

// torch's adaptive windows over n inputs for `out` outputs: [begin[i], end[i]).
void adaptive_windows(uint32_t n, uint32_t out, std::vector<uint32_t>& begin, std::vector<uint32_t>& end) {
  begin.resize(out), end.resize(out);
  for (uint32_t i = 0; i < out; ++i) {
    begin[i] = uint32_t(uint64_t(i) * n / out);
    end[i] = uint32_t((uint64_t(i + 1) * n + out - 1) / out);
  }
}

class AdaptiveAvgPoolStep final : public Step {
 public:
  AdaptiveAvgPoolStep(const std::vector<uint32_t>& in, uint32_t oh, uint32_t ow)
      : c_(in[0]), h_(in[1]), w_(in[2]), oh_(oh), ow_(ow) {
    adaptive_windows(h_, oh_, h0_, h1_);
    adaptive_windows(w_, ow_, w0_, w1_);
    uint64_t rows = 0, cols = 0;
    for (uint32_t i = 0; i < oh_; ++i) rows += h1_[i] - h0_[i];
    for (uint32_t j = 0; j < ow_; ++j) cols += w1_[j] - w0_[j];
    reads_ = uint64_t(c_) * rows * cols;
  }

  void run(const RunContext&, const void* const* in, size_t batch, void* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out);
    const size_t planes = batch * c_, plane = size_t(h_) * w_;
    for (size_t p = 0; p < planes; ++p, x += plane)
      for (uint32_t i = 0; i < oh_; ++i) {
        const float kh = float(h1_[i] - h0_[i]);
        for (uint32_t j = 0; j < ow_; ++j) {
          float sum = 0.0f;
          for (uint32_t r = h0_[i]; r < h1_[i]; ++r) {
            const float* xr = x + size_t(r) * w_;
            for (uint32_t c = w0_[j]; c < w1_[j]; ++c) sum += xr[c];
          }
          *y++ = sum / kh / float(w1_[j] - w0_[j]);
        }
      }
  }

  uint64_t work() const override { return reads_; }  // window reads

 private:
  uint32_t c_, h_, w_, oh_, ow_;
  std::vector<uint32_t> h0_, h1_, w0_, w1_;  // each output row's / column's window
  uint64_t reads_;
};

}  // namespace

StepSpec build_resample(const BuildContext& ctx) {
  const std::vector<uint32_t>& in = *ctx.in_shapes[0];
  const std::vector<uint32_t>& a = ctx.node.attrs;
  StepSpec s;
  if (ctx.node.op == Op::upsample_nearest)
    s.step = std::make_unique<UpsampleStep>(in, a[0], a[1]);
  else
    s.step = std::make_unique<AdaptiveAvgPoolStep>(in, a[0], a[1]);
  s.takes = {ValueType::f32()};
  s.gives = ValueType::f32();
  return s;
}

}  // namespace pyrt::runtime
