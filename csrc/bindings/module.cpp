// pyruntime._core: the thin pybind11 layer over the C++ core. The Pythonic API lives in pyruntime/.
// pyrt::Error becomes a Python exception by status: PYRT_BAD_FORMAT -> FormatError (a ValueError),
// PYRT_UNSUPPORTED -> UnsupportedError (a ValueError), PYRT_INVALID_ARGUMENT -> ValueError,
// PYRT_IO_ERROR -> OSError, PYRT_OUT_OF_MEMORY -> MemoryError, anything else -> RuntimeError.
#include <pybind11/pybind11.h>

#include "common/error.h"

namespace py = pybind11;

namespace pyrt::bindings {
void bind_kernels(py::module_& m);
void bind_format(py::module_& m);
void bind_model(py::module_& m);
void bind_int8(py::module_& m);
void bind_binary(py::module_& m);
}  // namespace pyrt::bindings

PYBIND11_MODULE(_core, m) {
  m.doc() = "pyruntime C++ core";
  m.attr("FORMAT_VERSION") = PYRT_FORMAT_VERSION;

  static py::exception<pyrt::Error> format_error(m, "FormatError", PyExc_ValueError);
  static py::exception<pyrt::Error> unsupported_error(m, "UnsupportedError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const pyrt::Error& e) {
      // Messages may quote bytes from a damaged file: decode with replacement, never fail here.
      const std::string what = e.what();
      py::str msg = py::reinterpret_steal<py::str>(
          PyUnicode_DecodeUTF8(what.data(), static_cast<Py_ssize_t>(what.size()), "replace"));
      switch (e.status()) {
        case PYRT_BAD_FORMAT: py::set_error(format_error, msg); return;
        case PYRT_UNSUPPORTED: py::set_error(unsupported_error, msg); return;
        case PYRT_INVALID_ARGUMENT: py::set_error(PyExc_ValueError, msg); return;
        case PYRT_IO_ERROR: py::set_error(PyExc_OSError, msg); return;
        case PYRT_OUT_OF_MEMORY: py::set_error(PyExc_MemoryError, msg); return;
        default: py::set_error(PyExc_RuntimeError, msg); return;
      }
    }
  });

  pyrt::bindings::bind_kernels(m);
  pyrt::bindings::bind_format(m);
  pyrt::bindings::bind_model(m);
  pyrt::bindings::bind_int8(m);
  pyrt::bindings::bind_binary(m);
}
