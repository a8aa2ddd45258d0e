// pyruntime: shape ops. flatten and reshape are aliases (the same bytes under a new shape, any type);
// concat copies each input's chunks after one another, per sample and per index before the axis (f32, or i32
// ids when every input is).
#include <algorithm>
#include <cstring>

#include "runtime/step.h"

namespace pyrt::runtime {
namespace {

class AliasStep final : public Step {
 public:
  explicit AliasStep(uint64_t work = 0) : work_(work) {}
  void run(const RunContext&, const void* const*, size_t, void*) const override {}
  bool alias() const override { return true; }
  uint64_t work() const override { return work_; }

 private:
  uint64_t work_;  // a fused activation still counts the elements it clamps (pyrt_model_work)
};

class ConcatStep final : public Step {
 public:
  ConcatStep(std::vector<uint64_t> in_sizes, uint32_t outer, uint64_t out_size)
      : in_sizes_(std::move(in_sizes)), outer_(outer), out_size_(out_size) {}

  // Output elements [lo, hi) of the batch go to the pool's threads (split_items), each piece copying the parts
  // of the chunks that fall in it.
  void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const override {
    float* y = static_cast<float*>(out);
    split_items(ctx, batch * out_size_, 2 * sizeof(float), [&](size_t lo, size_t hi) {
      size_t pos = 0;  // output position of the chunk
      for (size_t b = 0; b < batch && pos < hi; ++b)
        for (uint32_t o = 0; o < outer_ && pos < hi; ++o)
          for (size_t k = 0; k < in_sizes_.size() && pos < hi; ++k) {
            const size_t chunk = in_sizes_[k] / outer_, a = std::max(lo, pos), e = std::min(hi, pos + chunk);
            if (a < e)
              std::memcpy(y + a, static_cast<const float*>(in[k]) + b * in_sizes_[k] + o * chunk + (a - pos),
                          (e - a) * sizeof(float));
            pos += chunk;
          }
    }, 16);
  }

  uint64_t work() const override { return out_size_; }

 private:
  std::vector<uint64_t> in_sizes_;  // elements per sample of each input
  uint32_t outer_;                  // product of the dims before the axis
  uint64_t out_size_;
};

}  // namespace

std::unique_ptr<Step> make_alias_step(uint64_t work) { return std::make_unique<AliasStep>(work); }

StepSpec build_shape(const BuildContext& ctx) {
  StepSpec s;
  if (ctx.node.op == Op::concat) {
    std::vector<uint64_t> sizes;
    for (const auto* shape : ctx.in_shapes) sizes.push_back(shape_numel(*shape));
    uint32_t outer = 1;
    const uint32_t axis = concat_attrs(ctx.node.attrs);
    for (uint32_t d = 0; d < axis; ++d) outer *= ctx.out_shape[d];
    s.step = std::make_unique<ConcatStep>(std::move(sizes), outer, shape_numel(ctx.out_shape));
    // 4-byte elements moved as they are: ids stay ids when every input is i32 (FORMAT.md 2)
    bool ids = true;
    for (const ValueType& t : ctx.in_types) ids = ids && t.dtype == DType::i32;
    const ValueType t = ids ? ValueType::i32() : ValueType::f32();
    s.takes.assign(ctx.node.inputs.size(), t);
    s.gives = t;
    return s;
  }
  s.step = std::make_unique<AliasStep>();
  s.takes = {ctx.in_types[0]};
  s.gives = ctx.in_types[0];
  return s;
}

}  // namespace pyrt::runtime
