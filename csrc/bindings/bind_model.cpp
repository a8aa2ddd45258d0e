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

  // One input array, checked against input k and made C-contiguous: float32 for an f32 input; any integer
  // dtype for an i32 input (ids), converted to int32 (values outside int32 are refused).
  py::array input_array(const py::handle& h, size_t k) const {
    const size_t n_in = model->input_count();
    const std::string who = n_in == 1 ? std::string("input") : "input " + std::to_string(k);
    PYRT_CHECK(py::isinstance<py::array>(h), PYRT_INVALID_ARGUMENT, who, " is a ",
               std::string(py::str(py::type::handle_of(h).attr("__name__"))), ", expected a numpy array");
    py::array x = py::reinterpret_borrow<py::array>(h);
    const auto& in_shape = model->input_shape(k);
    const size_t rank = in_shape.size();
    const bool ids = model->input_type(k) == ElemType::i32;
    if (ids) {
      PYRT_CHECK(x.dtype().kind() == 'i' || x.dtype().kind() == 'u', PYRT_INVALID_ARGUMENT, who, " dtype is ",
                 std::string(py::str(x.dtype())), ", expected integers (token ids)");
    } else {
      // equal, not is: an unpickled array's float32 is another dtype object (big-endian >f4 is still refused)
      PYRT_CHECK(x.dtype().equal(py::dtype::of<float>()), PYRT_INVALID_ARGUMENT, who, " dtype is ",
                 std::string(py::str(x.dtype())), ", expected float32");
    }
    PYRT_CHECK(static_cast<size_t>(x.ndim()) == rank + 1, PYRT_INVALID_ARGUMENT, who, " has ", x.ndim(),
               " dimensions, expected ", rank + 1, " (batch, ", shape_str(in_shape), ")");
    for (size_t i = 0; i < rank; ++i)
      PYRT_CHECK(static_cast<size_t>(x.shape(i + 1)) == in_shape[i], PYRT_INVALID_ARGUMENT, who, " shape ",
                 shape_str(x), " does not match the model's (batch, ", shape_str(in_shape), ")");
    if (!ids) return py::array_t<float, py::array::c_style>::ensure(x);
    if (x.dtype().itemsize() > 4 || x.dtype().kind() == 'u') {
      py::module_ np = py::module_::import("numpy");
      if (x.size() > 0) {
        const int64_t lo = np.attr("min")(x).cast<int64_t>();
        const uint64_t hi = np.attr("max")(x).cast<uint64_t>();
        PYRT_CHECK(lo >= INT32_MIN && hi <= uint64_t(INT32_MAX), PYRT_INVALID_ARGUMENT, who, " holds ids from ", lo,
                   " to ", hi, ", outside int32");
      }
    }
    return py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(x);
  }

  // xs: one array per model input (the batch first, the same in all). Returns one float32 array per output.
  // step_seconds: null, or one entry per planned step, to which each run adds the step's wall time.
  std::vector<py::array_t<float>> run(const std::vector<py::handle>& xs, double* step_seconds = nullptr) {
    const size_t n_in = model->input_count(), n_out = model->output_count();
    PYRT_CHECK(xs.size() == n_in, PYRT_INVALID_ARGUMENT, "the model takes ", n_in, n_in == 1 ? " input" : " inputs",
               ", got ", xs.size());
    std::vector<py::array> in;
    for (size_t k = 0; k < n_in; ++k) in.push_back(input_array(xs[k], k));
    const size_t batch = static_cast<size_t>(in[0].shape(0));
    for (size_t k = 1; k < n_in; ++k)
      PYRT_CHECK(static_cast<size_t>(in[k].shape(0)) == batch, PYRT_INVALID_ARGUMENT, "input ", k, " has batch ",
                 in[k].shape(0), ", input 0 has ", batch);
    std::vector<py::array_t<float>> ys;
    for (size_t k = 0; k < n_out; ++k) {
      std::vector<py::ssize_t> out_shape{static_cast<py::ssize_t>(batch)};
      for (uint32_t d : model->output_shape(k)) out_shape.push_back(d);
      ys.push_back(aligned_output(out_shape));
    }
    if (batch == 0) return ys;
    std::vector<const uint8_t*> xp;
    std::vector<size_t> in_bytes;  // per sample
    for (size_t k = 0; k < n_in; ++k) {
      xp.push_back(static_cast<const uint8_t*>(in[k].data()));
      in_bytes.push_back(model->input_size(k) * 4);
    }
    std::vector<float*> yp;
    for (auto& y : ys) yp.push_back(y.mutable_data());
    {
      py::gil_scoped_release release;
      const size_t piece = piece_samples(batch);
      std::vector<const void*> pin(n_in);
      std::vector<float*> pout(n_out);
      auto run_all = [&](runtime::Session& sess) {
        for (size_t b0 = 0; b0 < batch; b0 += piece) {
          for (size_t k = 0; k < n_in; ++k) pin[k] = xp[k] + b0 * in_bytes[k];
          for (size_t k = 0; k < n_out; ++k) pout[k] = yp[k] + b0 * model->output_size(k);
          sess.run(pin.data(), std::min(piece, batch - b0), pout.data(), step_seconds);
        }
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
    return ys;
  }

  // A single output's array, or a tuple of one per output.
  py::object run_py(const py::args& xs) {
    std::vector<py::handle> hs(xs.begin(), xs.end());
    std::vector<py::array_t<float>> ys = run(hs);
    if (ys.size() == 1) return ys[0];
    py::tuple t(ys.size());
    for (size_t k = 0; k < ys.size(); ++k) t[k] = ys[k];
    return t;
  }

  // Runs x `runs` times; per planned step: the node it belongs to, the conversion it makes (empty for a
  // node's own step), whether it is an alias (nothing runs) and its mean seconds per run.
  // xs: an array (a model of one input) or a tuple / list of one per input.
  py::list profile(py::object xs, size_t runs) {
    PYRT_CHECK(runs >= 1 && runs <= (size_t(1) << 30), PYRT_INVALID_ARGUMENT, "runs ", runs, " not in 1..2^30");
    std::vector<py::handle> hs;
    if (py::isinstance<py::tuple>(xs) || py::isinstance<py::list>(xs)) {
      for (const py::handle& h : xs) hs.push_back(h);
    } else {
      hs.push_back(xs);
    }
    // the same steps at every batch; at batch 1 in-place concats are aliases (Model::planned_steps)
    const auto& steps = model->planned_steps(2);
    const auto& steps1 = model->planned_steps(1);
    std::vector<double> seconds(steps.size(), 0.0);
    size_t batch = 0;
    for (size_t r = 0; r < runs; ++r) batch = static_cast<size_t>(run(hs, seconds.data())[0].shape(0));
    // a step is an alias if it ran in none of the pieces the batch ran in (piece_samples): pieces of one
    // sample run the batch-1 plan, larger ones the other
    const size_t piece = batch ? piece_samples(batch) : 1, last = batch ? batch - (batch - 1) / piece * piece : 0;
    const bool ran1 = last == 1 || (piece == 1 && batch > 0), ran_any = piece > 1 && batch > 1;
    py::list out;
    for (size_t i = 0; i < steps.size(); ++i) {
      py::dict d;
      d["node"] = steps[i].node;
      d["conversion"] = steps[i].conversion;
      d["alias"] = (!ran_any || steps[i].alias) && (!ran1 || steps1[i].alias);
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
    d["steps"] = l.steps;
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
      .def_property_readonly("input_shapes",
                             [](const PyModel& p) {
                               std::vector<std::vector<uint32_t>> out;
                               for (size_t k = 0; k < p.model->input_count(); ++k) out.push_back(p.model->input_shape(k));
                               return out;
                             })
      .def_property_readonly("input_types",
                             [](const PyModel& p) {
                               std::vector<std::string> out;
                               for (size_t k = 0; k < p.model->input_count(); ++k)
                                 out.push_back(elem_type_name(p.model->input_type(k)));
                               return out;
                             })
      .def_property_readonly("output_shapes",
                             [](const PyModel& p) {
                               std::vector<std::vector<uint32_t>> out;
                               for (size_t k = 0; k < p.model->output_count(); ++k)
                                 out.push_back(p.model->output_shape(k));
                               return out;
                             })
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
      .def("run", &PyModel::run_py)
      .def("profile", &PyModel::profile, py::arg("x"), py::arg("runs"));
}

}  // namespace pyrt::bindings
