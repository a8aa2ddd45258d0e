// pyruntime: activations fused into the layer before them. A relu or clamp node whose input is the output
// of a conv2d, linear or add node read by nothing else (and not the graph output) is applied by that node
// as it writes its output (kernels::OutputClamp); the relu / clamp node itself becomes an alias. The results are
// bit-identical to the separate op: the clamp is the same comparison, made once per output.
#pragma once

#include <string>
#include <vector>

#include "common/model_def.h"
#include "kernels/output_clamp.h"

namespace pyrt::runtime {

struct FusableActivation {
  bool fusable = false;         // this node's output may be clamped in place of node `into`
  uint32_t into = 0;            // the relu / clamp node that reads it
  kernels::OutputClamp clamp;   // that node's clamp
  std::string name;             // "relu" or "clamp"
};

// Per node of def: the activation it may fuse. Only conv2d, linear and add nodes are candidates; their
// build functions decide whether they take it (StepSpec::fused: f32 layers and adds do).
std::vector<FusableActivation> fusable_activations(const ModelDef& def);

}  // namespace pyrt::runtime
