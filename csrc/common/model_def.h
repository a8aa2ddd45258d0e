// pyruntime: the model as a graph description, independent of storage and execution. The writer takes
// one (from the converter), the reader produces one (from a file), and the runtime plans from one.
//
// Values are numbered: 0 is the graph input, i + 1 is the output of node i, and the graph output is
// the last node's output. A node may only read values numbered <= its own index, so every graph is a
// DAG in topological order by construction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/op_schema.h"
#include "common/tensor.h"
#include "pyruntime.h"

namespace pyrt {

struct NodeDef {
  Op op = Op::linear;
  std::vector<uint32_t> inputs;   // value ids
  std::vector<uint32_t> tensors;  // indices into ModelDef::tensors
  std::vector<uint32_t> attrs;    // attribute words, as op_schema(op).attrs lays them out
};

struct ModelDef {
  std::vector<uint32_t> input_shape;  // without batch; rank 1..4
  std::vector<NodeDef> nodes;
  std::vector<DecodedTensor> tensors;
  std::string metadata;               // UTF-8 JSON, optional
};

// Shapes of every value (without batch), after checking the graph: op arity and attributes against
// the op table, value and tensor references, tensor encodings and shapes against the op, and every
// value's size (< 2^31 floats per sample). Throws pyrt::Error(status) naming the node.
std::vector<std::vector<uint32_t>> check_graph(const ModelDef& m, pyrt_status status);

uint64_t shape_numel(const std::vector<uint32_t>& shape);
std::string shape_str(const std::vector<uint32_t>& shape);

// The lowest format version that can hold every op of the graph (what the writer writes).
uint32_t graph_version(const ModelDef& m);

// Output size of a window sweep along one axis: windows of extent `window` (>= 1) every `stride` over
// `in` elements padded by `pad_lo` and `pad_hi`; ceil_mode as torch's pools (a last partial window that
// starts inside the input or the low padding counts). 0 when not even one window fits.
uint32_t sweep_out(uint64_t in, uint64_t pad_lo, uint64_t pad_hi, uint64_t window, uint64_t stride, bool ceil_mode);

}  // namespace pyrt
