// pyruntime bindings: the binary kernels, for tests and benchmarks:
//   _core.BinaryWeight(tensor_dict, mode="xnor"|"threshold"|"real", second=None)
//       .gemm(x, isa=None, rows=None): x u64 (batch, words) of b1 samples ("xnor", "threshold") or f32
//       (batch, cols) ("real") -> f32 (batch, rows), or u64 (batch, ceil(rows / 64)) b1 ("threshold")
//   _core.binarize(x, scale=1, shift=0, isa=None): f32 (batch, cols) -> u64 (batch, ceil(cols / 64))
//   _core.binarize_image(x, scale=1, shift=0, isa=None): f32 (batch, C, H, W) -> u64 (batch, H * W, ceil(C / 64))
//   _core.binary_kernel(isa=None): the XNOR kernel a level runs ("ref", "avx2", "avx512-vpopcntdq")
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>

#include "bindings/tensor_dict.h"
#include "common/error.h"
#include "kernels/binary/binary_weight.h"

namespace py = pybind11;

namespace pyrt::bindings {

kernels::Isa isa_arg(const py::object& name);

namespace {

using U64Array = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;
using Mode = kernels::BinaryWeight::Mode;

struct PyBinaryWeight {
  DecodedTensor weight, second;
  bool has_second = false;
  std::unique_ptr<kernels::BinaryWeight> w;
};

std::unique_ptr<PyBinaryWeight> make(const py::dict& d, const std::string& mode, py::object second) {
  auto p = std::make_unique<PyBinaryWeight>();
  p->weight = tensor_from_dict(d);
  PYRT_CHECK(p->weight.encoding == Encoding::binary && p->weight.shape.size() == 2, PYRT_INVALID_ARGUMENT,
             "BinaryWeight needs a binary tensor of rank 2");
  const Mode m = mode == "xnor" ? Mode::xnor_real : mode == "threshold" ? Mode::xnor_bits : Mode::real_input;
  PYRT_CHECK(mode == "xnor" || mode == "threshold" || mode == "real", PYRT_INVALID_ARGUMENT, "mode '", mode,
             "' is not xnor, threshold or real");
  const uint64_t rows = p->weight.rows();
  if (!second.is_none()) {
    const F32Array a = F32Array::ensure(second);
    PYRT_CHECK(a && uint64_t(a.size()) == rows, PYRT_INVALID_ARGUMENT, "second must have ", rows, " values");
    p->second.encoding = Encoding::dense_f32;
    p->second.shape = {uint32_t(rows)};
    p->second.values.assign(a.data(), a.data() + rows);
    p->has_second = true;
  }
  PYRT_CHECK(m != Mode::xnor_bits || p->has_second, PYRT_INVALID_ARGUMENT, "threshold mode needs the thresholds");
  if (m == Mode::xnor_bits)
    for (float t : p->second.values)
      PYRT_CHECK(t >= 0 && t <= double(p->weight.cols()) + 1 && t == float(int64_t(t)), PYRT_INVALID_ARGUMENT,
                 "threshold ", t, " is not an integer in 0..K + 1");
  p->w = std::make_unique<kernels::BinaryWeight>(p->weight, m, p->has_second ? &p->second : nullptr);
  return p;
}

py::object gemm(const PyBinaryWeight& p, const py::array& x_any, py::object isa_name, py::object rows) {
  const kernels::BinaryWeight& w = *p.w;
  const bool real = w.mode() == Mode::real_input, bits_out = w.mode() == Mode::xnor_bits;
  const kernels::Isa isa = isa_arg(isa_name);
  size_t r0 = 0, r1 = w.rows();
  if (!rows.is_none()) {
    const auto rr = py::cast<std::pair<size_t, size_t>>(rows);
    r0 = rr.first, r1 = rr.second;
    PYRT_CHECK(r0 < r1 && r1 <= w.rows() && r0 % 64 == 0, PYRT_INVALID_ARGUMENT, "rows [", r0, ", ", r1,
               ") must lie in [0, ", w.rows(), ") and start at a multiple of 64");
  }
  const size_t ldy = bits_out ? (w.rows() + 63) / 64 : w.rows();
  py::array y = bits_out ? py::array(py::array_t<uint64_t>({x_any.shape(0), py::ssize_t(ldy)}))
                         : py::array(py::array_t<float>({x_any.shape(0), py::ssize_t(ldy)}));
  std::memset(y.mutable_data(), bits_out ? 0 : 0xFF, size_t(y.nbytes()));  // f32: NaN where not computed
  const size_t batch = size_t(x_any.shape(0));
  if (real) {
    const F32Array x = F32Array::ensure(x_any);
    PYRT_CHECK(x && x.ndim() == 2 && size_t(x.shape(1)) == w.cols(), PYRT_INVALID_ARGUMENT, "x must be f32 (batch, ",
               w.cols(), ")");
    py::gil_scoped_release release;
    w.gemm(isa, x.data(), w.cols(), batch, r0, r1, y.mutable_data(), ldy);
  } else {
    const U64Array x = U64Array::ensure(x_any);
    PYRT_CHECK(x && x.ndim() == 2 && size_t(x.shape(1)) == w.words(), PYRT_INVALID_ARGUMENT,
               "x must be u64 (batch, ", w.words(), ")");
    py::gil_scoped_release release;
    w.gemm(isa, x.data(), w.words(), batch, r0, r1, y.mutable_data(), bits_out ? ldy * 8 : ldy);
  }
  return y;
}

py::array_t<int32_t> counts(const PyBinaryWeight& p, const U64Array& x, py::object isa_name) {
  const kernels::BinaryWeight& w = *p.w;
  PYRT_CHECK(w.mode() != Mode::real_input, PYRT_INVALID_ARGUMENT, "counts needs an XNOR mode");
  PYRT_CHECK(x.ndim() == 2 && size_t(x.shape(1)) == w.words(), PYRT_INVALID_ARGUMENT, "x must be u64 (batch, ",
             w.words(), ")");
  const kernels::Isa isa = isa_arg(isa_name);
  py::array_t<int32_t> y({x.shape(0), py::ssize_t(w.rows())});
  py::gil_scoped_release release;
  w.counts(isa, x.data(), w.words(), size_t(x.shape(0)), 0, w.rows(), y.mutable_data(), w.rows());
  return y;
}

}  // namespace

void bind_binary(py::module_& m) {
  py::class_<PyBinaryWeight>(m, "BinaryWeight")
      .def(py::init(&make), py::arg("tensor"), py::arg("mode") = "xnor", py::arg("second") = py::none())
      .def_property_readonly("rows", [](const PyBinaryWeight& p) { return p.w->rows(); })
      .def_property_readonly("cols", [](const PyBinaryWeight& p) { return p.w->cols(); })
      .def_property_readonly("words", [](const PyBinaryWeight& p) { return p.w->words(); })
      .def_property_readonly("bytes", [](const PyBinaryWeight& p) { return p.w->bytes(); })
      .def_property_readonly("layout", [](const PyBinaryWeight& p) { return std::string(p.w->layout()); })
      .def("gemm", &gemm, py::arg("x"), py::arg("isa") = py::none(), py::arg("rows") = py::none())
      .def("counts", &counts, py::arg("x"), py::arg("isa") = py::none())
      .def("row_splits", [](const PyBinaryWeight& p, unsigned parts) { return p.w->row_splits(parts); },
           py::arg("parts"));
  m.def(
      "binarize",
      [](const F32Array& x, float scale, float shift, py::object isa_name) {
        PYRT_CHECK(x.ndim() == 2, PYRT_INVALID_ARGUMENT, "x must be 2-D (batch, cols)");
        const kernels::Isa isa = isa_arg(isa_name);
        const size_t batch = size_t(x.shape(0)), cols = size_t(x.shape(1)), words = (cols + 63) / 64;
        py::array_t<uint64_t> out({py::ssize_t(batch), py::ssize_t(words)});
        kernels::binary_kernels(isa).binarize(x.data(), cols, batch, cols, scale, shift, out.mutable_data(), words);
        return out;
      },
      py::arg("x"), py::arg("scale") = 1.0f, py::arg("shift") = 0.0f, py::arg("isa") = py::none());
  m.def(
      "binarize_image",
      [](const F32Array& x, float scale, float shift, py::object isa_name) {
        PYRT_CHECK(x.ndim() == 4, PYRT_INVALID_ARGUMENT, "x must be 4-D (batch, channels, height, width)");
        const kernels::Isa isa = isa_arg(isa_name);
        const size_t batch = size_t(x.shape(0)), c = size_t(x.shape(1)), pixels = size_t(x.shape(2) * x.shape(3));
        py::array_t<uint64_t> out({py::ssize_t(batch), py::ssize_t(pixels), py::ssize_t((c + 63) / 64)});
        kernels::binary_kernels(isa).binarize_hwc(x.data(), batch, c, pixels, scale, shift, out.mutable_data());
        return out;
      },
      py::arg("x"), py::arg("scale") = 1.0f, py::arg("shift") = 0.0f, py::arg("isa") = py::none());
  m.def(
      "binary_kernel", [](py::object isa_name) { return std::string(kernels::binary_kernels(isa_arg(isa_name)).xnor_name); },
      py::arg("isa") = py::none());
}

}  // namespace pyrt::bindings
