#include "runtime/fusion.h"

#include "common/op_schema.h"

namespace pyrt::runtime {

namespace {

// count[v]: how many node inputs read value v (node i's output is value def.node_value(i)), a graph output
// counting as two readers (its value is never clamped or added to in place); node[v]: the last node that
// reads it.
struct Readers {
  std::vector<uint32_t> count, node;
  explicit Readers(const ModelDef& def)
      : count(def.node_value(def.nodes.size()), 0), node(def.node_value(def.nodes.size()), 0) {
    for (size_t j = 0; j < def.nodes.size(); ++j)
      for (uint32_t v : def.nodes[j].inputs) {
        ++count[v];
        node[v] = uint32_t(j);
      }
    for (uint32_t v : def.outputs) count[v] += 2;
  }
};

}  // namespace

std::vector<FusableActivation> fusable_activations(const ModelDef& def) {
  const size_t n = def.nodes.size();
  const Readers rd(def);
  const std::vector<uint32_t>& readers = rd.count;
  const std::vector<uint32_t>& reader = rd.node;
  std::vector<FusableActivation> out(n);
  for (size_t i = 0; i < n; ++i) {
    const Op op = def.nodes[i].op;
    if (op != Op::conv2d && op != Op::linear && op != Op::add) continue;
    const uint32_t v = def.node_value(i);
    if (readers[v] != 1) continue;
    const NodeDef& act = def.nodes[reader[v]];
    if (act.op == Op::relu) {
      out[i] = {true, reader[v], kernels::OutputClamp{0.0f}, "relu"};
    } else if (act.op == Op::clamp) {
      const ClampAttrs c = clamp_attrs(act.attrs);
      out[i] = {true, reader[v], kernels::OutputClamp{c.min, c.max}, "clamp"};
    }
  }
  return out;
}

std::vector<FusableResidual> fusable_residuals(const ModelDef& def, const std::vector<std::vector<uint32_t>>& shapes) {
  const size_t n = def.nodes.size();
  const Readers rd(def);
  std::vector<FusableResidual> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (def.nodes[i].op != Op::conv2d) continue;
    const uint32_t v = def.node_value(i);
    if (rd.count[v] != 1) continue;
    const uint32_t j = rd.node[v];
    const NodeDef& add = def.nodes[j];
    if (add.op != Op::add || add.inputs.size() != 2) continue;
    const uint32_t r = add.inputs[0] == v ? add.inputs[1] : add.inputs[0];
    if (r >= v || shapes[r] != shapes[v]) continue;  // v itself, made after the conv, or a broadcast
    out[i] = {true, j, r};
  }
  return out;
}

}  // namespace pyrt::runtime
