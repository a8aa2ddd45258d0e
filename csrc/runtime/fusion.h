// pyruntime: activations and residual adds fused into the layer before them. A relu or clamp node whose
// input is the output of a conv2d, linear or add node read by nothing else (and not the graph output) is
// applied by that node as it writes its output (kernels::OutputClamp); the relu / clamp node itself becomes
// an alias. The results are bit-identical to the separate op: the clamp is the same comparison, made once
// per output. Residual adds: FusableResidual below.
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

// Residual connections fused into the conv before them: a conv2d node whose output is read by one add node
// only (and is not a graph output), whose other input has the conv's output shape and is made before the
// conv (a graph input or an earlier node's output: it is ready when the conv runs). The conv adds it as it
// writes each output, then applies the add's own fused activation (if any); the add node (and that
// activation node) become aliases. The results are the bits of the separate add: the same one rounding of
// the same two floats (a + b = b + a), then the same clamp; only where both floats are NaN may another NaN
// payload survive (as between a + b and b + a). The conv's build function decides whether it
// takes it (StepSpec::fused_residual: the f32 direct method does, kernels::Conv2d::adds_residual).
struct FusableResidual {
  bool fusable = false;
  uint32_t add = 0;       // the add node
  uint32_t residual = 0;  // the add's other input (a value)
};
std::vector<FusableResidual> fusable_residuals(const ModelDef& def, const std::vector<std::vector<uint32_t>>& shapes);

}  // namespace pyrt::runtime
