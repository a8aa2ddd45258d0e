// pyruntime bindings: direct access to the kernels, for tests and benchmarks.
//   _core.supported_isas() -> ["ref", "avx2", ...]; _core.architecture_isas(); _core.active_isa(); _core.set_isa(name)
//   _core.PackedWeight(tensor_dict).gemm(x, bias=None, isa=None) -> y; .gemv_rows(x, r0, r1); .gemm_rows(x, r0, r1); .row_splits(n)
//   _core.Conv2d(geometry_dict, tensor_dict, method="auto").run(x, bias=None, isa=None, rows=None) -> y
#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/tensor_dict.h"
#include "common/error.h"
#include "kernels/conv/conv2d.h"
#include "kernels/conv/direct.h"
#include "kernels/packed_weight.h"

namespace py = pybind11;

namespace pyrt::bindings {

using kernels::Isa;

Isa isa_arg(const py::object& name) {
  if (name.is_none()) return kernels::active_isa();
  Isa isa;
  const std::string s = py::cast<std::string>(name);
  PYRT_CHECK(kernels::isa_from_name(s.c_str(), &isa), PYRT_INVALID_ARGUMENT, "unknown ISA '", s,
             "' (expected ref, avx2, avx512, avx512vnni, amx, neon or neon_dot)");
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

// Conv2dGeometry from {"in_c": .., "in_h": .., ...}: the field names; in_*, out_* and kh, kw are required,
// the rest default to stride 1, padding 0, dilation 1, groups 1. Unknown keys are an error (a typo would
// otherwise silently mean the default).
static kernels::Conv2dGeometry geometry_from_dict(const py::dict& d) {
  kernels::Conv2dGeometry g;
  const std::pair<const char*, uint32_t*> fields[] = {
      {"in_c", &g.in_c},         {"in_h", &g.in_h},         {"in_w", &g.in_w},
      {"out_c", &g.out_c},       {"out_h", &g.out_h},       {"out_w", &g.out_w},
      {"kh", &g.kh},             {"kw", &g.kw},             {"stride_h", &g.stride_h},
      {"stride_w", &g.stride_w}, {"pad_top", &g.pad_top},   {"pad_left", &g.pad_left},
      {"dilation_h", &g.dilation_h}, {"dilation_w", &g.dilation_w}, {"groups", &g.groups}};
  constexpr size_t kRequired = 8;
  for (const auto& item : d) {
    const std::string key = py::isinstance<py::str>(item.first) ? py::cast<std::string>(item.first) : std::string();
    const bool known = std::any_of(std::begin(fields), std::end(fields), [&](const auto& f) { return key == f.first; });
    PYRT_CHECK(known, PYRT_INVALID_ARGUMENT, "conv2d geometry: unknown key ",
               std::string(py::repr(item.first)).substr(0, 60));
  }
  for (size_t i = 0; i < std::size(fields); ++i)
    if (i < kRequired || d.contains(fields[i].first))
      *fields[i].second = dict_field<uint32_t>(d, fields[i].first, "conv2d geometry");
  return g;
}

static kernels::Conv2d::Method method_arg(const std::string& name) {
  if (name == "auto") return kernels::Conv2d::Method::kAuto;
  if (name == "im2col") return kernels::Conv2d::Method::kIm2col;
  if (name == "direct") return kernels::Conv2d::Method::kDirect;
  if (name == "direct_lanes") return kernels::Conv2d::Method::kDirectLanes;
  fail(PYRT_INVALID_ARGUMENT, "unknown conv2d method '", name, "' (expected auto, im2col, direct or direct_lanes)");
}

void bind_kernels(py::module_& m) {
  m.def("supported_isas", [] {
    std::vector<std::string> out;
    for (Isa isa : kernels::supported_isas()) out.push_back(kernels::isa_name(isa));
    return out;
  });
  m.def("architecture_isas", [] {
    std::vector<std::string> out;
    for (Isa isa : kernels::architecture_isas()) out.push_back(kernels::isa_name(isa));
    return out;
  });
  m.def("active_isa", [] { return std::string(kernels::isa_name(kernels::active_isa())); });
  m.def("set_isa", [](const std::string& name) { kernels::set_isa(isa_arg(py::str(name))); }, py::arg("name"));
  m.def(
      "set_gather",
      [](const std::string& mode) {
        using kernels::Gather;
        const Gather before = kernels::gather_setting();
        Gather g;
        if (mode == "auto") g = Gather::automatic;
        else if (mode == "hw") g = Gather::hw;
        else if (mode == "scalar") g = Gather::scalar;
        else PYRT_CHECK(false, PYRT_INVALID_ARGUMENT, "unknown gather mode '", mode, "' (expected auto, hw or scalar)");
        kernels::set_gather(g);
        return std::string(before == Gather::hw ? "hw" : before == Gather::scalar ? "scalar" : "auto");
      },
      py::arg("mode"));
  m.def(
      "set_direct_planes",
      [](const std::string& mode) {
        using kernels::DirectPlanes;
        const DirectPlanes before = kernels::direct_planes_setting();
        DirectPlanes p;
        if (mode == "auto") p = DirectPlanes::automatic;
        else if (mode == "shifted") p = DirectPlanes::shifted;
        else if (mode == "padded") p = DirectPlanes::padded;
        else PYRT_CHECK(false, PYRT_INVALID_ARGUMENT, "unknown planes mode '", mode,
                        "' (expected auto, shifted or padded)");
        kernels::set_direct_planes(p);
        return std::string(before == DirectPlanes::shifted  ? "shifted"
                           : before == DirectPlanes::padded ? "padded"
                                                            : "auto");
      },
      py::arg("mode"));
  m.def("uses_hw_gather", [](const py::object& isa) { return kernels::use_hw_gather(isa_arg(isa)); },
        py::arg("isa") = py::none());
  m.def(
      "cpu_has",
      [](const std::string& feature) {
        if (feature == "vbmi") return kernels::cpu_has_vbmi();
        if (feature == "vbmi2") return kernels::cpu_has_vbmi2();
        if (feature == "vpopcntdq") return kernels::cpu_has_vpopcntdq();
        PYRT_CHECK(false, PYRT_INVALID_ARGUMENT, "unknown CPU feature '", feature,
                   "' (expected vbmi, vbmi2 or vpopcntdq)");
        return false;
      },
      py::arg("feature"));

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
              w.gemm_rows(isa, x.data(), 1, yp + r0, b.empty() ? nullptr : b.data(), r0, r1);
            }
            return y;
          },
          py::arg("x"), py::arg("r0"), py::arg("r1"), py::arg("bias") = py::none(), py::arg("isa") = py::none())
      .def(
          "gemm_rows",
          [](const kernels::PackedWeight& w, py::array_t<float, py::array::c_style | py::array::forcecast> x,
             uint32_t r0, uint32_t r1, py::object bias, py::object isa_name) {
            PYRT_CHECK(x.ndim() == 2 && x.shape(1) == static_cast<py::ssize_t>(w.cols()), PYRT_INVALID_ARGUMENT,
                       "x must have shape (batch, ", w.cols(), ")");
            PYRT_CHECK(r0 < r1 && r1 <= w.rows(), PYRT_INVALID_ARGUMENT, "rows [", r0, ", ", r1, ") not in [0, ",
                       w.rows(), ")");
            const Isa isa = isa_arg(isa_name);
            const std::vector<float> b = bias_arg(bias, w.rows());
            const size_t batch = static_cast<size_t>(x.shape(0));
            py::array_t<float> y({static_cast<py::ssize_t>(batch), static_cast<py::ssize_t>(r1 - r0)});
            float* yp = y.mutable_data();
            {
              py::gil_scoped_release release;
              if (batch > 0) w.gemm_rows(isa, x.data(), batch, yp, b.empty() ? nullptr : b.data(), r0, r1);
            }
            return y;
          },
          py::arg("x"), py::arg("r0"), py::arg("r1"), py::arg("bias") = py::none(), py::arg("isa") = py::none())
      .def("row_splits", &kernels::PackedWeight::row_splits, py::arg("parts"), py::arg("align") = 16);

  py::class_<kernels::Conv2d>(m, "Conv2d")
      .def(py::init([](const py::dict& geometry, const py::dict& tensor, const std::string& method) {
             const kernels::Conv2dGeometry g = geometry_from_dict(geometry);
             g.validate(PYRT_INVALID_ARGUMENT);  // before the tensor, so geometry errors name the geometry
             return kernels::Conv2d::create(g, tensor_from_dict(tensor), false, method_arg(method));
           }),
           py::arg("geometry"), py::arg("tensor"), py::arg("method") = "auto")
      .def_property_readonly("bytes", &kernels::Conv2d::bytes)
      .def_property_readonly("layout", [](const kernels::Conv2d& c) { return std::string(c.layout()); })
      .def_property_readonly("method", [](const kernels::Conv2d& c) { return std::string(c.method()); })
      .def_property_readonly("geometry",
                             [](const kernels::Conv2d& c) {
                               const kernels::Conv2dGeometry& g = c.geometry();
                               py::dict d;
                               d["in_c"] = g.in_c, d["in_h"] = g.in_h, d["in_w"] = g.in_w;
                               d["out_c"] = g.out_c, d["out_h"] = g.out_h, d["out_w"] = g.out_w;
                               d["kh"] = g.kh, d["kw"] = g.kw, d["stride_h"] = g.stride_h, d["stride_w"] = g.stride_w;
                               d["pad_top"] = g.pad_top, d["pad_left"] = g.pad_left;
                               d["dilation_h"] = g.dilation_h, d["dilation_w"] = g.dilation_w, d["groups"] = g.groups;
                               return d;
                             })
      .def(
          "run",
          [](const kernels::Conv2d& c, py::array_t<float, py::array::c_style | py::array::forcecast> x,
             py::object bias, py::object isa_name, py::object rows) {
            const kernels::Conv2dGeometry& g = c.geometry();
            PYRT_CHECK(x.ndim() == 4 && x.shape(1) == static_cast<py::ssize_t>(g.in_c) &&
                           x.shape(2) == static_cast<py::ssize_t>(g.in_h) &&
                           x.shape(3) == static_cast<py::ssize_t>(g.in_w),
                       PYRT_INVALID_ARGUMENT, "x must have shape (batch, ", g.in_c, ", ", g.in_h, ", ", g.in_w, ")");
            uint32_t oy0 = 0, oy1 = g.out_h;
            if (!rows.is_none()) {
              std::pair<long long, long long> r;
              try {
                r = py::cast<std::pair<long long, long long>>(rows);
              } catch (const py::cast_error&) {
                fail(PYRT_INVALID_ARGUMENT, "rows must be a pair (oy0, oy1) of integers");
              }
              PYRT_CHECK(0 <= r.first && r.first < r.second && r.second <= g.out_h, PYRT_INVALID_ARGUMENT, "rows [",
                         r.first, ", ", r.second, ") not in [0, ", g.out_h, ")");
              oy0 = uint32_t(r.first), oy1 = uint32_t(r.second);
            }
            const Isa isa = isa_arg(isa_name);
            const std::vector<float> b = bias_arg(bias, g.out_c);
            const size_t batch = static_cast<size_t>(x.shape(0));
            py::array_t<float> y({static_cast<py::ssize_t>(batch), static_cast<py::ssize_t>(g.out_c),
                                  static_cast<py::ssize_t>(g.out_h), static_cast<py::ssize_t>(g.out_w)});
            float* yp = y.mutable_data();
            std::fill(yp, yp + batch * g.out_size(), 0.0f);  // rows not asked for stay zero
            const float* xp = x.data();
            {
              py::gil_scoped_release release;
              if (batch > 0) c.run(isa, xp, batch, yp, b.empty() ? nullptr : b.data(), oy0, oy1);
            }
            return y;
          },
          py::arg("x"), py::arg("bias") = py::none(), py::arg("isa") = py::none(), py::arg("rows") = py::none());
}

}  // namespace pyrt::bindings
