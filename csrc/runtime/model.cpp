#include "runtime/model.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "common/error.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref_kernels.h"

namespace pyrt::runtime {
namespace {

constexpr uint32_t kSlotAlign = 16;  // floats: keeps every activation 64-byte aligned

// A layer is split across threads when one pass streams at least this many weight bytes per task: waking
// the pool costs a few microseconds, about what a core needs to stream this much.
constexpr size_t kMinBytesPerTask = 64 * 1024;
// A conv (whose weights are reused at every output position) is split when a task gets at least this
// many multiply-adds: about 20 us of work, several times the cost of waking the pool.
constexpr uint64_t kMinMacsPerTask = 256 * 1024;

uint32_t round_slot(uint64_t n) { return static_cast<uint32_t>((n + kSlotAlign - 1) / kSlotAlign * kSlotAlign); }

// First-fit allocator over per-sample offsets.
class SlotAllocator {
 public:
  int64_t alloc(uint32_t size) {
    size = round_slot(size);
    int64_t at = 0;
    for (const auto& [off, len] : live_) {
      if (at + size <= off) break;
      at = std::max<int64_t>(at, off + len);
    }
    live_[at] = size;
    peak_ = std::max<uint64_t>(peak_, at + size);
    return at;
  }
  void release(int64_t off) { live_.erase(off); }
  uint64_t peak() const { return peak_; }

 private:
  std::map<int64_t, uint32_t> live_;
  uint64_t peak_ = 0;
};

}  // namespace

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
  shapes_ = check_graph(def, PYRT_BAD_FORMAT);
  const bool in_place = backing != nullptr;
  for (size_t i = 0; i < def.nodes.size(); ++i) {
    const NodeDef& n = def.nodes[i];
    LayerInfo li;
    li.op = op_name(n.op);
    li.output_shape = shapes_[i + 1];
    const std::vector<uint32_t>& in_shape = shapes_[n.inputs[0]];
    const std::vector<uint32_t>& out_shape = shapes_[i + 1];
    Step s;
    s.op = n.op;
    if (n.op == Op::linear || n.op == Op::conv2d) {
      const DecodedTensor& w = def.tensors[n.tensors[0]];
      if (n.op == Op::linear) {
        s.weight = kernels::pack(w, in_place);
        li.layout = s.weight->layout();
        li.method = "gemm";
        li.exec_bytes = s.weight->bytes();
        li.in_place = s.weight->in_place();
        s.work = w.nnz();  // stored entries: what the kernel visits
      } else {
        const Conv2dAttrs a = conv2d_attrs(n.attrs);
        kernels::Conv2dGeometry g;
        g.in_c = in_shape[0], g.in_h = in_shape[1], g.in_w = in_shape[2];
        g.out_c = out_shape[0], g.out_h = out_shape[1], g.out_w = out_shape[2];
        g.kh = w.shape[2], g.kw = w.shape[3];
        g.stride_h = a.stride_h, g.stride_w = a.stride_w, g.pad_top = a.pad_top, g.pad_left = a.pad_left;
        g.dilation_h = a.dilation_h, g.dilation_w = a.dilation_w, g.groups = a.groups;
        s.conv = kernels::Conv2d::create(g, w, in_place);
        li.layout = s.conv->layout();
        li.method = s.conv->method();
        li.groups = g.groups;
        li.exec_bytes = s.conv->bytes();
        li.in_place = s.conv->in_place();
        s.work = w.nnz() * uint64_t(g.out_h) * g.out_w;
      }
      li.name = w.name;
      li.encoding = encoding_name(w.encoding);
      li.shape = w.shape;
      li.nnz = w.count_nonzero();
      li.bits = has_codebook(w.encoding) ? w.index_bits : 32;
      li.codebook_size = has_codebook(w.encoding) ? uint32_t(w.centroids.size()) : 0;
      li.file_bytes = n.tensors[0] < info.tensor_bytes.size() ? info.tensor_bytes[n.tensors[0]] : 0;
      li.dense_bytes = w.numel() * sizeof(float);
      if (li.in_place) in_place_bytes_ += li.exec_bytes;
      if (n.tensors.size() == 2) {
        const DecodedTensor& b = def.tensors[n.tensors[1]];
        const size_t nb = b.value_count();
        if (b.mapped_values && in_place) {  // 4-byte aligned in the file: no kernel needs more for a bias
          s.bias = b.mapped_values;
          in_place_bytes_ += nb * sizeof(float);
        } else {
          s.bias_owned.resize(nb);
          if (nb) std::memcpy(s.bias_owned.data(), b.value_data(), nb * sizeof(float));
          s.bias = s.bias_owned.data();
        }
        li.file_bytes += n.tensors[1] < info.tensor_bytes.size() ? info.tensor_bytes[n.tensors[1]] : 0;
        li.exec_bytes += nb * sizeof(float);
        li.dense_bytes += nb * sizeof(float);
      }
    } else if (n.op == Op::max_pool2d || n.op == Op::avg_pool2d || n.op == Op::global_avg_pool) {
      kernels::ref::Pool2dGeometry& g = s.pool;
      g.channels = in_shape[0], g.in_h = in_shape[1], g.in_w = in_shape[2];
      g.out_h = out_shape[1], g.out_w = out_shape[2];
      if (n.op != Op::global_avg_pool) {
        const Pool2dAttrs a = pool2d_attrs(n.op, n.attrs);
        g.kernel_h = a.kernel_h, g.kernel_w = a.kernel_w, g.stride_h = a.stride_h, g.stride_w = a.stride_w;
        g.pad_top = a.pad_top, g.pad_left = a.pad_left, g.pad_bottom = a.pad_bottom, g.pad_right = a.pad_right;
        g.count_include_pad = a.count_include_pad != 0;
      }
    } else if (n.op == Op::clamp) {
      s.clamp = clamp_attrs(n.attrs);
    } else if (n.op == Op::concat) {
      const uint32_t axis = concat_attrs(n.attrs);
      for (uint32_t d = 0; d < axis; ++d) s.concat_outer *= out_shape[d];
    }
    if (!s.weight && !s.conv) {  // what the op reads or writes per sample (aliases: nothing)
      const uint64_t out = shape_numel(out_shape);
      if (n.op == Op::max_pool2d || n.op == Op::avg_pool2d)
        s.work = out * s.pool.kernel_h * s.pool.kernel_w;
      else if (n.op == Op::global_avg_pool)
        s.work = shape_numel(in_shape);
      else if (n.op != Op::flatten && n.op != Op::reshape)
        s.work = out;
    }
    steps_.push_back(std::move(s));
    layers_.push_back(std::move(li));
  }
  plan(def);
  if (in_place_bytes_ > 0) backing_ = std::move(backing);  // else the mapping is released right here
}

void Model::plan(const ModelDef& def) {
  const size_t n_values = def.nodes.size() + 1;
  std::vector<size_t> last_use(n_values, 0);
  for (size_t i = 0; i < def.nodes.size(); ++i)
    for (uint32_t v : def.nodes[i].inputs) last_use[v] = std::max(last_use[v], i);
  last_use[n_values - 1] = SIZE_MAX;  // the graph output stays live

  // A buffer may back several values (flatten / reshape aliases); it is released when its last value dies.
  std::vector<int64_t> value_offset(n_values, -1);
  std::map<int64_t, size_t> buffer_last_use;  // offset -> last node that reads any alias
  SlotAllocator slots;
  for (size_t i = 0; i < def.nodes.size(); ++i) {
    Step& s = steps_[i];
    const size_t out = i + 1;
    for (uint32_t in : def.nodes[i].inputs) {
      s.in_offsets.push_back(value_offset[in]);
      s.in_sizes.push_back(static_cast<uint32_t>(shape_numel(shapes_[in])));
    }
    s.out_size = static_cast<uint32_t>(shape_numel(shapes_[out]));
    if (s.op == Op::flatten || s.op == Op::reshape) {
      const int64_t in = value_offset[def.nodes[i].inputs[0]];
      value_offset[out] = in;
      if (in >= 0) buffer_last_use[in] = std::max(buffer_last_use[in], last_use[out]);
    } else {
      value_offset[out] = slots.alloc(s.out_size);
      buffer_last_use[value_offset[out]] = last_use[out];
    }
    s.out_offset = value_offset[out];
    // Release buffers whose every alias is dead after this node (never the one just written).
    for (auto it = buffer_last_use.begin(); it != buffer_last_use.end();) {
      if (it->second <= i && it->first != value_offset[out]) {
        slots.release(it->first);
        it = buffer_last_use.erase(it);
      } else {
        ++it;
      }
    }
  }
  output_offset_ = value_offset[n_values - 1];
  arena_per_sample_ = slots.peak();
}

void Model::set_threads(unsigned threads) {
  if (threads == 0) threads = ThreadPool::hardware_threads();
  pool_ = threads > 1 ? std::make_unique<ThreadPool>(threads) : nullptr;
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& s = steps_[i];
    s.splits.clear();
    layers_[i].row_tasks = 1;
    if (!pool_) continue;
    if (s.weight) {
      const unsigned parts = static_cast<unsigned>(std::min<size_t>(threads, s.weight->bytes() / kMinBytesPerTask));
      if (parts >= 2) s.splits = s.weight->row_splits(parts);
    } else if (s.conv) {  // output rows, evenly: every row of a conv costs the same
      const uint32_t rows = s.conv->geometry().out_h;
      const unsigned parts = static_cast<unsigned>(std::min<uint64_t>({threads, rows, s.work / kMinMacsPerTask}));
      for (unsigned k = 0; parts >= 2 && k <= parts; ++k) s.splits.push_back(uint32_t(uint64_t(rows) * k / parts));
    }
    if (s.splits.size() < 3) s.splits.clear();  // one piece: not worth the pool
    if (!s.splits.empty()) layers_[i].row_tasks = static_cast<uint32_t>(s.splits.size() - 1);
  }
}

uint64_t Model::work_per_sample() const {
  uint64_t total = 0;
  for (const Step& s : steps_) total += s.work;
  return total;
}

size_t Model::weight_bytes() const {
  size_t total = 0;
  for (const auto& l : layers_) total += l.exec_bytes;
  return total;
}

void Model::run(const float* input, size_t batch, float* output, float* arena) const {
  auto at = [&](int64_t offset) -> float* { return offset < 0 ? const_cast<float*>(input) : arena + offset * batch; };
  const float* xs[16];  // inputs of one step (the format allows at most 16)
  for (const Step& s : steps_) {
    for (size_t k = 0; k < s.in_offsets.size(); ++k) xs[k] = at(s.in_offsets[k]);
    run_step(s, xs, batch, at(s.out_offset));
  }
  std::memcpy(output, at(output_offset_), batch * output_size() * sizeof(float));
}

// A linear layer's batch is computed in chunks of kBatchChunk samples, one kernel call per chunk, whatever
// the thread count: the kernels pick their method (and so their order of additions) by batch size, so a
// sample's outputs depend on its chunk only, and the threads take whole chunks. A single chunk is split
// by output rows instead (gemm_rows: the same kernel on a view of the rows, bit-identical), each thread
// gathering its rows for every sample in a scratch block and copying them into place.
void Model::run_linear(const Step& s, kernels::Isa isa, const float* x, size_t batch, float* y) const {
  const kernels::PackedWeight& w = *s.weight;
  const size_t rows = s.out_size, cols = s.in_sizes[0];
  const size_t chunks = (batch + kBatchChunk - 1) / kBatchChunk;
  auto chunk = [&](size_t c) {
    const size_t b0 = c * kBatchChunk, n = std::min(batch - b0, kBatchChunk);
    w.gemm(isa, x + b0 * cols, n, y + b0 * rows, s.bias);
  };
  if (pool_ && chunks == 1 && !s.splits.empty()) {
    pool_->run(static_cast<unsigned>(s.splits.size() - 1), [&](unsigned i) {
      const uint32_t r0 = s.splits[i], r1 = s.splits[i + 1], n = r1 - r0;
      if (batch == 1) return w.gemm_rows(isa, x, 1, y + r0, s.bias, r0, r1);
      float* block = kernels::thread_scratch(batch * n, kernels::Scratch::kRows);
      w.gemm_rows(isa, x, batch, block, s.bias, r0, r1);
      for (size_t b = 0; b < batch; ++b) std::memcpy(y + b * rows + r0, block + b * n, n * sizeof(float));
    });
  } else if (pool_ && chunks >= 2 && w.bytes() * batch >= 2 * kMinBytesPerTask) {
    pool_->run(static_cast<unsigned>(chunks), [&](unsigned c) { chunk(c); });
  } else {
    for (size_t c = 0; c < chunks; ++c) chunk(c);
  }
}

void Model::run_step(const Step& s, const float* const* xs, size_t batch, float* y) const {
  const kernels::Isa isa = kernels::active_isa();
  const float* x = xs[0];
  // Weighted ops split across the pool when the layer is big enough to pay for waking it, so that every
  // output is bit-identical to one thread's: linear layers as run_linear says; convolutions by output rows
  // at batch 1 and by samples above (they compute sample by sample).
  const bool split_samples = pool_ && batch > 1 && s.work * batch >= 2 * kMinMacsPerTask;
  auto by_samples = [&](auto&& fn) {
    const unsigned parts = static_cast<unsigned>(std::min<size_t>(pool_->threads(), batch));
    pool_->run(parts, [&](unsigned i) { fn(batch * i / parts, batch * (i + 1) / parts); });
  };
  switch (s.op) {
    case Op::linear:
      run_linear(s, isa, x, batch, y);
      break;
    case Op::conv2d:
      if (pool_ && batch == 1 && !s.splits.empty()) {
        pool_->run(static_cast<unsigned>(s.splits.size() - 1), [&](unsigned i) {
          s.conv->run(isa, x, 1, y, s.bias, s.splits[i], s.splits[i + 1]);
        });
      } else if (split_samples) {
        by_samples([&](size_t b0, size_t b1) {
          s.conv->run(isa, x + b0 * s.in_sizes[0], b1 - b0, y + b0 * s.out_size, s.bias);
        });
      } else {
        s.conv->run(isa, x, batch, y, s.bias);
      }
      break;
    case Op::relu:
      if (y != x) std::memcpy(y, x, batch * s.out_size * sizeof(float));
      kernels::ref::relu_f32(y, batch * s.out_size);
      break;
    case Op::clamp:
      if (y != x) std::memcpy(y, x, batch * s.out_size * sizeof(float));
      kernels::ref::clamp_f32(y, batch * s.out_size, s.clamp.min, s.clamp.max);
      break;
    case Op::softmax:
      if (y != x) std::memcpy(y, x, batch * s.out_size * sizeof(float));
      kernels::ref::softmax_f32(y, batch, s.out_size);
      break;
    case Op::flatten:
    case Op::reshape:
      break;  // an alias: same floats, new shape
    case Op::max_pool2d:
      kernels::ref::max_pool2d_f32(s.pool, x, batch, y);
      break;
    case Op::avg_pool2d:
      kernels::ref::avg_pool2d_f32(s.pool, x, batch, y);
      break;
    case Op::global_avg_pool:
      kernels::ref::global_avg_pool_f32(x, batch, s.pool.channels, size_t(s.pool.in_h) * s.pool.in_w, y);
      break;
    case Op::add:
      kernels::ref::add_f32(xs[0], xs[1], y, batch * s.out_size);
      break;
    case Op::concat: {
      // Per sample and per outer index, the inputs' chunks follow one another.
      float* out = y;
      for (size_t b = 0; b < batch; ++b)
        for (uint32_t o = 0; o < s.concat_outer; ++o)
          for (size_t k = 0; k < s.in_offsets.size(); ++k) {
            const size_t chunk = s.in_sizes[k] / s.concat_outer;
            std::memcpy(out, xs[k] + b * s.in_sizes[k] + o * chunk, chunk * sizeof(float));
            out += chunk;
          }
      break;
    }
  }
}

Session::Session(const Model& model, size_t max_batch, void* arena, size_t arena_bytes_given)
    : model_(model), max_batch_(max_batch) {
  PYRT_CHECK(max_batch >= 1 && max_batch <= kMaxBatch, PYRT_INVALID_ARGUMENT, "max_batch ", max_batch, " not in 1..",
             kMaxBatch);
  const size_t need = model.arena_floats(max_batch);
  if (arena == nullptr) {
    owned_.resize(need, 0);
    arena_ = owned_.data();
  } else {
    const uintptr_t p = reinterpret_cast<uintptr_t>(arena);
    const uintptr_t aligned = (p + kAlignment - 1) / kAlignment * kAlignment;
    PYRT_CHECK(aligned - p + need * sizeof(float) <= arena_bytes_given, PYRT_INVALID_ARGUMENT, "arena of ",
               arena_bytes_given, " bytes is too small: ", arena_bytes(model, max_batch), " needed for batch ",
               max_batch);
    arena_ = reinterpret_cast<float*>(aligned);
  }
}

void Session::run(const float* input, size_t batch, float* output) {
  PYRT_CHECK(input != nullptr && output != nullptr, PYRT_INVALID_ARGUMENT, "input or output is null");
  PYRT_CHECK(batch >= 1 && batch <= max_batch_, PYRT_INVALID_ARGUMENT, "batch ", batch, " not in 1..", max_batch_,
             " (the session's max_batch)");
  model_.run(input, batch, output, arena_);
}

}  // namespace pyrt::runtime
