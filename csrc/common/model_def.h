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

#include "common/tensor.h"
#include "pyruntime.h"

namespace pyrt {

enum class Op : uint16_t {
  linear = 1,   // inputs: x [features]; tensors: weight [out, in], optional bias [out]
  relu = 2,     // elementwise max(x, 0)
  softmax = 3,  // over all features of a sample
  flatten = 4,  // [d0, d1, ...] -> [d0 * d1 * ...]
};

const char* op_name(Op op);
bool op_from_name(const std::string& name, Op* out);

struct NodeDef {
  Op op = Op::linear;
  std::vector<uint32_t> inputs;   // value ids
  std::vector<uint32_t> tensors;  // indices into ModelDef::tensors
};

struct ModelDef {
  std::vector<uint32_t> input_shape;  // without batch; rank 1..4
  std::vector<NodeDef> nodes;
  std::vector<DecodedTensor> tensors;
  std::string metadata;               // UTF-8 JSON, optional
};

// Shapes of every value (without batch), after checking the graph: op arity, value and tensor
// references, tensor encodings and shapes against the op. Throws pyrt::Error(status) naming the node.
std::vector<std::vector<uint32_t>> check_graph(const ModelDef& m, pyrt_status status);

uint64_t shape_numel(const std::vector<uint32_t>& shape);

}  // namespace pyrt
