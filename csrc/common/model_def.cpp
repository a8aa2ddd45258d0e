#include "common/model_def.h"

#include "common/error.h"

namespace pyrt {

const char* op_name(Op op) {
  switch (op) {
    case Op::linear: return "linear";
    case Op::relu: return "relu";
    case Op::softmax: return "softmax";
    case Op::flatten: return "flatten";
  }
  return "unknown";
}

bool op_from_name(const std::string& name, Op* out) {
  for (Op op : {Op::linear, Op::relu, Op::softmax, Op::flatten}) {
    if (name == op_name(op)) {
      *out = op;
      return true;
    }
  }
  return false;
}

uint64_t shape_numel(const std::vector<uint32_t>& shape) {
  uint64_t n = 1;
  for (uint32_t d : shape) n *= d;
  return n;
}

static std::string shape_str(const std::vector<uint32_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<std::vector<uint32_t>> check_graph(const ModelDef& m, pyrt_status st) {
  PYRT_CHECK(!m.input_shape.empty() && m.input_shape.size() <= 4, st, "graph: input rank ", m.input_shape.size(),
             " not in 1..4");
  for (uint32_t d : m.input_shape) PYRT_CHECK(d > 0, st, "graph: input shape ", shape_str(m.input_shape), " has a zero");
  PYRT_CHECK(shape_numel(m.input_shape) <= (1ull << 31), st, "graph: input too large");
  PYRT_CHECK(!m.nodes.empty(), st, "graph: no nodes");
  std::vector<std::vector<uint32_t>> shapes{m.input_shape};
  std::vector<bool> used(m.tensors.size(), false);
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    const NodeDef& n = m.nodes[i];
    const std::string who = "node " + std::to_string(i) + " (" + op_name(n.op) + ")";
    PYRT_CHECK(n.inputs.size() == 1, st, who, ": expects 1 input, has ", n.inputs.size());
    PYRT_CHECK(n.inputs[0] <= i, st, who, ": reads value ", n.inputs[0], ", which is not defined before it");
    for (uint32_t t : n.tensors)
      PYRT_CHECK(t < m.tensors.size(), st, who, ": references tensor ", t, " but the file has ", m.tensors.size());
    const std::vector<uint32_t>& in = shapes[n.inputs[0]];
    std::vector<uint32_t> out;
    switch (n.op) {
      case Op::linear: {
        PYRT_CHECK(n.tensors.size() == 1 || n.tensors.size() == 2, st, who, ": expects weight and optional bias, has ",
                   n.tensors.size(), " tensors");
        const DecodedTensor& w = m.tensors[n.tensors[0]];
        PYRT_CHECK(w.shape.size() == 2, st, who, ": weight '", w.name, "' has rank ", w.shape.size(), ", expected 2");
        PYRT_CHECK(in.size() == 1, st, who, ": input shape ", shape_str(in), " is not flat (add a flatten)");
        PYRT_CHECK(w.shape[1] == in[0], st, who, ": weight '", w.name, "' ", shape_str(w.shape), " expects ", w.shape[1],
                   " input features, the input has ", in[0]);
        if (n.tensors.size() == 2) {
          const DecodedTensor& b = m.tensors[n.tensors[1]];
          PYRT_CHECK(b.encoding == Encoding::dense_f32, st, who, ": bias '", b.name, "' must be dense, is ",
                     encoding_name(b.encoding));
          PYRT_CHECK(b.shape.size() == 1 && b.shape[0] == w.shape[0], st, who, ": bias '", b.name, "' ",
                     shape_str(b.shape), " does not match ", w.shape[0], " outputs");
          used[n.tensors[1]] = true;
        }
        used[n.tensors[0]] = true;
        out = {w.shape[0]};
        break;
      }
      case Op::relu:
      case Op::softmax:
        PYRT_CHECK(n.tensors.empty(), st, who, ": takes no tensors, has ", n.tensors.size());
        out = in;
        break;
      case Op::flatten:
        PYRT_CHECK(n.tensors.empty(), st, who, ": takes no tensors, has ", n.tensors.size());
        out = {static_cast<uint32_t>(shape_numel(in))};
        break;
      default:
        fail(st, who, ": unknown op ", static_cast<int>(n.op));
    }
    shapes.push_back(out);
  }
  return shapes;
}

}  // namespace pyrt
