// pyruntime: the plan of a model: the order steps run in (the graph's nodes, with a conversion step
// wherever a value's producer and a reader disagree on its type), and where every value lives in the
// arena (per-sample byte offsets: liveness-based first-fit reuse, aliases sharing their input's slot).
// docs/RUNTIME.md describes it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/step.h"

namespace pyrt::runtime {

struct PlannedStep {
  const Step* step = nullptr;
  std::vector<int64_t> in_offsets;  // per input: per-sample byte offset in the arena; -1 - k = graph input k
  int64_t out_offset = -1;
  bool alias = false;               // nothing runs: the output is the input's memory
  // What a profile calls it: the graph node this step runs, or for a conversion the node it converts an
  // input of (def.nodes.size() for a graph output's); `conversion` names it ("i8 -> f32"), else empty.
  uint32_t node = 0;
  std::string conversion;
};

struct Plan {
  std::vector<PlannedStep> steps;                // in run order
  std::vector<std::unique_ptr<Step>> conversions;  // the conversion steps the plan added (owned here)
  std::vector<int64_t> output_offsets;           // of the graph outputs (f32), as in_offsets
  size_t bytes_per_sample = 0;                   // arena peak, a multiple of 64
};

// specs[i] is node i's step with the types it takes and gives; shapes[v] is value v's shape (values
// 0 .. I - 1 the graph inputs, of input_types). The graph outputs are made f32 (a dequantize step at the
// end where needed).
//
// in_place_concat (a plan for batch 1 only): a concat whose inputs are whole, 64-byte aligned pieces of its
// output (nothing before the axis but the batch: SqueezeNet's fire modules, Inception's branches) is
// written in place by its inputs' producers: each input (through any aliases: a fused relu, a reshape) is
// placed at its offset in the concat's slot, allocated when the first of them is produced, and the concat
// becomes an alias. An input that is a graph input, another in-place concat's output, or placed already
// (the same value in two concats) keeps the concat a copy. At batch > 1 the samples of each input would
// interleave in the output, so the plan for any batch (false) copies.
Plan make_plan(const ModelDef& def, const std::vector<std::vector<uint32_t>>& shapes,
               const std::vector<ValueType>& input_types, const std::vector<StepSpec>& specs,
               bool in_place_concat = false);

// A graph input's offset in PlannedStep::in_offsets and Plan::output_offsets, and back.
inline int64_t input_offset(size_t k) { return -1 - int64_t(k); }
inline size_t offset_input(int64_t offset) { return size_t(-1 - offset); }

}  // namespace pyrt::runtime
