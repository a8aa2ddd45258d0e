// pyruntime bindings: a loaded model. Model.run keeps one cached session (grown to the largest batch
// seen) under a mutex; a call that finds it busy (another Python thread) runs in a session of its own.
// The GIL is released while the model runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <mutex>

#include "bindings/tensor_dict.h"
#include "common/error.h"
#include "runtime/model.h"

namespace py = pybind11;

namespace pyrt::bindings {

std::string_view buffer_bytes(const py::buffer& b, py::buffer_info& info);

namespace {

struct PyModel {
  std::unique_ptr<runtime::Model> model;
  std::mutex mu;
  std::unique_ptr<runtime::Session> session;

  py::array_t<float> run(py::array x) {
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
    py::array_t<float> y(out_shape);
    if (batch == 0) return y;
    const float* xp = xc.data();
    float* yp = y.mutable_data();
    {
      py::gil_scoped_release release;
      std::unique_lock<std::mutex> lock(mu, std::try_to_lock);
      if (lock.owns_lock()) {
        if (!session || session->max_batch() < batch) session = std::make_unique<runtime::Session>(*model, batch);
        session->run(xp, batch, yp);
      } else {
        runtime::Session own(*model, batch);
        own.run(xp, batch, yp);
      }
    }
    return y;
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
    d["groups"] = l.groups;
    d["codebook_size"] = l.codebook_size;
    d["file_bytes"] = l.file_bytes;
    d["exec_bytes"] = l.exec_bytes;
    d["dense_bytes"] = l.dense_bytes;
    d["in_place"] = l.in_place;
    d["row_tasks"] = l.row_tasks;
    out.append(d);
  }
  return out;
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<PyModel>(m, "Model")
      .def_static(
          "from_bytes",
          [](const py::buffer& data, unsigned threads) {
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
      .def("run", &PyModel::run, py::arg("x"));
}

}  // namespace pyrt::bindings
