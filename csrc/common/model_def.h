// pyruntime: the model as a graph description, independent of storage and execution. The writer takes
// one (from the converter), the reader produces one (from a file), and the runtime plans from one.
//
// Values are numbered: 0 .. I - 1 are the I graph inputs, I + i is the output of node i, and the graph
// outputs are listed by value id (a file of version 1 to 4 has one f32 input and its output is the last
// node's). A node may only read values numbered below its own output's, so every graph is a DAG in
// topological order by construction.
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

// The element type of a value: f32, or i32 (token ids: a graph input of format version 5, and shape ops
// of one).
enum class ElemType : uint32_t { f32 = 0, i32 = 1 };
const char* elem_type_name(ElemType t);

struct InputDef {
  std::vector<uint32_t> shape;  // without batch; rank 1..4
  ElemType type = ElemType::f32;
};

constexpr size_t kMaxGraphInputs = 16, kMaxGraphOutputs = 16;

struct ModelDef {
  std::vector<InputDef> inputs;   // 1..16
  std::vector<uint32_t> outputs;  // value ids, 1..16
  std::vector<NodeDef> nodes;
  std::vector<DecodedTensor> tensors;
  std::string metadata;               // UTF-8 JSON, optional

  uint32_t node_value(size_t node) const { return static_cast<uint32_t>(inputs.size() + node); }
  // A model of one f32 input whose output is its last node's (what versions 1 to 4 can hold).
  bool single_io() const;
};

// What check_graph finds: the shape (without batch) and element type of every value.
struct GraphValues {
  std::vector<std::vector<uint32_t>> shapes;
  std::vector<ElemType> types;
};

// Shapes and types of every value, after checking the graph: inputs and outputs, op arity and attributes
// against the op table, value and tensor references, tensor encodings and shapes against the op, and
// every value's size (< 2^31 elements per sample). Throws pyrt::Error(status) naming the node.
GraphValues check_graph(const ModelDef& m, pyrt_status status);

uint64_t shape_numel(const std::vector<uint32_t>& shape);
std::string shape_str(const std::vector<uint32_t>& shape);

// The lowest format version that can hold every op of the graph, its tensors' encodings and its inputs
// and outputs (what the writer writes; a reader refuses a file that says less). `values`: check_graph's.
uint32_t graph_version(const ModelDef& m, const GraphValues& values);

// Output size of a window sweep along one axis: windows of extent `window` (>= 1) every `stride` over
// `in` elements padded by `pad_lo` and `pad_hi`; ceil_mode as torch's pools (a last partial window that
// starts inside the input or the low padding counts). 0 when not even one window fits.
uint32_t sweep_out(uint64_t in, uint64_t pad_lo, uint64_t pad_hi, uint64_t window, uint64_t stride, bool ceil_mode);

}  // namespace pyrt
