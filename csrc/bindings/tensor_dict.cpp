#include "bindings/tensor_dict.h"

#include <pybind11/stl.h>

#include "common/error.h"

namespace py = pybind11;

namespace pyrt::bindings {
namespace {

template <typename T>
std::vector<T> take(const py::dict& d, const char* key) {
  if (!d.contains(key)) return {};
  auto arr = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(d[key]);
  PYRT_CHECK(arr, PYRT_INVALID_ARGUMENT, "tensor field '", key, "' is not convertible to a numeric array");
  return std::vector<T>(arr.data(), arr.data() + arr.size());
}

// int8 values given as any integer array: checked to be in -127..127 (a cast would wrap 200 to -56).
std::vector<int8_t> take_int8(const py::dict& d, const char* key, const std::string& who) {
  const std::vector<int64_t> wide = take<int64_t>(d, key);
  std::vector<int8_t> out(wide.size());
  for (size_t i = 0; i < wide.size(); ++i) {
    PYRT_CHECK(wide[i] >= -127 && wide[i] <= 127, PYRT_INVALID_ARGUMENT, who, ": '", key, "'[", i, "] = ", wide[i],
               " is not in -127..127 (symmetric int8)");
    out[i] = static_cast<int8_t>(wide[i]);
  }
  return out;
}

// Binary signs given as one 0/1 value per element (row-major, 1 for +1), packed into u64 words per row.
std::vector<uint64_t> take_bits(const py::dict& d, const DecodedTensor& t, const std::string& who) {
  PYRT_CHECK(d.contains("bits"), PYRT_INVALID_ARGUMENT, who, ": a binary tensor needs 'bits' (one 0 or 1 per element)");
  const std::vector<int64_t> v = take<int64_t>(d, "bits");
  PYRT_CHECK(v.size() == t.numel(), PYRT_INVALID_ARGUMENT, who, ": 'bits' has ", v.size(), " values for a tensor of ",
             t.numel(), " elements ", "(one 0 or 1 per weight)");
  const uint64_t cols = t.cols(), words = binary_words(cols);
  std::vector<uint64_t> out(t.rows() * words, 0);
  for (uint64_t i = 0; i < v.size(); ++i) {
    PYRT_CHECK(v[i] == 0 || v[i] == 1, PYRT_INVALID_ARGUMENT, who, ": 'bits'[", i, "] = ", v[i],
               " is not 0 (-1) or 1 (+1)");
    const uint64_t r = i / cols, c = i % cols;
    out[r * words + c / 64] |= uint64_t(v[i]) << (c % 64);
  }
  return out;
}

py::array_t<uint8_t> give_bits(const DecodedTensor& t) {
  const uint64_t cols = t.cols(), words = binary_words(cols);
  py::array_t<uint8_t> a(static_cast<py::ssize_t>(t.numel()));
  uint8_t* p = a.mutable_data();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = (t.bits[(i / cols) * words + (i % cols) / 64] >> (i % cols % 64)) & 1;
  return a;
}

template <typename T>
py::array_t<T> give(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

}  // namespace

template <typename T>
T dict_field(const py::dict& d, const char* key, const std::string& who) {
  PYRT_CHECK(d.contains(key), PYRT_INVALID_ARGUMENT, who, ": missing '", key, "'");
  py::object v = d[key];
  try {
    return py::cast<T>(v);
  } catch (const py::cast_error&) {
    fail(PYRT_INVALID_ARGUMENT, who, ": '", key, "' = ", std::string(py::repr(v)).substr(0, 60),
         " has the wrong type or is out of range");
  }
}

template std::string dict_field<std::string>(const py::dict&, const char*, const std::string&);
template uint32_t dict_field<uint32_t>(const py::dict&, const char*, const std::string&);
template std::vector<uint32_t> dict_field<std::vector<uint32_t>>(const py::dict&, const char*, const std::string&);
template std::vector<py::dict> dict_field<std::vector<py::dict>>(const py::dict&, const char*, const std::string&);

Encoding encoding_from_name(const std::string& name) {
  for (Encoding e : {Encoding::dense_f32, Encoding::csr, Encoding::codebook, Encoding::csr_codebook, Encoding::int8,
                     Encoding::csr_int8, Encoding::binary})
    if (name == encoding_name(e)) return e;
  fail(PYRT_INVALID_ARGUMENT, "unknown encoding '", name,
       "' (expected dense, csr, codebook, csr+codebook, int8, csr+int8 or binary)");
}

DecodedTensor tensor_from_dict(const py::dict& d) {
  DecodedTensor t;
  t.name = d.contains("name") ? dict_field<std::string>(d, "name", "tensor") : std::string("tensor");
  const std::string who = "tensor '" + t.name + "'";
  t.encoding = encoding_from_name(d.contains("encoding") ? dict_field<std::string>(d, "encoding", who) : "dense");
  PYRT_CHECK(d.contains("shape"), PYRT_INVALID_ARGUMENT, "tensor '", t.name, "': no shape");
  for (auto v : py::cast<py::sequence>(d["shape"])) {
    const long long dim = py::cast<long long>(v);
    PYRT_CHECK(dim > 0 && dim <= 0xFFFFFFFFll, PYRT_INVALID_ARGUMENT, "tensor '", t.name, "': dimension ", dim,
               " out of range");
    t.shape.push_back(static_cast<uint32_t>(dim));
  }
  t.values = take<float>(d, "values");
  t.rowptr = take<uint32_t>(d, "rowptr");
  t.colidx = take<uint32_t>(d, "colidx");
  t.indices = take<uint8_t>(d, "indices");
  t.centroids = take<float>(d, "centroids");
  t.qvalues = take_int8(d, "qvalues", who);
  t.scales = take<float>(d, "scales");
  if (t.encoding == Encoding::binary) {
    PYRT_CHECK(t.cols() <= kMaxBinaryCols, PYRT_INVALID_ARGUMENT, who, ": a binary weight has at most 2^24 columns");
    t.bits = take_bits(d, t, who);
  }
  if (d.contains("index_bits")) t.index_bits = dict_field<uint32_t>(d, "index_bits", who);
  if (d.contains("gap_bits")) t.gap_bits = dict_field<uint32_t>(d, "gap_bits", who);
  if (has_codebook(t.encoding) && t.index_bits == 0) {
    while ((1u << t.index_bits) < t.centroids.size()) ++t.index_bits;
    if (t.index_bits == 0) t.index_bits = 1;
  }
  t.validate(PYRT_INVALID_ARGUMENT);
  return t;
}

py::str text_to_py(const std::string& s) {
  return py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(s.data(), static_cast<py::ssize_t>(s.size()), "replace"));
}

py::dict tensor_to_dict(const DecodedTensor& t) {
  py::dict d;
  d["name"] = text_to_py(t.name);
  d["encoding"] = encoding_name(t.encoding);
  py::list shape;
  for (uint32_t s : t.shape) shape.append(s);
  d["shape"] = shape;
  if (t.encoding == Encoding::dense_f32 || t.encoding == Encoding::csr) d["values"] = give(t.values);
  if (is_sparse(t.encoding)) {
    d["rowptr"] = give(t.rowptr);
    d["colidx"] = give(t.colidx);
    d["gap_bits"] = t.gap_bits;
  }
  if (is_int8(t.encoding)) d["qvalues"] = give(t.qvalues);
  if (has_scales(t.encoding)) d["scales"] = give(t.scales);
  if (t.encoding == Encoding::binary) d["bits"] = give_bits(t);
  if (has_codebook(t.encoding)) {
    d["indices"] = give(t.indices);
    d["centroids"] = give(t.centroids);
    d["index_bits"] = t.index_bits;
  }
  return d;
}

}  // namespace pyrt::bindings
