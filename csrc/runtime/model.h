// pyruntime: a loaded model. Built once from a ModelDef: every weight is packed into its execution
// layout, shapes are inferred, and the activation arena is planned (offsets per sample, liveness-based
// first-fit reuse; flatten and reshape are aliases). Immutable afterwards: run() only reads the model and writes
// into the caller's arena, so any number of threads may run one model through their own sessions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/aligned.h"
#include "common/model_def.h"
#include "format/file_buffer.h"
#include "format/model_file.h"
#include "kernels/conv/conv2d.h"
#include "kernels/packed_weight.h"
#include "kernels/ref/ref_kernels.h"
#include "runtime/thread_pool.h"

namespace pyrt::runtime {

struct LayerInfo {
  std::string op, name, encoding;     // name/encoding of the weight, empty for ops without weights
  std::string layout;                 // execution layout (PackedWeight::layout), empty without weights
  std::string method;                 // conv2d: "im2col" or "direct"; linear: "gemm"; else empty
  uint32_t codebook_size = 0;         // centroids of a codebook encoding (k), else 0
  std::vector<uint32_t> shape;        // weight shape; empty for ops without weights
  uint32_t groups = 1;                // conv2d groups
  std::vector<uint32_t> output_shape; // per sample
  uint64_t nnz = 0;                   // weights that are not zero
  uint32_t bits = 0;                  // bits per stored value: index_bits for codebooks, 32 for f32
  uint64_t file_bytes = 0;            // weight + bias tensor payloads in the file
  uint64_t exec_bytes = 0;            // weight + bias in their execution layouts
  uint64_t dense_bytes = 0;           // weight + bias as dense fp32
  bool in_place = false;              // weight read in place from a memory-mapped file (dense only)
  uint32_t row_tasks = 1;             // pieces of rows (linear) or output rows (conv2d) the pool splits
                                      // this layer into at batch 1
};

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

  const std::vector<uint32_t>& input_shape() const { return shapes_.front(); }
  const std::vector<uint32_t>& output_shape() const { return shapes_.back(); }
  size_t input_size() const { return static_cast<size_t>(shape_numel(input_shape())); }
  size_t output_size() const { return static_cast<size_t>(shape_numel(output_shape())); }
  const std::vector<LayerInfo>& layers() const { return layers_; }
  const std::string& metadata() const { return metadata_; }
  uint64_t file_bytes() const { return file_bytes_; }
  uint32_t format_version() const { return format_version_; }
  size_t weight_bytes() const;
  // Operations per sample (pyrt_model_work): multiply-adds of weighted layers, pool window reads, and the
  // elements other ops write.
  uint64_t work_per_sample() const;
  // Bytes of weights and biases used in place from a mapped file (0 unless loaded with Mode::map).
  size_t in_place_bytes() const { return in_place_bytes_; }

  // Threads a run may use, the caller's included (1 = no pool; 0 = one per hardware thread). Layers big
  // enough to pay for it are split across the pool: by rows at batch 1, by samples above. Not to be
  // called while the model runs.
  void set_threads(unsigned threads);
  unsigned threads() const { return pool_ ? pool_->threads() : 1; }

  // Samples a linear layer's kernel call covers (run_linear): results depend on the batch's chunks of this
  // many samples, never on the thread count.
  static constexpr size_t kBatchChunk = 64;

  // Floats of arena needed for `batch` samples (arena must be 64-byte aligned).
  size_t arena_floats(size_t batch) const { return arena_per_sample_ * batch; }
  // input: batch * input_size(), output: batch * output_size(); no allocation.
  void run(const float* input, size_t batch, float* output, float* arena) const;

 private:
  struct Step {
    Op op = Op::flatten;
    std::vector<int64_t> in_offsets;  // per input: per-sample float offset into the arena; -1 = graph input
    std::vector<uint32_t> in_sizes;   // per input: floats per sample
    int64_t out_offset = -1;
    uint32_t out_size = 0;
    std::unique_ptr<kernels::PackedWeight> weight;  // linear
    std::unique_ptr<kernels::Conv2d> conv;          // conv2d
    const float* bias = nullptr;  // bias_owned, or in place in the mapped file
    AlignedArray<float> bias_owned;
    std::vector<uint32_t> splits;  // batch-1 boundaries for the pool: linear rows, conv output rows
    uint64_t work = 0;             // operations per sample: multiply-adds (weighted ops), window reads (pools)
    kernels::ref::Pool2dGeometry pool;  // max / avg / global pools
    ClampAttrs clamp{0.0f, 0.0f};
    uint32_t concat_outer = 1;          // concat: product of the dims before the axis
  };
  void plan(const ModelDef& def);
  void run_step(const Step& s, const float* const* x, size_t batch, float* y) const;
  void run_linear(const Step& s, kernels::Isa isa, const float* x, size_t batch, float* y) const;

  std::vector<std::vector<uint32_t>> shapes_;  // per value
  std::vector<Step> steps_;
  std::vector<LayerInfo> layers_;
  int64_t output_offset_ = -1;
  size_t arena_per_sample_ = 0;
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
    return model.arena_floats(max_batch) * sizeof(float) + kAlignment;
  }
  void run(const float* input, size_t batch, float* output);
  size_t max_batch() const { return max_batch_; }
  const Model& model() const { return model_; }

 private:
  const Model& model_;
  size_t max_batch_;
  AlignedArray<float> owned_;
  float* arena_ = nullptr;
};

}  // namespace pyrt::runtime
