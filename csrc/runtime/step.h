// pyruntime: one op of a plan (a Step), what building one needs (BuildContext), and the registry that maps
// every graph op to its family's build function (one file per family in runtime/ops/). docs/RUNTIME.md
// describes the design: typed values, conversions where neighbours disagree, the arena in bytes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/model_def.h"
#include "format/model_file.h"
#include "kernels/isa.h"
#include "runtime/fusion.h"
#include "runtime/thread_pool.h"
#include "runtime/value_type.h"

namespace pyrt::runtime {

// What Model::layers() says of one graph node.
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
  uint64_t steps = 0;                 // csr+int8: the i8_p128(m) layout's steps, padding included (the cost
                                      // model prices them; their bytes depend on the form the CPU stores)
  bool in_place = false;              // weight read in place from a memory-mapped file (dense only)
  uint32_t row_tasks = 1;             // pieces of rows (linear) or output rows (conv2d) the pool splits
                                      // this layer into at batch 1
  std::string output_type = "f32";    // dtype of the node's output value ("f32", "i8", "b1")
  std::string activation;             // "relu" / "clamp" applied as the output is written (fusion.h), or
                                      // "add", "add+relu", "add+clamp" (a residual add, fused into a conv);
                                      // a node fused that way has method "fused"
};

struct RunContext {
  kernels::Isa isa;
  ThreadPool* pool = nullptr;  // null: the calling thread only
};

// Memory-bound steps (pools, concat, elementwise) split their items over the pool when they move at least
// two tasks of this many bytes: a task then takes several microseconds, well above the pool's hand-off.
constexpr size_t kMinBytesPerTask = 128 * 1024;

// Runs fn(lo, hi) over pieces of [0, n) items of bytes_per_item bytes each: on the pool's threads when the
// step moves enough bytes (kMinBytesPerTask), else on the caller. Piece bounds are multiples of `align`
// (but the last). For steps whose every output item depends only on its own inputs, so any split is
// bit-identical to one piece.
template <class F>
void split_items(const RunContext& ctx, size_t n, size_t bytes_per_item, F&& fn, size_t align = 1) {
  const size_t bytes = n * bytes_per_item;
  const unsigned threads = ctx.pool ? ctx.pool->threads() : 1;
  const size_t parts =
      threads > 1 && bytes >= 2 * kMinBytesPerTask ? std::min<size_t>(threads, bytes / kMinBytesPerTask) : 1;
  if (parts <= 1) return fn(size_t(0), n);
  const size_t units = (n + align - 1) / align;
  ctx.pool->run(unsigned(parts), [&](unsigned i) {
    const size_t lo = std::min(n, units * i / parts * align), hi = std::min(n, units * (i + 1) / parts * align);
    if (lo < hi) fn(lo, hi);
  });
}

// One op of a plan, immutable after set_threads: run() may be called from many threads at once.
class Step {
 public:
  virtual ~Step() = default;
  // in[k]: `batch` samples of input k, in the type the step takes; out: `batch` samples of its output.
  // Allocates nothing (a per-thread kernel scratch grows on a thread's first call only).
  virtual void run(const RunContext& ctx, const void* const* in, size_t batch, void* out) const = 0;
  // An alias (flatten, reshape): its output is its input's memory, and run() is never called.
  virtual bool alias() const { return false; }
  // Operations per sample (pyrt_model_work): multiply-adds of weighted ops (stored weights times output
  // positions; im2col convs add the patch elements they write, int8 depthwise ones their padded planes),
  // window reads of pools, elements written by the others.
  virtual uint64_t work() const = 0;
  // Prepares the split for a pool of `threads` (the caller's included; 1 = none). Every output must stay
  // bit-identical to one thread's. Returns the pieces a batch-1 run is split into (LayerInfo::row_tasks).
  virtual uint32_t set_threads(unsigned threads) { return 1; }
  // Bytes of weights and biases read in place from a mapped file.
  virtual size_t in_place_bytes() const { return 0; }
};

// What a build function gets for one node.
struct BuildContext {
  const NodeDef& node;
  const ModelDef& def;
  const format::FileInfo& info;
  std::vector<const std::vector<uint32_t>*> in_shapes;  // per input, without batch
  const std::vector<uint32_t>& out_shape;
  std::vector<ValueType> in_types;  // per input: the type its producer gives
  bool in_place;                    // dense tensors with mapped_values may be used in place
  const FusableActivation* fuse = nullptr;  // an activation this node may apply to its output (fusion.h)
  // conv2d: a residual add this node may apply (fusion.h; its f32 input would be the step's second), and
  // the add's own fused activation (null: none)
  const FusableResidual* residual = nullptr;
  const FusableActivation* residual_fuse = nullptr;

  const DecodedTensor& tensor(size_t k) const { return def.tensors[node.tensors[k]]; }
  uint64_t tensor_file_bytes(size_t k) const {
    const uint32_t t = node.tensors[k];
    return t < info.tensor_bytes.size() ? info.tensor_bytes[t] : 0;
  }
};

struct StepSpec {
  std::unique_ptr<Step> step;
  std::vector<ValueType> takes;  // per input: the type run() needs (the plan converts where it differs)
  ValueType gives;               // the type of the output
  LayerInfo layer;               // op, output_shape and output_type are filled by the model
  bool fused = false;            // the step applies ctx.fuse: the activation node becomes an alias
  bool fused_residual = false;   // the step applies ctx.residual (and ctx.residual_fuse), taking it as a
                                 // second f32 input: the add node (and its activation) become aliases
};

// Builds the step of ctx.node through its op family (the registry, step.cpp).
StepSpec build_step(const BuildContext& ctx);

// A step whose output is its input's memory (flatten, reshape, a fused activation: ops/shape.cpp); `work`
// is what work() reports (a fused activation's elements).
std::unique_ptr<Step> make_alias_step(uint64_t work = 0);

// The conversion step from one value type to another over `elements` per sample (ops/quantize.cpp).
std::unique_ptr<Step> make_conversion(ValueType from, ValueType to, uint64_t elements);

// ---- the op families (runtime/ops/) ----
StepSpec build_linear(const BuildContext& ctx);       // ops/linear.cpp (int8 weights: ops/linear_int8.cpp)
StepSpec build_linear_int8(const BuildContext& ctx);  // ops/linear_int8.cpp: linear with int8 weights (dynamic)
StepSpec build_qlinear(const BuildContext& ctx);      // ops/linear_int8.cpp: qlinear (static)
StepSpec build_conv2d(const BuildContext& ctx);       // ops/conv.cpp (int8 weights: ops/conv_int8.cpp)
// ops/conv.cpp: the node's conv2d geometry and bias over another f32 weight (bconv2d with real activations)
StepSpec build_conv2d_with(const BuildContext& ctx, const DecodedTensor& weight);
StepSpec build_conv2d_int8(const BuildContext& ctx);  // ops/conv_int8.cpp: conv2d with int8 weights (dynamic)
StepSpec build_qconv2d(const BuildContext& ctx);      // ops/conv_int8.cpp: qconv2d (static)
StepSpec build_pool(const BuildContext& ctx);         // ops/pool.cpp: max_pool2d, avg_pool2d, global_avg_pool
StepSpec build_elementwise(const BuildContext& ctx);  // ops/elementwise.cpp: relu, clamp, softmax, add
StepSpec build_shape(const BuildContext& ctx);        // ops/shape.cpp: flatten, reshape, concat
StepSpec build_sign(const BuildContext& ctx);         // ops/binary.cpp: sign (gives b1)
StepSpec build_blinear(const BuildContext& ctx);      // ops/binary.cpp: blinear (XNOR-popcount or add/subtract)
StepSpec build_bconv2d(const BuildContext& ctx);      // ops/binary_conv.cpp: bconv2d
// format version 5 (transformers):
StepSpec build_activation(const BuildContext& ctx);   // ops/activation.cpp: gelu, silu, sigmoid, tanh, leaky_relu
StepSpec build_normalize(const BuildContext& ctx);    // ops/normalize.cpp: layer_norm, softmax_axis
// ops/arithmetic.cpp: add (broadcast or a tensor operand; a plain add of two equal shapes is build_elementwise's),
// sub, mul, div
StepSpec build_arithmetic(const BuildContext& ctx);
StepSpec build_matmul(const BuildContext& ctx);       // ops/matmul.cpp: matmul of two values
StepSpec build_layout(const BuildContext& ctx);       // ops/layout.cpp: transpose, slice (f32 or i32)
StepSpec build_embedding(const BuildContext& ctx);    // ops/embedding.cpp: embedding (i32 ids)
StepSpec build_resample(const BuildContext& ctx);     // ops/resample.cpp: upsample_nearest, adaptive_avg_pool2d

}  // namespace pyrt::runtime
