// pyruntime bindings: the one writer and reader of the file format, plus the symbol-stream codec for
// tests. Models cross as dicts:
//   {"inputs": [{"shape": [..], "type": "f32" | "i32"}, ..], "outputs": [value ids],
//    "nodes": [{"op": "linear", "inputs": [0], "tensors": [0, 1], "attrs": {..}}, ...],
//    "tensors": [tensor dicts (tensor_dict.h)], "metadata": str}
// "input_shape": [..] may stand for one f32 input, and "outputs" defaults to the last node's value (what
// format versions 1 to 4 hold); a dict read back has both "inputs" and "input_shape" (the first input's).
// Node attrs map the op table's fields (common/op_schema.h) by name: an int / float for a one-word field,
// a list for the others ("shape" of reshape: 1..4 dims). Ops without fields take no "attrs" (or {}).
#include <cstring>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/tensor_dict.h"
#include "common/error.h"
#include "format/huffman.h"
#include "format/model_file.h"
#include "format/symbol_stream.h"
#include "format/tensor_codec.h"

namespace py = pybind11;

namespace pyrt::bindings {
namespace {

uint32_t attr_word(const py::handle& v, const AttrField& f, const std::string& who) {
  try {
    if (f.is_float) {
      const float x = py::cast<float>(v);
      uint32_t w;
      std::memcpy(&w, &x, 4);
      return w;
    }
    PYRT_CHECK(!py::isinstance<py::bool_>(v), PYRT_INVALID_ARGUMENT, who, ": '", f.name,
               "' must be an integer, got a bool");
    const long long x = py::cast<long long>(v);
    PYRT_CHECK(x >= 0 && x <= UINT32_MAX && !py::isinstance<py::float_>(v), PYRT_INVALID_ARGUMENT, who, ": '", f.name,
               "' must be a non-negative integer, got ", std::string(py::repr(v)));
    return static_cast<uint32_t>(x);
  } catch (const py::cast_error&) {
    fail(PYRT_INVALID_ARGUMENT, who, ": '", f.name, "' must be ", f.is_float ? "a number" : "an integer", ", got ",
         std::string(py::repr(v)));
  }
}

std::vector<uint32_t> attrs_from_dict(const OpSchema& s, const py::dict& nd, const std::string& who) {
  std::vector<uint32_t> words;
  py::dict a;
  if (nd.contains("attrs") && !nd["attrs"].is_none()) {
    PYRT_CHECK(py::isinstance<py::dict>(nd["attrs"]), PYRT_INVALID_ARGUMENT, who, ": 'attrs' must be a dict");
    a = nd["attrs"];
  }
  for (auto item : a) {
    const std::string key = py::cast<std::string>(py::str(item.first));
    bool known = false;
    for (const AttrField& f : s.attrs) known |= key == f.name;
    PYRT_CHECK(known, PYRT_INVALID_ARGUMENT, who, ": op ", s.name, " has no attribute '", key, "'");
  }
  for (const AttrField& f : s.attrs) {
    PYRT_CHECK(a.contains(f.name), PYRT_INVALID_ARGUMENT, who, ": op ", s.name, " needs attribute '", f.name, "'");
    py::object v = a[f.name];
    if (f.count == 1) {
      words.push_back(attr_word(v, f, who));
      continue;
    }
    PYRT_CHECK(py::isinstance<py::sequence>(v) && !py::isinstance<py::str>(v), PYRT_INVALID_ARGUMENT, who, ": '",
               f.name, "' must be a list of ", int(f.count), " values");
    const py::sequence seq = v;
    const bool shape = std::string(f.name) == "shape";  // reshape: 1..4 dims, padded with zeros
    PYRT_CHECK(shape ? seq.size() >= 1 && seq.size() <= f.count : seq.size() == f.count, PYRT_INVALID_ARGUMENT, who,
               ": '", f.name, "' must have ", shape ? "1.." : "", int(f.count), " values, has ", seq.size());
    for (size_t i = 0; i < f.count; ++i) words.push_back(i < seq.size() ? attr_word(seq[i], f, who) : 0u);
  }
  return words;
}

py::dict attrs_to_dict(const NodeDef& n) {
  py::dict d;
  size_t at = 0;
  for (const AttrField& f : op_schema(n.op).attrs) {
    auto value = [&](size_t i) -> py::object {
      const uint32_t w = n.attrs[at + i];
      if (!f.is_float) return py::int_(w);
      float x;
      std::memcpy(&x, &w, 4);
      return py::float_(x);
    };
    if (f.count == 1) {
      d[f.name] = value(0);
    } else {
      py::list l;
      for (size_t i = 0; i < f.count; ++i)
        if (!(std::string(f.name) == "shape" && n.attrs[at + i] == 0)) l.append(value(i));
      d[f.name] = l;
    }
    at += f.count;
  }
  return d;
}

ModelDef model_from_dict(const py::dict& d) {
  ModelDef m;
  if (d.contains("inputs")) {
    const auto inputs = dict_field<std::vector<py::dict>>(d, "inputs", "model");
    for (size_t k = 0; k < inputs.size(); ++k) {
      const std::string who = "model input " + std::to_string(k);
      InputDef in;
      in.shape = dict_field<std::vector<uint32_t>>(inputs[k], "shape", who);
      const std::string type = inputs[k].contains("type") ? dict_field<std::string>(inputs[k], "type", who) : "f32";
      PYRT_CHECK(type == "f32" || type == "i32", PYRT_INVALID_ARGUMENT, who, ": type '", type,
                 "' is not f32 or i32");
      in.type = type == "i32" ? ElemType::i32 : ElemType::f32;
      m.inputs.push_back(std::move(in));
    }
  } else {
    m.inputs.push_back({dict_field<std::vector<uint32_t>>(d, "input_shape", "model input"), ElemType::f32});
  }
  const auto nodes = dict_field<std::vector<py::dict>>(d, "nodes", "model");
  for (size_t i = 0; i < nodes.size(); ++i) {
    const py::dict& nd = nodes[i];
    const std::string who = "node " + std::to_string(i);
    NodeDef n;
    const std::string op = dict_field<std::string>(nd, "op", who);
    PYRT_CHECK(op_from_name(op, &n.op), PYRT_UNSUPPORTED, who, ": unsupported op '", op, "' (supported: ",
               op_names(), ")");
    n.inputs = dict_field<std::vector<uint32_t>>(nd, "inputs", who);
    if (nd.contains("tensors")) n.tensors = dict_field<std::vector<uint32_t>>(nd, "tensors", who);
    n.attrs = attrs_from_dict(op_schema(n.op), nd, who + " (" + op + ")");
    m.nodes.push_back(std::move(n));
  }
  if (d.contains("tensors"))
    for (const py::dict& td : dict_field<std::vector<py::dict>>(d, "tensors", "model"))
      m.tensors.push_back(tensor_from_dict(td));
  if (d.contains("metadata") && !d["metadata"].is_none()) m.metadata = dict_field<std::string>(d, "metadata", "model");
  if (d.contains("outputs") && !d["outputs"].is_none())
    m.outputs = dict_field<std::vector<uint32_t>>(d, "outputs", "model");
  else if (!m.nodes.empty())
    m.outputs = {m.node_value(m.nodes.size() - 1)};
  return m;
}

py::dict model_to_dict(const ModelDef& m, const format::FileInfo& info) {
  py::dict d;
  d["input_shape"] = m.inputs[0].shape;
  py::list inputs;
  for (const InputDef& in : m.inputs) {
    py::dict id;
    id["shape"] = in.shape;
    id["type"] = elem_type_name(in.type);
    inputs.append(id);
  }
  d["inputs"] = inputs;
  d["outputs"] = m.outputs;
  py::list nodes;
  for (const auto& n : m.nodes) {
    py::dict nd;
    nd["op"] = op_name(n.op);
    nd["inputs"] = n.inputs;
    nd["tensors"] = n.tensors;
    nd["attrs"] = attrs_to_dict(n);
    nodes.append(nd);
  }
  d["nodes"] = nodes;
  py::list tensors;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    py::dict td = tensor_to_dict(m.tensors[i]);
    td["file_bytes"] = info.tensor_bytes[i];
    tensors.append(td);
  }
  d["tensors"] = tensors;
  d["metadata"] = text_to_py(m.metadata);
  d["version"] = info.version;
  d["file_size"] = info.file_size;
  py::list sections;
  for (const auto& s : info.sections) {
    py::dict sd;
    sd["type"] = s.type;
    sd["flags"] = s.flags;
    sd["offset"] = s.offset;
    sd["size"] = s.size;
    sd["crc"] = s.crc;
    sections.append(sd);
  }
  d["sections"] = sections;
  return d;
}

std::string_view view(const py::buffer& b, py::buffer_info& info) {
  info = b.request();
  PYRT_CHECK(info.ndim <= 1 && (info.ndim == 0 || info.strides[0] == info.itemsize), PYRT_INVALID_ARGUMENT,
             "expected a contiguous bytes-like object");
  return std::string_view(static_cast<const char*>(info.ptr), static_cast<size_t>(info.size * info.itemsize));
}

}  // namespace

std::string_view buffer_bytes(const py::buffer& b, py::buffer_info& info) { return view(b, info); }

void bind_format(py::module_& m) {
  m.def(
      "write_model",
      [](const py::dict& d) {
        ModelDef def = model_from_dict(d);
        std::vector<uint8_t> bytes;
        {
          py::gil_scoped_release release;
          bytes = format::write_model(def);
        }
        return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      },
      py::arg("model"), "Serializes a model dict to .pyrt bytes (validates the graph first).");
  m.def(
      "read_model",
      [](const py::buffer& data) {
        py::buffer_info info;
        const std::string_view b = view(data, info);
        format::FileInfo fi;
        ModelDef def;
        {
          py::gil_scoped_release release;
          def = format::read_model(reinterpret_cast<const uint8_t*>(b.data()), b.size(), &fi);
        }
        return model_to_dict(def, fi);
      },
      py::arg("data"), "Parses and validates .pyrt bytes into a model dict (decoded tensors).");
  m.def(
      "encoded_tensor_bytes",
      [](const py::dict& t) { return format::encoded_tensor_bytes(tensor_from_dict(t)); }, py::arg("tensor"),
      "Bytes the tensor's section payload takes in a file (gap width and codings chosen as the writer does).");
  m.def(
      "encode_symbol_stream",
      [](py::array_t<uint8_t, py::array::c_style | py::array::forcecast> symbols, unsigned bits) {
        format::ByteWriter w;
        format::write_symbol_stream(w, symbols.data(), static_cast<size_t>(symbols.size()), bits);
        return py::bytes(reinterpret_cast<const char*>(w.bytes().data()), w.size());
      },
      py::arg("symbols"), py::arg("bits"));
  m.def(
      "decode_symbol_stream",
      [](const py::buffer& data, unsigned bits, uint64_t count) {
        py::buffer_info info;
        const std::string_view b = view(data, info);
        format::ByteReader r(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "symbol stream");
        auto out = format::read_symbol_stream(r, bits, count, count, "symbol stream");
        PYRT_CHECK(r.remaining() == 0, PYRT_BAD_FORMAT, "symbol stream: ", r.remaining(), " trailing bytes");
        py::array_t<uint8_t> a(static_cast<py::ssize_t>(out.size()));
        if (!out.empty()) std::memcpy(a.mutable_data(), out.data(), out.size());
        return a;
      },
      py::arg("data"), py::arg("bits"), py::arg("count"));
  m.def(
      "huffman_code_lengths",
      [](const std::vector<uint64_t>& freqs) {
        PYRT_CHECK(freqs.size() <= 256, PYRT_INVALID_ARGUMENT, "at most 256 symbols");
        return format::huffman_code_lengths(freqs);
      },
      py::arg("freqs"));
}

}  // namespace pyrt::bindings
