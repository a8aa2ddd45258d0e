// pyruntime bindings: the int8 kernels and quantization, for tests and benchmarks:
//   _core.Int8Weight(tensor_dict).gemm(q, xs, bias=None, lo=-inf, hi=inf, out_scale=0, isa=None, rows=None)
//   _core.quantize_rows(x, isa=None) -> (q, xs);  _core.quantize(x, scale) -> q
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <limits>

#include "bindings/tensor_dict.h"
#include "common/error.h"
#include "kernels/int8/int8_weight.h"
#include "kernels/ref/quantize.h"

namespace py = pybind11;

namespace pyrt::bindings {

kernels::Isa isa_arg(const py::object& name);

namespace {

using I8Array = py::array_t<int8_t, py::array::c_style | py::array::forcecast>;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

py::object int8_gemm(const kernels::Int8Weight& w, const I8Array& q, const F32Array& xs, py::object bias, float lo,
                     float hi, float out_scale, py::object isa_name, py::object rows) {
  PYRT_CHECK(q.ndim() == 2 && q.shape(1) == static_cast<py::ssize_t>(w.cols()), PYRT_INVALID_ARGUMENT,
             "q must have shape (batch, ", w.cols(), ")");
  const size_t batch = static_cast<size_t>(q.shape(0));
  PYRT_CHECK(xs.ndim() == 1 && static_cast<size_t>(xs.shape(0)) == batch, PYRT_INVALID_ARGUMENT,
             "xs must have shape (", batch, ",)");
  for (size_t i = 0; i < size_t(q.size()); ++i)
    PYRT_CHECK(q.data()[i] != -128, PYRT_INVALID_ARGUMENT, "q holds -128 (activations are -127..127)");
  PYRT_CHECK(out_scale >= 0 && std::isfinite(out_scale), PYRT_INVALID_ARGUMENT, "out_scale must be finite, >= 0");
  uint32_t r0 = 0, r1 = w.rows();
  if (!rows.is_none()) {
    const auto rr = py::cast<std::pair<uint32_t, uint32_t>>(rows);
    r0 = rr.first, r1 = rr.second;
    PYRT_CHECK(r0 < r1 && r1 <= w.rows() && r0 % 16 == 0, PYRT_INVALID_ARGUMENT, "rows [", r0, ", ", r1,
               ") must lie in [0, ", w.rows(), ") and start at a multiple of 16");
  }
  const kernels::Isa isa = isa_arg(isa_name);
  // padded copies, as the runtime hands them to the kernels
  const size_t kp = w.kp();
  AlignedArray<int8_t> qp(batch * kp + kernels::kInt8ActPad);
  for (size_t b = 0; b < batch; ++b) std::memcpy(qp.data() + b * kp, q.data() + b * w.cols(), w.cols());
  AlignedArray<float> bp(w.padded_rows());
  if (!bias.is_none()) {
    const F32Array ba = F32Array::ensure(bias);
    PYRT_CHECK(ba && ba.size() == static_cast<py::ssize_t>(w.rows()), PYRT_INVALID_ARGUMENT, "bias must have ",
               w.rows(), " elements");
    std::memcpy(bp.data(), ba.data(), w.rows() * sizeof(float));
  }
  kernels::Int8Epilogue ep{w.wscale(), bias.is_none() ? nullptr : bp.data(), lo, hi,
                           out_scale > 0 ? 1.0f / out_scale : 0.0f};
  const kernels::Int8Act act{qp.data(), xs.data(), batch, kp};
  const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(batch), static_cast<py::ssize_t>(w.rows())};
  auto run = [&](void* y) {
    py::gil_scoped_release release;
    if (batch > 0) w.gemm(isa, act, ep, r0, r1, y, w.rows());
  };
  if (out_scale > 0) {
    py::array_t<int8_t> y(shape);
    std::fill(y.mutable_data(), y.mutable_data() + y.size(), int8_t(-128));  // rows not asked stay -128
    run(y.mutable_data());
    return std::move(y);
  }
  py::array_t<float> y(shape);
  std::fill(y.mutable_data(), y.mutable_data() + y.size(), std::numeric_limits<float>::quiet_NaN());
  run(y.mutable_data());
  return std::move(y);
}

}  // namespace

void bind_int8(py::module_& m) {
  py::class_<kernels::Int8Weight>(m, "Int8Weight")
      .def(py::init([](const py::dict& d) { return kernels::Int8Weight::pack(tensor_from_dict(d)); }),
           py::arg("tensor"))
      .def_property_readonly("rows", &kernels::Int8Weight::rows)
      .def_property_readonly("cols", &kernels::Int8Weight::cols)
      .def_property_readonly("nnz", &kernels::Int8Weight::nnz)
      .def_property_readonly("bytes", &kernels::Int8Weight::bytes)
      .def_property_readonly("layout", [](const kernels::Int8Weight& w) { return std::string(w.layout()); })
      .def_property_readonly("steps", &kernels::Int8Weight::steps)
      .def("gemm", &int8_gemm, py::arg("q"), py::arg("xs"), py::arg("bias") = py::none(),
           py::arg("lo") = -std::numeric_limits<float>::infinity(),
           py::arg("hi") = std::numeric_limits<float>::infinity(), py::arg("out_scale") = 0.0f,
           py::arg("isa") = py::none(), py::arg("rows") = py::none())
      .def("row_splits", &kernels::Int8Weight::row_splits, py::arg("parts"));

  m.def(
      "quantize_rows",
      [](const F32Array& x, py::object isa_name) {
        PYRT_CHECK(x.ndim() == 2, PYRT_INVALID_ARGUMENT, "x must be 2-D (batch, cols)");
        const kernels::Isa isa = isa_arg(isa_name);
        const size_t batch = static_cast<size_t>(x.shape(0)), cols = static_cast<size_t>(x.shape(1));
        py::array_t<int8_t> q({static_cast<py::ssize_t>(batch), static_cast<py::ssize_t>(cols)});
        py::array_t<float> xs(static_cast<py::ssize_t>(batch));
        kernels::quantize_rows(isa, x.data(), batch, cols, cols, q.mutable_data(), xs.mutable_data());
        return py::make_tuple(q, xs);
      },
      py::arg("x"), py::arg("isa") = py::none());
  m.def(
      "quantize",
      [](const F32Array& x, float scale, py::object isa_name) {
        PYRT_CHECK(scale > 0 && std::isfinite(scale), PYRT_INVALID_ARGUMENT, "scale must be finite and > 0");
        const kernels::Isa isa = isa_arg(isa_name);
        py::array_t<int8_t> q(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
        kernels::quantize_s8(isa, x.data(), static_cast<size_t>(x.size()), 1.0f / scale, q.mutable_data());
        return q;
      },
      py::arg("x"), py::arg("scale"), py::arg("isa") = py::none());
}

}  // namespace pyrt::bindings
