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
  std::vector<int64_t> in_offsets;  // per input: per-sample byte offset in the arena; -1 = the graph input
  int64_t out_offset = -1;
  bool alias = false;               // nothing runs: the output is the input's memory
  // What a profile calls it: the graph node this step runs, or for a conversion the node it converts an
  // input of (def.nodes.size() for the graph output's); `conversion` names it ("i8 -> f32"), else empty.
  uint32_t node = 0;
  std::string conversion;
};

struct Plan {
  std::vector<PlannedStep> steps;                // in run order
  std::vector<std::unique_ptr<Step>> conversions;  // the conversion steps the plan added (owned here)
  int64_t output_offset = -1;                    // of the graph output (f32)
  size_t bytes_per_sample = 0;                   // arena peak, a multiple of 64
};

// specs[i] is node i's step with the types it takes and gives; shapes[v] is value v's shape (value 0 the
// graph input, f32). The graph output is made f32 (a dequantize step at the end if needed).
Plan make_plan(const ModelDef& def, const std::vector<std::vector<uint32_t>>& shapes,
               const std::vector<StepSpec>& specs);

}  // namespace pyrt::runtime
