// pyruntime: a loaded model. Built once from a ModelDef: every node becomes a Step of its op family
// (runtime/ops/, through the registry in step.cpp), which packs its weights into their execution layouts;
// the plan (plan.h) adds conversions between value types and lays out the activation arena in bytes.
// Immutable afterwards: run() only reads the model and writes into the caller's arena, so any number of
// threads may run one model through their own sessions. docs/RUNTIME.md describes the design.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/aligned.h"
#include "common/model_def.h"
#include "format/file_buffer.h"
#include "format/model_file.h"
#include "runtime/plan.h"
#include "runtime/step.h"
#include "runtime/thread_pool.h"

namespace pyrt::runtime {

class Model {
 public:
  // Copies what it needs: `data` is not referenced after the call.
  static std::unique_ptr<Model> load_buffer(const uint8_t* data, size_t size);
  // Both modes read the file into memory, validate and decode it from there, and release it before this
  // returns. Mode::map then maps the file when dense f32 tensors make up at least half of it: those are
  // used in place and the mapping is kept while the model lives (the file must not be truncated or
  // rewritten meanwhile: file_buffer.h). Nothing touches the mapping during the load.
  static std::unique_ptr<Model> load_file(const char* path,
                                          format::FileBuffer::Mode mode = format::FileBuffer::Mode::read);
  // Tensors of `def` with mapped_values are used in place when `backing` is given (it owns the memory
  // they point into and is kept while any is used); everything else is copied.
  Model(ModelDef def, const format::FileInfo& info, std::shared_ptr<const void> backing = nullptr);

  // Graph inputs (f32 or i32 ids) and outputs (always f32), per sample.
  size_t input_count() const { return input_types_.size(); }
  size_t output_count() const { return outputs_.size(); }
  const std::vector<uint32_t>& input_shape(size_t k = 0) const { return shapes_[k]; }
  ElemType input_type(size_t k = 0) const { return input_types_[k]; }
  const std::vector<uint32_t>& output_shape(size_t k = 0) const { return shapes_[outputs_[k]]; }
  size_t input_size(size_t k = 0) const { return static_cast<size_t>(shape_numel(input_shape(k))); }
  size_t output_size(size_t k = 0) const { return static_cast<size_t>(shape_numel(output_shape(k))); }
  const std::vector<LayerInfo>& layers() const { return layers_; }
  const std::string& metadata() const { return metadata_; }
  uint64_t file_bytes() const { return file_bytes_; }
  uint32_t format_version() const { return format_version_; }
  size_t weight_bytes() const;
  // Operations per sample (pyrt_model_work): multiply-adds of weighted layers (and the patches of im2col
  // convs, the padded planes of int8 depthwise ones), pool window reads, and the elements other ops write.
  uint64_t work_per_sample() const;
  // Bytes of weights and biases used in place from a mapped file (0 unless loaded with Mode::map).
  size_t in_place_bytes() const { return in_place_bytes_; }

  // Threads a run may use, the caller's included (1 = no pool; 0 = one per hardware thread). Layers big
  // enough to pay for it are split across the pool: by rows at batch 1, by samples above. Not to be
  // called while the model runs.
  void set_threads(unsigned threads);
  unsigned threads() const { return pool_ ? pool_->threads() : 1; }

  // Samples a linear layer's kernel call covers (ops/linear.cpp): results depend on the batch's chunks of
  // this many samples, never on the thread count.
  static constexpr size_t kBatchChunk = 64;

  // Bytes of arena needed for up to `batch` samples (the arena must be 64-byte aligned): a batch-1 run lays
  // its arena out by the batch-1 plan, which may need more (in-place concats keep their inputs' slot alive).
  size_t arena_bytes(size_t batch) const {
    return std::max(plan_.bytes_per_sample * batch, plan1_.bytes_per_sample);
  }
  // inputs[k]: batch * input_size(k) elements of input_type(k) (float or int32_t); outputs[k]: batch *
  // output_size(k) floats; no allocation. With step_seconds (one entry per planned_steps() item), each
  // step's wall time is added to its entry: a profile.
  void run(const void* const* inputs, size_t batch, float* const* outputs, void* arena,
           double* step_seconds = nullptr) const;
  // A model of one f32 input and one output.
  void run(const float* input, size_t batch, float* output, void* arena, double* step_seconds = nullptr) const {
    const void* in[1] = {input};
    float* out[1] = {output};
    run(in, batch, out, arena, step_seconds);
  }
  // The run order at `batch` samples: node steps and the conversions the plan added (PlannedStep::node,
  // ::conversion); the same steps at every batch, but at batch 1 in-place concats are aliases (::alias).
  const std::vector<PlannedStep>& planned_steps(size_t batch) const { return plan_for(batch).steps; }

 private:
  std::vector<std::vector<uint32_t>> shapes_;  // per graph value
  std::vector<ElemType> input_types_;
  std::vector<uint32_t> outputs_;              // value ids
  std::vector<std::unique_ptr<Step>> steps_;   // per node
  std::vector<LayerInfo> layers_;              // per node
  Plan plan_;   // any batch
  Plan plan1_;  // batch 1: concats written in place by their inputs' producers (make_plan's in_place_concat)
  const Plan& plan_for(size_t batch) const { return batch == 1 ? plan1_ : plan_; }
  std::string metadata_;
  uint64_t file_bytes_ = 0;
  uint32_t format_version_ = 0;
  size_t in_place_bytes_ = 0;
  std::shared_ptr<const void> backing_;  // the mapped file, while any weight is used in place
  std::unique_ptr<ThreadPool> pool_;     // null for one thread
};

// Execution state for one thread: an arena for up to max_batch samples, owned or borrowed.
class Session {
 public:
  Session(const Model& model, size_t max_batch, void* arena = nullptr, size_t arena_bytes = 0);
  static constexpr size_t kMaxBatch = size_t(1) << 24;
  // Bytes of caller memory for a session of max_batch samples; 0 if max_batch is not in 1..kMaxBatch.
  static size_t arena_bytes(const Model& model, size_t max_batch) {
    if (max_batch < 1 || max_batch > kMaxBatch) return 0;
    return model.arena_bytes(max_batch) + kAlignment;
  }
  void run(const void* const* inputs, size_t batch, float* const* outputs, double* step_seconds = nullptr);
  void run(const float* input, size_t batch, float* output, double* step_seconds = nullptr) {
    const void* in[1] = {input};
    float* out[1] = {output};
    run(in, batch, out, step_seconds);
  }
  size_t max_batch() const { return max_batch_; }
  const Model& model() const { return model_; }

 private:
  const Model& model_;
  size_t max_batch_;
  AlignedArray<uint8_t> owned_;
  uint8_t* arena_ = nullptr;
};

}  // namespace pyrt::runtime
