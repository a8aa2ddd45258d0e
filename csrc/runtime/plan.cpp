#include "runtime/plan.h"

#include <algorithm>
#include <map>

#include "common/aligned.h"

namespace pyrt::runtime {
namespace {

uint64_t round_slot(uint64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

// First-fit allocator over per-sample byte offsets.
class SlotAllocator {
 public:
  int64_t alloc(uint64_t size) {
    size = round_slot(size);
    int64_t at = 0;
    for (const auto& [off, len] : live_) {
      if (uint64_t(at) + size <= uint64_t(off)) break;
      at = std::max<int64_t>(at, off + int64_t(len));
    }
    live_[at] = size;
    peak_ = std::max<uint64_t>(peak_, uint64_t(at) + size);
    return at;
  }
  void release(int64_t off) { live_.erase(off); }
  uint64_t peak() const { return peak_; }

 private:
  std::map<int64_t, uint64_t> live_;
  uint64_t peak_ = 0;
};

// A step of the run order over value ids (before offsets are known).
struct Item {
  const Step* step;
  std::vector<uint32_t> ins;
  uint32_t out;
  bool alias;
  uint32_t node;           // PlannedStep::node
  std::string conversion;  // PlannedStep::conversion
};

}  // namespace

Plan make_plan(const ModelDef& def, const std::vector<std::vector<uint32_t>>& shapes,
               const std::vector<ValueType>& input_types, const std::vector<StepSpec>& specs,
               bool in_place_concat) {
  Plan plan;
  // Values: the graph inputs, every node's output, every conversion's output.
  std::vector<ValueType> types = input_types;
  std::vector<uint64_t> elements;
  std::vector<uint32_t> node_value;  // graph value id -> plan value id
  for (size_t k = 0; k < input_types.size(); ++k) {
    elements.push_back(shape_numel(shapes[k]));
    node_value.push_back(uint32_t(k));
  }
  std::vector<std::pair<uint32_t, uint32_t>> converted;  // (value, that value converted to another type)
  std::vector<Item> items;
  auto new_value = [&](ValueType t, uint64_t n) {
    types.push_back(t);
    elements.push_back(n);
    return uint32_t(types.size() - 1);
  };
  // Value v in type `want`: v itself, or its conversion (made once, reused by every later reader).
  auto in_type = [&](uint32_t v, ValueType want, uint32_t reader) -> uint32_t {
    if (types[v] == want) return v;
    for (const auto& [from, to] : converted)
      if (from == v && types[to] == want) return to;
    plan.conversions.push_back(make_conversion(types[v], want, elements[v]));
    const uint32_t w = new_value(want, elements[v]);
    items.push_back({plan.conversions.back().get(), {v}, w, false, reader,
                     std::string(dtype_name(types[v].dtype)) + " -> " + dtype_name(want.dtype)});
    converted.emplace_back(v, w);
    return w;
  };
  for (size_t i = 0; i < def.nodes.size(); ++i) {
    const StepSpec& spec = specs[i];
    Item item{spec.step.get(), {}, 0, spec.step->alias(), uint32_t(i), {}};
    for (size_t k = 0; k < def.nodes[i].inputs.size(); ++k)
      item.ins.push_back(in_type(node_value[def.nodes[i].inputs[k]], spec.takes[k], uint32_t(i)));
    item.out = new_value(spec.gives, shape_numel(shapes[def.node_value(i)]));
    node_value.push_back(item.out);
    items.push_back(std::move(item));
  }
  std::vector<uint32_t> outputs;
  for (uint32_t v : def.outputs) outputs.push_back(in_type(node_value[v], ValueType::f32(), uint32_t(def.nodes.size())));

  // Liveness over the run order; the graph outputs stay live to the end.
  const size_t n_values = types.size();
  std::vector<size_t> last_use(n_values, 0);
  for (size_t i = 0; i < items.size(); ++i)
    for (uint32_t v : items[i].ins) last_use[v] = std::max(last_use[v], i);
  for (uint32_t v : outputs) last_use[v] = SIZE_MAX;

  // In-place concats (make_plan's comment): the value each input's bytes start from (through aliases) is
  // placed at a byte offset of the concat's output, and the concat item becomes an alias.
  std::vector<int64_t> placed_in(n_values, -1);  // value -> the in-place concat item whose slot holds it
  std::vector<uint64_t> placed_at(n_values, 0);  // its byte offset there
  std::vector<bool> in_place(items.size(), false);
  if (in_place_concat) {
    std::vector<int64_t> producer(n_values, -1), alias_of(n_values, -1);
    for (size_t i = 0; i < items.size(); ++i) {
      producer[items[i].out] = int64_t(i);
      if (items[i].alias) alias_of[items[i].out] = items[i].ins[0];
    }
    for (size_t i = 0; i < items.size(); ++i) {
      Item& it = items[i];
      if (it.alias || !it.conversion.empty() || it.node >= def.nodes.size() || def.nodes[it.node].op != Op::concat)
        continue;
      const std::vector<uint32_t>& out_shape = shapes[def.node_value(it.node)];
      const uint32_t axis = concat_attrs(def.nodes[it.node].attrs);
      uint64_t outer = 1;
      for (uint32_t d = 0; d < axis && d < out_shape.size(); ++d) outer *= out_shape[d];
      if (outer != 1) continue;
      std::vector<uint32_t> roots;
      std::vector<uint64_t> at;
      uint64_t bytes = 0;
      bool ok = true;
      for (uint32_t v : it.ins) {
        uint32_t r = v;
        while (alias_of[r] >= 0) r = uint32_t(alias_of[r]);
        ok = ok && producer[r] >= 0 && !items[size_t(producer[r])].alias && placed_in[r] < 0 &&
             std::find(roots.begin(), roots.end(), r) == roots.end() && bytes % kAlignment == 0 &&
             value_bytes(types[r], elements[r]) == value_bytes(types[v], elements[v]);
        roots.push_back(r);
        at.push_back(bytes);
        bytes += value_bytes(types[v], elements[v]);
      }
      if (!ok || bytes != value_bytes(types[it.out], elements[it.out])) continue;
      for (size_t k = 0; k < roots.size(); ++k) {
        placed_in[roots[k]] = int64_t(i);
        placed_at[roots[k]] = at[k];
      }
      it.alias = true;
      in_place[i] = true;
    }
  }

  // A slot may back several values (aliases, the inputs of an in-place concat); it is released when its last
  // value dies.
  std::vector<int64_t> offset(n_values, -1), slot(n_values, -1);  // a value's byte offset, and its slot's
  for (size_t k = 0; k < input_types.size(); ++k) offset[k] = slot[k] = input_offset(k);
  std::vector<int64_t> concat_slot(items.size(), -1);  // in-place concat item -> its slot, once allocated
  std::map<int64_t, size_t> slot_last_use;  // slot offset -> last item that reads any value in it
  SlotAllocator slots;
  for (size_t i = 0; i < items.size(); ++i) {
    const Item& it = items[i];
    PlannedStep ps;
    ps.step = it.step;
    ps.alias = it.alias;
    ps.node = it.node;
    ps.conversion = it.conversion;
    for (uint32_t v : it.ins) ps.in_offsets.push_back(offset[v]);
    if (in_place[i]) {  // its inputs were written into its slot
      offset[it.out] = slot[it.out] = concat_slot[i];
    } else if (it.alias) {
      offset[it.out] = offset[it.ins[0]];
      slot[it.out] = slot[it.ins[0]];
    } else if (placed_in[it.out] >= 0) {
      const size_t c = size_t(placed_in[it.out]);
      if (concat_slot[c] < 0) {
        concat_slot[c] = slots.alloc(value_bytes(types[items[c].out], elements[items[c].out]));
        slot_last_use[concat_slot[c]] = c;
      }
      slot[it.out] = concat_slot[c];
      offset[it.out] = concat_slot[c] + int64_t(placed_at[it.out]);
    } else {
      offset[it.out] = slot[it.out] = slots.alloc(value_bytes(types[it.out], elements[it.out]));
      slot_last_use[slot[it.out]] = last_use[it.out];
    }
    if (slot[it.out] >= 0) slot_last_use[slot[it.out]] = std::max(slot_last_use[slot[it.out]], last_use[it.out]);
    ps.out_offset = offset[it.out];
    plan.steps.push_back(std::move(ps));
    // Release slots whose every value is dead after this item (never the one just written).
    for (auto s = slot_last_use.begin(); s != slot_last_use.end();) {
      if (s->second <= i && s->first != slot[it.out]) {
        slots.release(s->first);
        s = slot_last_use.erase(s);
      } else {
        ++s;
      }
    }
  }
  for (uint32_t v : outputs) plan.output_offsets.push_back(offset[v]);
  plan.bytes_per_sample = slots.peak();
  return plan;
}

}  // namespace pyrt::runtime
