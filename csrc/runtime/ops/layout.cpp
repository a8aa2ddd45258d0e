// pyruntime: layout ops (format version 5): transpose (the per-sample axes permuted) and slice (one axis,
// start:end:step). Both move 4-byte elements and so take f32 or i32 (token ids) as they are and give the
// same type; any other type is read as f32.
//
// Both view a sample as 4 dims (1s in front) and copy runs of contiguous elements with memcpy: transpose
// the trailing axes it leaves in place (e.g. [T, H, d] -> [H, T, d] copies rows of d), slice everything
// after its axis. A transpose that moves the innermost axis gathers element by element.
#include <cstring>

#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

using Elem = uint32_t;  // f32 or i32: only bits move

class TransposeStep final : public Step {
 public:
  // in: the input's shape (rank r); perm: the first r words of the attribute.
  TransposeStep(const std::vector<uint32_t>& in, const std::vector<uint32_t>& perm) : numel_(shape_numel(in)) {
    const size_t pad = 4 - in.size();
    uint32_t dims[4] = {1, 1, 1, 1}, p[4] = {0, 1, 2, 3};
    for (size_t i = 0; i < in.size(); ++i) dims[pad + i] = in[i], p[pad + i] = uint32_t(pad + perm[i]);
    uint64_t in_stride[4];
    in_stride[3] = 1;
    for (int d = 2; d >= 0; --d) in_stride[d] = in_stride[d + 1] * dims[d + 1];
    for (int i = 0; i < 4; ++i) out_dims_[i] = dims[p[i]], src_stride_[i] = in_stride[p[i]];
    // the trailing axes that stay where they are form contiguous runs in both layouts
    run_axes_ = 0;
    run_ = 1;
    while (run_axes_ < 4 && p[3 - run_axes_] == 3 - run_axes_) run_ *= out_dims_[3 - run_axes_++];
  }

  void run(const RunContext&, const void* const* in, size_t batch, void* out) const override {
    const Elem* x = static_cast<const Elem*>(in[0]);
    Elem* y = static_cast<Elem*>(out);
    if (run_axes_ == 4) {  // the identity permutation
      std::memcpy(y, x, batch * numel_ * sizeof(Elem));
      return;
    }
    const uint32_t* od = out_dims_;
    const uint64_t* st = src_stride_;
    for (size_t s = 0; s < batch; ++s) {
      const Elem* xs = x + s * numel_;
      if (run_axes_ > 0) {  // memcpy runs of run_ elements over the out dims before them
        const uint32_t outer = 4 - run_axes_;  // 1..3 axes left to walk
        uint32_t i[3] = {0, 0, 0};
        const uint32_t n0 = outer > 0 ? od[0] : 1, n1 = outer > 1 ? od[1] : 1, n2 = outer > 2 ? od[2] : 1;
        for (i[0] = 0; i[0] < n0; ++i[0])
          for (i[1] = 0; i[1] < n1; ++i[1])
            for (i[2] = 0; i[2] < n2; ++i[2]) {
              uint64_t src = 0;
              for (uint32_t d = 0; d < outer; ++d) src += i[d] * st[d];
              std::memcpy(y, xs + src, run_ * sizeof(Elem));
              y += run_;
            }
        continue;
      }
      for (uint32_t i0 = 0; i0 < od[0]; ++i0)
        for (uint32_t i1 = 0; i1 < od[1]; ++i1)
          for (uint32_t i2 = 0; i2 < od[2]; ++i2) {
            const Elem* src = xs + i0 * st[0] + i1 * st[1] + i2 * st[2];
            const uint64_t s3 = st[3];
            for (uint32_t i3 = 0; i3 < od[3]; ++i3) *y++ = src[i3 * s3];
          }
    }
  }

  uint64_t work() const override { return numel_; }  // elements written

 private:
  uint64_t numel_;
  uint32_t out_dims_[4];     // the output's dims, 1s in front
  uint64_t src_stride_[4];   // input elements between neighbours along each output axis
  uint32_t run_axes_;        // trailing axes in place (0..4)
  uint64_t run_;             // elements of a contiguous run: the product of those axes' dims
};

class SliceStep final : public Step {
 public:
  SliceStep(const std::vector<uint32_t>& in, const SliceAttrs& a, uint32_t count)
      : axis_dim_(in[a.axis]), start_(a.start), step_(a.step), count_(count) {
    outer_ = 1, inner_ = 1;
    for (uint32_t d = 0; d < a.axis; ++d) outer_ *= in[d];
    for (size_t d = a.axis + 1; d < in.size(); ++d) inner_ *= in[d];
  }

  void run(const RunContext&, const void* const* in, size_t batch, void* out) const override {
    const Elem* x = static_cast<const Elem*>(in[0]);
    Elem* y = static_cast<Elem*>(out);
    const size_t outer = batch * outer_;  // a sample is outer_ blocks of axis_dim_ * inner_ elements
    const uint64_t block = uint64_t(axis_dim_) * inner_, jump = uint64_t(step_) * inner_;
    for (size_t o = 0; o < outer; ++o) {
      const Elem* src = x + o * block + uint64_t(start_) * inner_;
      if (inner_ == 1) {  // the last axis: a strided gather
        for (uint32_t t = 0; t < count_; ++t) y[t] = src[uint64_t(t) * step_];
        y += count_;
        continue;
      }
      if (step_ == 1) {  // the selected rows are one run
        std::memcpy(y, src, count_ * inner_ * sizeof(Elem));
        y += count_ * inner_;
        continue;
      }
      for (uint32_t t = 0; t < count_; ++t, src += jump, y += inner_) std::memcpy(y, src, inner_ * sizeof(Elem));
    }
  }

  uint64_t work() const override { return outer_ * count_ * inner_; }  // elements written

 private:
  uint32_t axis_dim_, start_, step_, count_;  // count_: elements kept along the axis
  uint64_t outer_, inner_;                    // elements before / after the axis, per sample
};

}  // namespace

StepSpec build_layout(const BuildContext& ctx) {
  const std::vector<uint32_t>& in = *ctx.in_shapes[0];
  const ValueType t = ctx.in_types[0].dtype == DType::i32 ? ValueType::i32() : ValueType::f32();
  StepSpec s;
  if (ctx.node.op == Op::transpose) {
    const std::vector<uint32_t> perm(ctx.node.attrs.begin(), ctx.node.attrs.begin() + in.size());
    s.step = std::make_unique<TransposeStep>(in, perm);
  } else {
    const SliceAttrs a = slice_attrs(ctx.node.attrs);
    s.step = std::make_unique<SliceStep>(in, a, ctx.out_shape[a.axis]);
  }
  s.takes = {t};
  s.gives = t;
  return s;
}

}  // namespace pyrt::runtime
