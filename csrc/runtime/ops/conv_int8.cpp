// pyruntime: int8 convolutions (FORMAT.md 2.5): conv2d with an int8 or csr+int8 weight (dynamic: each sample's
// f32 input is quantized with one scale, max |x| over the sample / 127) and qconv2d (static: it takes an i8
// value of its input_scale and gives i8 of its output_scale, or f32 when that is 0, its clamp applied before).
// The int8 patches (zero padding is q = 0, exact) go through the int8 GEMM kernels of the group's rows, and
// each output gets the int8 epilogue. The sums are exact integers, so the tiling of positions and the split
// across threads (by samples) never change a bit.
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/int8/int8_weight.h"
#include "kernels/kernels.h"
#include "runtime/ops/weights.h"

namespace pyrt::runtime {
namespace {

constexpr size_t kTile = 256;                     // output positions per GEMM call
constexpr uint64_t kMinMacsPerTask = 256 * 1024;  // as ops/conv.cpp

// Rows [r0, r1) of an int8 or csr+int8 tensor (viewed as [rows, cols]).
DecodedTensor slice_int8(const DecodedTensor& t, uint32_t r0, uint32_t r1) {
  DecodedTensor s;
  s.name = t.name;
  s.encoding = t.encoding;
  s.shape = {r1 - r0, uint32_t(t.cols())};
  s.scales.assign(t.scales.begin() + r0, t.scales.begin() + r1);
  const size_t cols = t.cols();
  if (t.encoding == Encoding::int8) {
    s.qvalues.assign(t.qvalues.begin() + r0 * cols, t.qvalues.begin() + r1 * cols);
  } else {
    const uint32_t j0 = t.rowptr[r0], j1 = t.rowptr[r1];
    for (uint32_t r = r0; r <= r1; ++r) s.rowptr.push_back(t.rowptr[r] - j0);
    s.colidx.assign(t.colidx.begin() + j0, t.colidx.begin() + j1);
    s.qvalues.assign(t.qvalues.begin() + j0, t.qvalues.begin() + j1);
  }
  return s;
}

class Int8ConvStep final : public Step {
 public:
  Int8ConvStep(const BuildContext& ctx, LayerInfo& li, bool is_static, const QLinearAttrs& a)
      : g_(ops::conv_geometry(ctx)), static_(is_static), in_scale_(a.input_scale) {
    const DecodedTensor& w = ctx.tensor(0);
    const uint32_t og = g_.group_out();
    for (uint32_t grp = 0; grp < g_.groups; ++grp) {
      parts_.push_back(kernels::Int8Weight::pack(slice_int8(w, grp * og, (grp + 1) * og)));
      li.exec_bytes += parts_.back()->bytes();
    }
    const size_t prow = parts_[0]->padded_rows();
    bias_.resize(size_t(g_.groups) * prow);
    has_bias_ = ctx.node.tensors.size() == 2;
    if (has_bias_) {
      const DecodedTensor& b = ctx.tensor(1);
      for (uint32_t grp = 0; grp < g_.groups; ++grp)
        std::memcpy(bias_.data() + grp * prow, b.value_data() + size_t(grp) * og, og * sizeof(float));
      li.file_bytes += ctx.tensor_file_bytes(1);
      li.exec_bytes += g_.out_c * sizeof(float);
      li.dense_bytes += g_.out_c * sizeof(float);
    }
    lo_ = is_static ? a.min : -std::numeric_limits<float>::infinity();
    hi_ = is_static ? a.max : std::numeric_limits<float>::infinity();
    inv_out_ = is_static && a.output_scale > 0 ? 1.0f / a.output_scale : 0.0f;
    li.layout = parts_[0]->layout();
    li.method = is_static ? "im2col-static" : "im2col-dynamic";
    li.groups = g_.groups;
    work_ = w.nnz() * uint64_t(g_.out_h) * g_.out_w;
  }

  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    const void* x = in[0];
    void* y = out;
    if (ctx.pool && batch > 1 && work_ * batch >= 2 * kMinMacsPerTask) {
      const unsigned parts = static_cast<unsigned>(std::min<size_t>(ctx.pool->threads(), batch));
      ctx.pool->run(parts, [&](unsigned i) {
        for (size_t b = batch * i / parts; b < batch * (i + 1) / parts; ++b) sample(ctx.isa, x, y, b);
      });
      return;
    }
    for (size_t b = 0; b < batch; ++b) sample(ctx.isa, x, y, b);
  }

  uint64_t work() const override { return work_; }

 private:
  // One sample: its int8 input (quantized here when dynamic), then per group and tile of positions the int8
  // patches, the GEMM into [positions x group_out] and the transpose into the output planes.
  void sample(kernels::Isa isa, const void* x, void* y, size_t b) const {
    const kernels::Conv2dGeometry& g = g_;
    const size_t in_size = g.in_size(), plane = size_t(g.out_h) * g.out_w, og = g.group_out();
    const size_t kp = parts_[0]->kp(), prow = parts_[0]->padded_rows();
    const size_t out_bytes = inv_out_ > 0 ? 1 : 4;
    // scratch: the quantized input (dynamic), the patches of a tile (+ pad), the tile's scales, its outputs
    const size_t qin_bytes = static_ ? 0 : (in_size + 63) / 64 * 64;
    const size_t patch_bytes = (kTile * kp + kernels::kInt8ActPad + 63) / 64 * 64;
    uint8_t* base = reinterpret_cast<uint8_t*>(kernels::thread_scratch(
        (qin_bytes + patch_bytes + kTile * sizeof(float) + kTile * og * out_bytes) / 4 + 16,
        kernels::Scratch::kInt8));
    const int8_t* qin = static_cast<const int8_t*>(x) + b * in_size;
    float sample_scale = in_scale_;
    if (!static_) {
      int8_t* q = reinterpret_cast<int8_t*>(base);
      kernels::quantize_rows(isa, static_cast<const float*>(x) + b * in_size, 1, in_size, in_size, q, &sample_scale);
      qin = q;
    }
    int8_t* patches = reinterpret_cast<int8_t*>(base + qin_bytes);
    float* xs = reinterpret_cast<float*>(base + qin_bytes + patch_bytes);
    uint8_t* ytile = reinterpret_cast<uint8_t*>(xs + kTile);
    std::fill(xs, xs + kTile, sample_scale);
    const size_t gin = g.group_in();
    for (uint32_t grp = 0; grp < g.groups; ++grp) {
      const kernels::Int8Epilogue ep{parts_[grp]->wscale(), has_bias_ ? bias_.data() + grp * prow : nullptr, lo_,
                                     hi_, inv_out_};
      for (size_t p0 = 0; p0 < plane; p0 += kTile) {
        const size_t n = std::min(kTile, plane - p0);
        std::memset(patches, 0, n * kp + kernels::kInt8ActPad);
        for (size_t i = 0; i < n; ++i) {  // patch column (c * kh + ky) * kw + kx, as FORMAT.md 2.3
          const size_t oy = (p0 + i) / g.out_w, ox = (p0 + i) % g.out_w;
          int8_t* row = patches + i * kp;
          for (size_t c = 0; c < gin; ++c) {
            const int8_t* xc = qin + (grp * gin + c) * size_t(g.in_h) * g.in_w;
            for (uint32_t ky = 0; ky < g.kh; ++ky) {
              const int64_t iy = int64_t(oy) * g.stride_h - g.pad_top + int64_t(ky) * g.dilation_h;
              if (iy < 0 || iy >= g.in_h) continue;
              for (uint32_t kx = 0; kx < g.kw; ++kx) {
                const int64_t ix = int64_t(ox) * g.stride_w - g.pad_left + int64_t(kx) * g.dilation_w;
                if (ix >= 0 && ix < g.in_w) row[(c * g.kh + ky) * g.kw + kx] = xc[iy * g.in_w + ix];
              }
            }
          }
        }
        parts_[grp]->gemm(isa, kernels::Int8Act{patches, xs, n, kp}, ep, 0, uint32_t(og), ytile, og);
        const size_t y0 = b * g.out_size() + size_t(grp) * og * plane + p0;
        if (out_bytes == 1) {
          transpose_tile(reinterpret_cast<const int8_t*>(ytile), static_cast<int8_t*>(y) + y0, n, og, plane);
        } else {
          transpose_tile(reinterpret_cast<const float*>(ytile), static_cast<float*>(y) + y0, n, og, plane);
        }
      }
    }
  }

  // [n positions x og channels] -> og planes of `plane` elements, starting at the tile's first position.
  template <typename T>
  static void transpose_tile(const T* tile, T* y, size_t n, size_t og, size_t plane) {
    for (size_t i = 0; i < n; ++i)
      for (size_t o = 0; o < og; ++o) y[o * plane + i] = tile[i * og + o];
  }

  kernels::Conv2dGeometry g_;
  std::vector<std::unique_ptr<kernels::Int8Weight>> parts_;  // per group: its output channels
  AlignedArray<float> bias_;                                 // per group, padded to its rows' multiple of 16
  bool has_bias_ = false;
  bool static_;
  float in_scale_;          // static: the input's scale
  float lo_, hi_, inv_out_;  // the epilogue's clamp and 1 / output_scale (0: f32 output)
  uint64_t work_ = 0;
};

}  // namespace

StepSpec build_conv2d_int8(const BuildContext& ctx) {
  StepSpec s;
  ops::describe_weight(ctx, s.layer);
  s.step = std::make_unique<Int8ConvStep>(ctx, s.layer, false, QLinearAttrs{0, 0, 0, 0});
  s.takes = {ValueType::f32()};
  s.gives = ValueType::f32();
  return s;
}

StepSpec build_qconv2d(const BuildContext& ctx) {
  const QLinearAttrs a = qconv2d_quant_attrs(ctx.node.attrs);
  StepSpec s;
  ops::describe_weight(ctx, s.layer);
  s.step = std::make_unique<Int8ConvStep>(ctx, s.layer, true, a);
  s.takes = {ValueType::i8(a.input_scale)};
  s.gives = a.output_scale > 0 ? ValueType::i8(a.output_scale) : ValueType::f32();
  return s;
}

}  // namespace pyrt::runtime
