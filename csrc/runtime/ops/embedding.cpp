// pyruntime: embedding (format version 5): i32 ids [...] -> [..., D] f32, row ids[i] of a table [V, D].
//
// The table stays in its stored encoding: the f32 encodings (dense, csr, codebook, csr+codebook) in their
// execution layout (kernels::pack) and one row decoded per id (PackedWeight::decode_row, the exact row);
// int8 and csr+int8 as their quantized values and per-row scales, a row decoded as scale[r] * q (the
// dequantization of docs/RUNTIME.md "int8 numerics", exact to the bit). Every id of a batch is checked
// before anything is written: one outside 0..V-1 fails the run (PYRT_INVALID_ARGUMENT) naming the id and
// its position in the batch's ids (sample after sample).
#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "kernels/packed_weight.h"
#include "runtime/ops/weights.h"

namespace pyrt::runtime {
namespace {

// An int8 or csr+int8 table as stored: W[r][c] = scales[r] * q[r][c].
struct Int8Table {
  bool sparse = false;
  std::vector<int8_t> q;          // dense: V * D; sparse: one per nonzero
  std::vector<float> scales;      // V
  std::vector<uint32_t> rowptr;   // sparse: V + 1
  std::vector<uint32_t> colidx;   // sparse: one per nonzero

  explicit Int8Table(const DecodedTensor& t)
      : sparse(t.encoding == Encoding::csr_int8), q(t.qvalues), scales(t.scales), rowptr(t.rowptr),
        colidx(t.colidx) {}

  size_t bytes() const {
    return q.size() + (scales.size() + rowptr.size() + colidx.size()) * sizeof(uint32_t);
  }
  void decode_row(uint32_t r, uint32_t d, float* out) const {
    const float s = scales[r];
    if (!sparse) {
      const int8_t* qr = q.data() + size_t(r) * d;
      for (uint32_t c = 0; c < d; ++c) out[c] = s * float(qr[c]);
      return;
    }
    std::fill(out, out + d, 0.0f);
    for (uint32_t j = rowptr[r]; j < rowptr[r + 1]; ++j) out[colidx[j]] = s * float(q[j]);
  }
};

class EmbeddingStep final : public Step {
 public:
  EmbeddingStep(const BuildContext& ctx, LayerInfo& li)
      : ids_(shape_numel(*ctx.in_shapes[0])),
        rows_(uint32_t(ctx.tensor(0).rows())),
        dim_(uint32_t(ctx.tensor(0).cols())) {
    const DecodedTensor& t = ctx.tensor(0);
    if (is_int8(t.encoding)) {
      int8_ = std::make_unique<Int8Table>(t);
      li.layout = t.encoding == Encoding::int8 ? "i8_rows" : "csr_i8_rows";
      li.exec_bytes = int8_->bytes();
    } else {
      table_ = kernels::pack(t, ctx.in_place);
      li.layout = table_->layout();
      li.exec_bytes = table_->bytes();
      li.in_place = table_->in_place();
    }
    li.method = "gather";
  }

  void run(const RunContext&, const void* const* in, size_t batch, void* out) const override {
    const int32_t* ids = static_cast<const int32_t*>(in[0]);
    float* y = static_cast<float*>(out);
    const size_t n = batch * ids_;
    for (size_t i = 0; i < n; ++i)
      if (ids[i] < 0 || uint32_t(ids[i]) >= rows_)
        fail(PYRT_INVALID_ARGUMENT, "embedding: id ", ids[i], " at position ", i, " is outside the table's ", rows_,
             " rows");
    for (size_t i = 0; i < n; ++i, y += dim_) {
      const uint32_t r = uint32_t(ids[i]);
      if (int8_)
        int8_->decode_row(r, dim_, y);
      else
        table_->decode_row(r, y);
    }
  }

  uint64_t work() const override { return ids_ * dim_; }  // elements written

  size_t in_place_bytes() const override { return table_ && table_->in_place() ? table_->bytes() : 0; }

 private:
  uint64_t ids_;  // per sample
  uint32_t rows_, dim_;
  std::unique_ptr<kernels::PackedWeight> table_;  // f32 encodings
  std::unique_ptr<Int8Table> int8_;               // int8, csr+int8
};

}  // namespace

StepSpec build_embedding(const BuildContext& ctx) {
  StepSpec s;
  ops::describe_weight(ctx, s.layer);
  s.step = std::make_unique<EmbeddingStep>(ctx, s.layer);
  s.takes = {ValueType::i32()};
  s.gives = ValueType::f32();
  return s;
}

}  // namespace pyrt::runtime
