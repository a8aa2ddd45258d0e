// pyruntime bindings: a loaded model. Model.run runs a batch in pieces whose arena fits in
// kMaxCachedArena (64 MiB; pieces are whole chunks of Model::kBatchChunk samples, so the results are
// those of one session over the whole batch) and keeps one session of at most that size cached between
// calls, under a mutex; a call that finds it busy (another Python thread), or whose single sample needs
// more, runs in a session of its own that is freed before it returns. The GIL is released while the
// model runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <mutex>

#include "bindings/tensor_dict.h"
#include "common/error.h"
#include "runtime/model.h"

namespace py = pybind11;

namespace pyrt::bindings {

std::string_view buffer_bytes(const py::buffer& b, py::buffer_info& info);

namespace {

// The most activation memory Model.run keeps between calls, and the most one piece of a batch uses
// when a sample fits in it.
constexpr size_t kMaxCachedArena = size_t(64) << 20;

struct PyModel {
  std::unique_ptr<runtime::Model> model;
  std::mutex mu;
  std::unique_ptr<runtime::Session> session;

  // A float32 array of `shape` on a 64-byte boundary (numpy's own allocations are 16-byte aligned): the
  // model's last step writes into it directly, and full cache-line stores stay within one line.
  static py::array_t<float> aligned_output(const std::vector<py::ssize_t>& shape) {
    size_t n = 1;
    for (py::ssize_t d : shape) n *= static_cast<size_t>(d);
    const size_t bytes = std::max<size_t>(64, (n * sizeof(float) + 63) / 64 * 64);
    void* mem = std::aligned_alloc(64, bytes);
    if (mem == nullptr) throw std::bad_alloc();
    py::capsule owner(mem, [](void* p) { std::free(p); });
    return py::array_t<float>(shape, static_cast<float*>(mem), owner);
  }

  // step_seconds: null, or one entry per planned step, to which each run adds the step's wall time.
  py::array_t<float> run(py::array x, double* step_seconds = nullptr) {
    const auto& in_shape = model->input_shape();
    const size_t rank = in_shape.size();
    PYRT_CHECK(x.dtype().is(py::dtype::of<float>()), PYRT_INVALID_ARGUMENT, "input dtype is ",
               std::string(py::str(x.dtype())), ", expected float32");
    PYRT_CHECK(static_cast<size_t>(x.ndim()) == rank + 1, PYRT_INVALID_ARGUMENT, "input has ", x.ndim(),
               " dimensions, expected ", rank + 1, " (batch, ", shape_str(in_shape), ")");
    for (size_t i = 0; i < rank; ++i)
      PYRT_CHECK(static_cast<size_t>(x.shape(i + 1)) == in_shape[i], PYRT_INVALID_ARGUMENT, "input shape ",
                 shape_str(x), " does not match the model's (batch, ", shape_str(in_shape), ")");
    auto xc = py::array_t<float, py::array::c_style>::ensure(x);
    const size_t batch = static_cast<size_t>(x.shape(0));
    std::vector<py::ssize_t> out_shape{static_cast<py::ssize_t>(batch)};
    for (uint32_t d : model->output_shape()) out_shape.push_back(d);
    py::array_t<float> y = aligned_output(out_shape);
    if (batch == 0) return y;
    const float* xp = xc.data();
    float* yp = y.mutable_data();
    {
      py::gil_scoped_release release;
      const size_t piece = piece_samples(batch);
      const size_t in = model->input_size(), out = model->output_size();
      auto run_all = [&](runtime::Session& sess) {
        for (size_t b0 = 0; b0 < batch; b0 += piece)
          sess.run(xp + b0 * in, std::min(piece, batch - b0), yp + b0 * out, step_seconds);
      };
      std::unique_lock<std::mutex> lock(mu, std::try_to_lock);
      if (lock.owns_lock() && runtime::Session::arena_bytes(*model, piece) <= kMaxCachedArena) {
        if (!session || session->max_batch() < piece) {
          session.reset();  // the old arena goes before the new one is allocated
          session = std::make_unique<runtime::Session>(*model, piece);
        }
        run_all(*session);
      } else {
        runtime::Session own(*model, piece);
        run_all(own);
      }
    }
    return y;
  }

  // Runs x `runs` times; per planned step: the node it belongs to, the conversion it makes (empty for a
  // node's own step), whether it is an alias (nothing runs) and its mean seconds per run.
  py::list profile(py::array x, size_t runs) {
    PYRT_CHECK(runs >= 1 && runs <= (size_t(1) << 30), PYRT_INVALID_ARGUMENT, "runs ", runs, " not in 1..2^30");
    const auto& steps = model->planned_steps();
    std::vector<double> seconds(steps.size(), 0.0);
    for (size_t r = 0; r < runs; ++r) run(x, seconds.data());
    py::list out;
    for (size_t i = 0; i < steps.size(); ++i) {
      py::dict d;
      d["node"] = steps[i].node;
      d["conversion"] = steps[i].conversion;
      d["alias"] = steps[i].alias;
      d["seconds"] = seconds[i] / double(runs);
      out.append(d);
    }
    return out;
  }

  // Samples per piece of a batch: all of it if its arena fits in kMaxCachedArena, else as many whole
  // chunks of Model::kBatchChunk as fit (at least one chunk, or fewer samples if one chunk does not fit).
  size_t piece_samples(size_t batch) const {
    if (runtime::Session::arena_bytes(*model, std::min(batch, runtime::Session::kMaxBatch)) <= kMaxCachedArena &&
        batch <= runtime::Session::kMaxBatch)
      return batch;
    const size_t per_sample = std::max<size_t>(1, model->arena_bytes(1));
    const size_t fit = kMaxCachedArena / per_sample;
    const size_t chunk = runtime::Model::kBatchChunk;
    if (fit >= chunk) return std::min(fit / chunk * chunk, runtime::Session::kMaxBatch);
    return std::max<size_t>(1, fit);
  }

  static std::string shape_str(const std::vector<uint32_t>& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out;
  }
  static std::string shape_str(const py::array& a) {
    std::string out = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) out += (i ? ", " : "") + std::to_string(a.shape(i));
    return out + ")";
  }
};

py::list layers_list(const runtime::Model& m) {
  py::list out;
  for (const auto& l : m.layers()) {
    py::dict d;
    d["op"] = l.op;
    d["name"] = text_to_py(l.name);
    d["encoding"] = l.encoding;
    d["shape"] = l.shape;
    d["output_shape"] = l.output_shape;
    d["nnz"] = l.nnz;
    d["bits"] = l.bits;
    d["layout"] = l.layout;
    d["method"] = l.method;
    d["activation"] = l.activation;
    d["groups"] = l.groups;
    d["codebook_size"] = l.codebook_size;
    d["file_bytes"] = l.file_bytes;
    d["exec_bytes"] = l.exec_bytes;
    d["dense_bytes"] = l.dense_bytes;
    d["in_place"] = l.in_place;
    d["row_tasks"] = l.row_tasks;
    d["output_type"] = l.output_type;
    out.append(d);
  }
  return out;
}

void check_threads(unsigned threads) {
  PYRT_CHECK(threads <= 1024, PYRT_INVALID_ARGUMENT, "threads ", threads, " not in 0..1024");
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<PyModel>(m, "Model")
      .def_static(
          "from_bytes",
          [](const py::buffer& data, unsigned threads) {
            check_threads(threads);
            py::buffer_info info;
            const std::string_view b = buffer_bytes(data, info);
            auto pm = std::make_unique<PyModel>();
            py::gil_scoped_release release;
            pm->model = runtime::Model::load_buffer(reinterpret_cast<const uint8_t*>(b.data()), b.size());
            pm->model->set_threads(threads);
            return pm;
          },
          py::arg("data"), py::arg("threads") = 1)
      .def_static(
          "from_file",
          [](const std::string& path, bool mmap, unsigned threads) {
            check_threads(threads);
            // A C string ends at the first NUL: "model.pyrt\0.x" would open another file than the one named.
            PYRT_CHECK(path.find('\0') == std::string::npos, PYRT_INVALID_ARGUMENT, "path has an embedded null byte");
            auto pm = std::make_unique<PyModel>();
            py::gil_scoped_release release;
            pm->model = runtime::Model::load_file(
                path.c_str(), mmap ? format::FileBuffer::Mode::map : format::FileBuffer::Mode::read);
            pm->model->set_threads(threads);
            return pm;
          },
          py::arg("path"), py::arg("mmap") = false, py::arg("threads") = 1)
      .def_property_readonly("input_shape", [](const PyModel& p) { return p.model->input_shape(); })
      .def_property_readonly("output_shape", [](const PyModel& p) { return p.model->output_shape(); })
      .def_property_readonly("layers", [](const PyModel& p) { return layers_list(*p.model); })
      .def_property_readonly("metadata", [](const PyModel& p) { return text_to_py(p.model->metadata()); })
      .def_property_readonly("file_bytes", [](const PyModel& p) { return p.model->file_bytes(); })
      .def_property_readonly("weight_bytes", [](const PyModel& p) { return p.model->weight_bytes(); })
      .def_property_readonly("in_place_bytes", [](const PyModel& p) { return p.model->in_place_bytes(); })
      .def_property_readonly("threads", [](const PyModel& p) { return p.model->threads(); })
      .def_property_readonly("format_version", [](const PyModel& p) { return p.model->format_version(); })
      .def_property_readonly("work", [](const PyModel& p) { return p.model->work_per_sample(); })
      .def(
          "arena_bytes",
          [](const PyModel& p, size_t batch) {
            PYRT_CHECK(batch >= 1 && batch <= runtime::Session::kMaxBatch, PYRT_INVALID_ARGUMENT, "batch ", batch,
                       " not in 1..", runtime::Session::kMaxBatch);
            return runtime::Session::arena_bytes(*p.model, batch);
          },
          py::arg("batch") = 1)
      .def_property_readonly_static("max_cached_arena_bytes", [](py::object) { return kMaxCachedArena; })
      .def("run", [](PyModel& p, py::array x) { return p.run(x); }, py::arg("x"))
      .def("profile", &PyModel::profile, py::arg("x"), py::arg("runs"));
}

}  // namespace pyrt::bindings
