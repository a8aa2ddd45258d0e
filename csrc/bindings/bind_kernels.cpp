// pyruntime bindings: direct access to the kernels, for tests and benchmarks.
//   _core.supported_isas() -> ["ref", "avx2", ...]; _core.active_isa(); _core.set_isa(name)
//   _core.PackedWeight(tensor_dict).gemm(x, bias=None, isa=None) -> y; .gemv_rows(x, r0, r1); .row_splits(n)
#include <algorithm>
#include <limits>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/tensor_dict.h"
#include "common/error.h"
#include "kernels/packed_weight.h"

namespace py = pybind11;

namespace pyrt::bindings {

using kernels::Isa;

static Isa isa_arg(const py::object& name) {
  if (name.is_none()) return kernels::active_isa();
  Isa isa;
  const std::string s = py::cast<std::string>(name);
  PYRT_CHECK(kernels::isa_from_name(s.c_str(), &isa), PYRT_INVALID_ARGUMENT, "unknown ISA '", s,
             "' (expected ref, avx2 or avx512)");
  PYRT_CHECK(kernels::isa_supported(isa), PYRT_UNSUPPORTED, "ISA ", s, " is not supported by this CPU or build");
  return isa;
}

// An optional bias of `rows` floats from Python (None: empty, no bias).
static std::vector<float> bias_arg(const py::object& bias, uint32_t rows) {
  std::vector<float> b;
  if (bias.is_none()) return b;
  auto ba = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(bias);
  PYRT_CHECK(ba && ba.size() == static_cast<py::ssize_t>(rows), PYRT_INVALID_ARGUMENT, "bias must have ", rows,
             " elements");
  b.assign(ba.data(), ba.data() + ba.size());
  return b;
}

void bind_kernels(py::module_& m) {
  m.def("supported_isas", [] {
    std::vector<std::string> out;
    for (Isa isa : kernels::supported_isas()) out.push_back(kernels::isa_name(isa));
    return out;
  });
  m.def("active_isa", [] { return std::string(kernels::isa_name(kernels::active_isa())); });
  m.def("set_isa", [](const std::string& name) { kernels::set_isa(isa_arg(py::str(name))); }, py::arg("name"));

  py::class_<kernels::PackedWeight>(m, "PackedWeight")
      .def(py::init([](const py::dict& d) { return kernels::pack(tensor_from_dict(d)); }), py::arg("tensor"))
      .def_property_readonly("encoding", [](const kernels::PackedWeight& w) { return encoding_name(w.encoding()); })
      .def_property_readonly("rows", &kernels::PackedWeight::rows)
      .def_property_readonly("cols", &kernels::PackedWeight::cols)
      .def_property_readonly("nnz", &kernels::PackedWeight::nnz)
      .def_property_readonly("bytes", &kernels::PackedWeight::bytes)
      .def_property_readonly("layout", [](const kernels::PackedWeight& w) { return std::string(w.layout()); })
      .def(
          "gemm",
          [](const kernels::PackedWeight& w, py::array_t<float, py::array::c_style | py::array::forcecast> x,
             py::object bias, py::object isa_name) {
            PYRT_CHECK(x.ndim() == 2 && x.shape(1) == static_cast<py::ssize_t>(w.cols()), PYRT_INVALID_ARGUMENT,
                       "x must have shape (batch, ", w.cols(), ")");
            const Isa isa = isa_arg(isa_name);
            const std::vector<float> b = bias_arg(bias, w.rows());
            const size_t batch = static_cast<size_t>(x.shape(0));
            py::array_t<float> y({static_cast<py::ssize_t>(batch), static_cast<py::ssize_t>(w.rows())});
            const float* xp = x.data();
            float* yp = y.mutable_data();
            {
              py::gil_scoped_release release;
              if (batch > 0) w.gemm(isa, xp, batch, yp, b.empty() ? nullptr : b.data());
            }
            return y;
          },
          py::arg("x"), py::arg("bias") = py::none(), py::arg("isa") = py::none())
      .def(
          "gemv_rows",
          [](const kernels::PackedWeight& w, py::array_t<float, py::array::c_style | py::array::forcecast> x,
             uint32_t r0, uint32_t r1, py::object bias, py::object isa_name) {
            PYRT_CHECK(x.ndim() == 1 && x.shape(0) == static_cast<py::ssize_t>(w.cols()), PYRT_INVALID_ARGUMENT,
                       "x must have shape (", w.cols(), ",)");
            PYRT_CHECK(r0 < r1 && r1 <= w.rows(), PYRT_INVALID_ARGUMENT, "rows [", r0, ", ", r1, ") not in [0, ",
                       w.rows(), ")");
            const Isa isa = isa_arg(isa_name);
            const std::vector<float> b = bias_arg(bias, w.rows());
            py::array_t<float> y(static_cast<py::ssize_t>(w.rows()));
            float* yp = y.mutable_data();
            std::fill(yp, yp + w.rows(), std::numeric_limits<float>::quiet_NaN());  // rows not asked stay NaN
            {
              py::gil_scoped_release release;
              w.gemv_rows(isa, x.data(), yp, b.empty() ? nullptr : b.data(), r0, r1);
            }
            return y;
          },
          py::arg("x"), py::arg("r0"), py::arg("r1"), py::arg("bias") = py::none(), py::arg("isa") = py::none())
      .def("row_splits", &kernels::PackedWeight::row_splits, py::arg("parts"), py::arg("align") = 16);
}

}  // namespace pyrt::bindings
