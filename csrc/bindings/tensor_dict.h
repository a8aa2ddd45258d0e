// pyruntime bindings: a DecodedTensor <-> a Python dict of numpy arrays.
//   {"name": str, "encoding": "dense"|"csr"|"codebook"|"csr+codebook", "shape": [..],
//    "values": f32, "rowptr": u32, "colidx": u32, "indices": u8, "centroids": f32,
//    "index_bits": int, "gap_bits": int}
// Only the keys an encoding uses need to be present.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "common/tensor.h"

namespace pyrt::bindings {

Encoding encoding_from_name(const std::string& name);

// d[key] converted to T; a missing key or a value of the wrong type or range is a ValueError
// (PYRT_INVALID_ARGUMENT) naming `who` and the key, never a bare cast error.
template <typename T>
T dict_field(const pybind11::dict& d, const char* key, const std::string& who);
DecodedTensor tensor_from_dict(const pybind11::dict& d);
pybind11::dict tensor_to_dict(const DecodedTensor& t);
// Text from a file as a Python str, undecodable bytes replaced (U+FFFD) rather than raising.
pybind11::str text_to_py(const std::string& s);

}  // namespace pyrt::bindings
