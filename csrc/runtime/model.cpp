#include "runtime/model.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/error.h"

namespace pyrt::runtime {

std::unique_ptr<Model> Model::load_buffer(const uint8_t* data, size_t size) {
  format::FileInfo info;  // dense values are borrowed while decoding and copied once, when packed
  ModelDef def = format::read_model(data, size, &info, /*borrow_dense=*/true);
  return std::make_unique<Model>(std::move(def), info);
}

std::unique_ptr<Model> Model::load_file(const char* path, format::FileBuffer::Mode mode) {
  // The file is read (never mapped) for validation and decoding, so nothing here can fault when another
  // process truncates it meanwhile (file_buffer.h). Dense values are borrowed from that copy while
  // decoding; for Mode::map they are then used in place from a mapping of the same file when dense
  // tensors make up at least half of it. Otherwise (say 100 KB of dense biases in a 10 MB compressed
  // file) copying them costs less than keeping the whole mapping resident.
  std::shared_ptr<const format::FileBuffer> file = format::FileBuffer::open(path, mode);
  format::FileInfo info;
  ModelDef def = format::read_model(file->data(), file->size(), &info, /*borrow_dense=*/true);
  std::shared_ptr<const format::MappedFile> mapping;
  if (file->mappable()) {
    uint64_t borrowable = 0;
    std::vector<bool> seen(def.tensors.size(), false);
    for (const NodeDef& n : def.nodes)
      for (uint32_t t : n.tensors)
        if (!seen[t] && def.tensors[t].borrowed_values) {
          seen[t] = true;
          borrowable += def.tensors[t].numel() * sizeof(float);
        }
    if (borrowable * 2 >= info.file_size) {
      mapping = file->map();
      if (mapping) {
        for (DecodedTensor& t : def.tensors)
          if (t.borrowed_values) {
            const size_t at = reinterpret_cast<const uint8_t*>(t.borrowed_values) - file->data();
            t.mapped_values = reinterpret_cast<const float*>(mapping->data() + at);
          }
      }
    }
  }
  // Borrowed values are read from `file` (alive to the end of this statement) while they are copied.
  return std::make_unique<Model>(std::move(def), info, std::move(mapping));
}

Model::Model(ModelDef def, const format::FileInfo& info, std::shared_ptr<const void> backing)
    : metadata_(std::move(def.metadata)), file_bytes_(info.file_size), format_version_(info.version) {
  shapes_ = check_graph(def, PYRT_BAD_FORMAT).shapes;
  outputs_ = def.outputs;
  std::vector<ValueType> value_types;  // what each graph value's producer gives
  for (const InputDef& in : def.inputs) {
    input_types_.push_back(in.type);
    value_types.push_back(in.type == ElemType::i32 ? ValueType::i32() : ValueType::f32());
  }
  const std::vector<ValueType> input_types = value_types;
  std::vector<StepSpec> specs;
  const std::vector<FusableActivation> fusable = fusable_activations(def);
  const std::vector<FusableResidual> residual = fusable_residuals(def, shapes_);
  std::vector<int64_t> fused_by(def.nodes.size(), -1);  // activation or add node -> the node that applies it
  for (size_t i = 0; i < def.nodes.size(); ++i) {
    const uint32_t out_value = def.node_value(i);
    if (fused_by[i] >= 0 && def.nodes[i].op == Op::add)  // a residual its conv added: an alias of the conv
      def.nodes[i].inputs = {def.node_value(size_t(fused_by[i]))};
    const NodeDef& n = def.nodes[i];
    BuildContext ctx{n, def, info, {}, shapes_[out_value], {}, backing != nullptr};
    for (uint32_t v : n.inputs) {
      ctx.in_shapes.push_back(&shapes_[v]);
      ctx.in_types.push_back(value_types[v]);
    }
    if (fusable[i].fusable) ctx.fuse = &fusable[i];
    if (residual[i].fusable && value_types[residual[i].residual] == ValueType::f32()) {
      ctx.residual = &residual[i];
      if (fusable[residual[i].add].fusable) ctx.residual_fuse = &fusable[residual[i].add];
    }
    StepSpec spec;
    if (fused_by[i] >= 0) {  // its producer clamps (or adds) as it writes: same bytes, nothing to run
      spec.step = make_alias_step(shape_numel(shapes_[out_value]));
      spec.takes = {ctx.in_types[0]};
      spec.gives = ctx.in_types[0];
      spec.layer.method = "fused";
    } else {
      spec = build_step(ctx);
      if (spec.fused) {
        fused_by[fusable[i].into] = int64_t(i);
        spec.layer.activation = fusable[i].name;
      }
      if (spec.fused_residual) {  // the conv reads the residual as its second input
        def.nodes[i].inputs.push_back(residual[i].residual);
        fused_by[residual[i].add] = int64_t(i);
        spec.layer.activation = "add";
        if (ctx.residual_fuse) {
          fused_by[ctx.residual_fuse->into] = int64_t(i);
          spec.layer.activation += "+" + ctx.residual_fuse->name;
        }
      }
    }
    PYRT_CHECK(spec.takes.size() == n.inputs.size(), PYRT_INTERNAL, "node ", i, " (", op_name(n.op),
               "): its step takes ", spec.takes.size(), " inputs, the node has ", n.inputs.size());
    spec.layer.op = op_name(n.op);
    spec.layer.output_shape = shapes_[out_value];
    spec.layer.output_type = dtype_name(spec.gives.dtype);
    value_types.push_back(spec.gives);
    in_place_bytes_ += spec.step->in_place_bytes();
    specs.push_back(std::move(spec));
  }
  plan_ = make_plan(def, shapes_, input_types, specs);
  plan1_ = make_plan(def, shapes_, input_types, specs, /*in_place_concat=*/true);
  for (StepSpec& spec : specs) {
    steps_.push_back(std::move(spec.step));
    layers_.push_back(std::move(spec.layer));
  }
  if (in_place_bytes_ > 0) backing_ = std::move(backing);  // else the mapping is released right here
}

void Model::set_threads(unsigned threads) {
  if (threads == 0) threads = ThreadPool::hardware_threads();
  pool_ = threads > 1 ? std::make_unique<ThreadPool>(threads) : nullptr;
  for (size_t i = 0; i < steps_.size(); ++i) layers_[i].row_tasks = steps_[i]->set_threads(threads);
}

uint64_t Model::work_per_sample() const {
  uint64_t total = 0;
  for (const PlannedStep& s : plan_.steps) total += s.step->work();
  return total;
}

size_t Model::weight_bytes() const {
  size_t total = 0;
  for (const auto& l : layers_) total += l.exec_bytes;
  return total;
}

void Model::run(const void* const* inputs, size_t batch, float* const* outputs, void* arena,
                double* step_seconds) const {
  uint8_t* base = static_cast<uint8_t*>(arena);
  auto at = [&](int64_t offset) -> void* {
    return offset < 0 ? const_cast<void*>(inputs[offset_input(offset)]) : static_cast<void*>(base + offset * batch);
  };
  const RunContext ctx{kernels::active_isa(), pool_.get()};
  const Plan& plan = plan_for(batch);
  const void* xs[16];  // inputs of one step (the format allows at most 16)
  // When the last step computes the only graph output (f32), it writes it straight into the caller's buffer
  // (no step reads it afterwards); otherwise each output is copied at the end.
  const PlannedStep* direct = nullptr;
  if (outputs_.size() == 1 && !plan.steps.empty() && !plan.steps.back().alias &&
      plan.output_offsets[0] >= 0 && plan.steps.back().out_offset == plan.output_offsets[0])
    direct = &plan.steps.back();
  using Clock = std::chrono::steady_clock;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const PlannedStep& s = plan.steps[i];
    if (s.alias) continue;
    for (size_t k = 0; k < s.in_offsets.size(); ++k) xs[k] = at(s.in_offsets[k]);
    const Clock::time_point t0 = step_seconds ? Clock::now() : Clock::time_point{};
    s.step->run(ctx, xs, batch, &s == direct ? static_cast<void*>(outputs[0]) : at(s.out_offset));
    if (step_seconds) step_seconds[i] += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  if (direct) return;
  for (size_t k = 0; k < outputs_.size(); ++k)
    std::memcpy(outputs[k], at(plan.output_offsets[k]), batch * output_size(k) * sizeof(float));
}

Session::Session(const Model& model, size_t max_batch, void* arena, size_t arena_bytes_given)
    : model_(model), max_batch_(max_batch) {
  PYRT_CHECK(max_batch >= 1 && max_batch <= kMaxBatch, PYRT_INVALID_ARGUMENT, "max_batch ", max_batch, " not in 1..",
             kMaxBatch);
  const size_t need = model.arena_bytes(max_batch);
  if (arena == nullptr) {
    owned_.resize(need, 0);
    arena_ = owned_.data();
  } else {
    const uintptr_t p = reinterpret_cast<uintptr_t>(arena);
    const uintptr_t aligned = (p + kAlignment - 1) / kAlignment * kAlignment;
    PYRT_CHECK(aligned - p + need <= arena_bytes_given, PYRT_INVALID_ARGUMENT, "arena of ",
               arena_bytes_given, " bytes is too small: ", arena_bytes(model, max_batch), " needed for batch ",
               max_batch);
    arena_ = reinterpret_cast<uint8_t*>(aligned);
  }
}

void Session::run(const void* const* inputs, size_t batch, float* const* outputs, double* step_seconds) {
  PYRT_CHECK(inputs != nullptr && outputs != nullptr, PYRT_INVALID_ARGUMENT, "inputs or outputs is null");
  for (size_t k = 0; k < model_.input_count(); ++k)
    PYRT_CHECK(inputs[k] != nullptr, PYRT_INVALID_ARGUMENT, "input ", k, " is null");
  for (size_t k = 0; k < model_.output_count(); ++k)
    PYRT_CHECK(outputs[k] != nullptr, PYRT_INVALID_ARGUMENT, "output ", k, " is null");
  PYRT_CHECK(batch >= 1 && batch <= max_batch_, PYRT_INVALID_ARGUMENT, "batch ", batch, " not in 1..", max_batch_,
             " (the session's max_batch)");
  model_.run(inputs, batch, outputs, arena_, step_seconds);
}

}  // namespace pyrt::runtime
