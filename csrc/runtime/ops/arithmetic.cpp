// pyruntime: the binary arithmetic of format version 5 (f32): add, sub, mul, div with numpy broadcasting of
// the per-sample shapes, between two values or a value and a dense tensor (the right operand, the same for
// every sample). A plain add of two values of one shape is elementwise.cpp's.
//
// Each result is one float32 operation (a + b, a - b, a * b, a / b), so it equals numpy float32 bit for bit.
// The output is walked as [batch, d0, d1, d2, d3] with a stride per operand and dim (0 where the operand is
// broadcast; a tensor's batch stride is 0); dims of size 1 are dropped and neighbours both operands walk
// contiguously are merged, so a same-shape op is one flat loop, a [N] tensor over [T, N] is T rows of N and
// a [1, 1, T] mask over [H, T, T] is H * T rows of T. The innermost dim is then contiguous or broadcast for
// each operand (strides 1 or 0): four simple loops the compiler vectorizes.
#include <cstddef>
#include <utility>
#include <vector>

#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

constexpr size_t kDims = 5;  // the batch, then the per-sample shape right-aligned into 4 dims

struct Add {
  float operator()(float a, float b) const { return a + b; }
};
struct Sub {
  float operator()(float a, float b) const { return a - b; }
};
struct Mul {
  float operator()(float a, float b) const { return a * b; }
};
struct Div {
  float operator()(float a, float b) const { return a / b; }
};

// y[i] = f(a[i * sa], b[i * sb]) for i < n.
template <class F>
void row(F f, const float* a, ptrdiff_t sa, const float* b, ptrdiff_t sb, float* y, size_t n) {
  if (sa == 1 && sb == 1) {
    for (size_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float bv = *b;
    for (size_t i = 0; i < n; ++i) y[i] = f(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    const float av = *a;
    for (size_t i = 0; i < n; ++i) y[i] = f(av, b[i]);
  } else {
    for (size_t i = 0; i < n; ++i) y[i] = f(a[ptrdiff_t(i) * sa], b[ptrdiff_t(i) * sb]);
  }
}

// The walk of one run: `nd` dims (outermost first) after dropping and merging, with each operand's strides.
struct Walk {
  size_t nd = 0;
  size_t dim[kDims];
  ptrdiff_t sa[kDims], sb[kDims];
};

class ArithmeticStep final : public Step {
 public:
  // dim, sa, sb: the 5-D walk with dim[0] (the batch) filled in by run().
  // tensor_operand: b is `tensor`, else the second input.
  ArithmeticStep(Op op, const size_t* dim, const ptrdiff_t* sa, const ptrdiff_t* sb, bool tensor_operand,
                 std::vector<float> tensor)
      : op_(op), tensor_operand_(tensor_operand), tensor_(std::move(tensor)) {
    for (size_t i = 0; i < kDims; ++i) dim_[i] = dim[i], sa_[i] = sa[i], sb_[i] = sb[i];
  }

  void run(const RunContext&, const void* const* in, size_t batch, void* out) const override {
    const float* a = static_cast<const float*>(in[0]);
    const float* b = tensor_operand_ ? tensor_.data() : static_cast<const float*>(in[1]);
    float* y = static_cast<float*>(out);
    const Walk w = walk(batch);
    switch (op_) {
      case Op::add: return apply(Add{}, w, a, b, y);
      case Op::sub: return apply(Sub{}, w, a, b, y);
      case Op::mul: return apply(Mul{}, w, a, b, y);
      default: return apply(Div{}, w, a, b, y);
    }
  }

  uint64_t work() const override {  // elements written per sample
    uint64_t n = 1;
    for (size_t i = 1; i < kDims; ++i) n *= dim_[i];
    return n;
  }

 private:
  // Drops the dims of size 1 and merges a dim into the one outside it where both operands step through
  // the pair as one dim (stride outside = stride inside * extent inside; both 0 counts).
  Walk walk(size_t batch) const {
    Walk w;
    for (size_t i = kDims; i-- > 0;) {  // innermost first, into w reversed
      const size_t d = i == 0 ? batch : dim_[i];
      if (d == 1) continue;
      if (w.nd > 0) {
        const size_t k = w.nd - 1;
        if (sa_[i] == w.sa[k] * ptrdiff_t(w.dim[k]) && sb_[i] == w.sb[k] * ptrdiff_t(w.dim[k])) {
          w.dim[k] *= d;
          continue;
        }
      }
      w.dim[w.nd] = d, w.sa[w.nd] = sa_[i], w.sb[w.nd] = sb_[i];
      ++w.nd;
    }
    if (w.nd == 0) w.dim[0] = 1, w.sa[0] = 0, w.sb[0] = 0, w.nd = 1;  // every dim 1: one element
    for (size_t i = 0, j = w.nd - 1; i < j; ++i, --j) {  // outermost first
      std::swap(w.dim[i], w.dim[j]);
      std::swap(w.sa[i], w.sa[j]);
      std::swap(w.sb[i], w.sb[j]);
    }
    return w;
  }

  template <class F>
  static void apply(F f, const Walk& w, const float* a, const float* b, float* y) {
    const size_t last = w.nd - 1, n = w.dim[last];
    size_t rows = 1;
    for (size_t k = 0; k < last; ++k) rows *= w.dim[k];
    if (n == 0) return;
    size_t idx[kDims] = {};
    ptrdiff_t oa = 0, ob = 0;
    for (size_t r = 0; r < rows; ++r, y += n) {
      row(f, a + oa, w.sa[last], b + ob, w.sb[last], y, n);
      for (size_t k = last; k-- > 0;) {  // the next row: an odometer over the outer dims
        oa += w.sa[k], ob += w.sb[k];
        if (++idx[k] < w.dim[k]) break;
        oa -= w.sa[k] * ptrdiff_t(w.dim[k]), ob -= w.sb[k] * ptrdiff_t(w.dim[k]);
        idx[k] = 0;
      }
    }
  }

  Op op_;
  bool tensor_operand_;
  size_t dim_[kDims];
  ptrdiff_t sa_[kDims], sb_[kDims];
  std::vector<float> tensor_;  // the right operand when it is a tensor
};

// An operand's strides over the 5-D walk: contiguous strides of its shape right-aligned into the last 4
// dims, 0 where it has extent 1 (broadcast, or a dim of 1 in the output too); `sample` is its batch stride.
void operand_strides(const std::vector<uint32_t>& shape, ptrdiff_t sample, ptrdiff_t* s) {
  ptrdiff_t c = 1;
  for (size_t i = kDims; i-- > 1;) {
    const size_t back = kDims - 1 - i;  // 0 for the innermost dim
    const size_t d = back < shape.size() ? shape[shape.size() - 1 - back] : 1;
    s[i] = d == 1 ? 0 : c;
    c *= ptrdiff_t(d);
  }
  s[0] = sample;
}

}  // namespace

StepSpec build_arithmetic(const BuildContext& ctx) {
  const std::vector<uint32_t>& out = ctx.out_shape;
  const bool two_values = ctx.node.inputs.size() == 2;
  const std::vector<uint32_t>& a = *ctx.in_shapes[0];
  const std::vector<uint32_t>& b = two_values ? *ctx.in_shapes[1] : ctx.tensor(0).shape;

  size_t dim[kDims];
  dim[0] = 1;  // the batch: run() fills it in
  for (size_t i = 1; i < kDims; ++i) {
    const size_t back = kDims - 1 - i;
    dim[i] = back < out.size() ? out[out.size() - 1 - back] : 1;
  }
  ptrdiff_t sa[kDims], sb[kDims];
  operand_strides(a, ptrdiff_t(shape_numel(a)), sa);
  operand_strides(b, two_values ? ptrdiff_t(shape_numel(b)) : 0, sb);

  std::vector<float> tensor;
  StepSpec s;
  if (!two_values) {
    const DecodedTensor& t = ctx.tensor(0);
    const float* v = t.value_data();
    tensor.assign(v, v + t.numel());
    s.layer.exec_bytes = tensor.size() * sizeof(float);
  }
  s.step = std::make_unique<ArithmeticStep>(ctx.node.op, dim, sa, sb, !two_values, std::move(tensor));
  s.takes.assign(ctx.node.inputs.size(), ValueType::f32());
  s.gives = ValueType::f32();
  return s;
}

}  // namespace pyrt::runtime
