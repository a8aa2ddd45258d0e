#include "format/model_file.h"

#include <cstring>

#include "common/error.h"
#include "format/bytes.h"
#include "format/crc32.h"
#include "format/format.h"
#include "format/tensor_codec.h"

namespace pyrt::format {
namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void put_shape(ByteWriter& w, const std::vector<uint32_t>& shape) {
  w.put<uint32_t>(static_cast<uint32_t>(shape.size()));
  for (size_t i = 0; i < 4; ++i) w.put<uint32_t>(i < shape.size() ? shape[i] : 0);
}

// FORMAT.md 2: version 5 lists typed inputs and the outputs; versions 1 to 4 have one f32 input and the last
// node's output.
std::vector<uint8_t> graph_payload(const ModelDef& m, uint32_t version) {
  ByteWriter w;
  if (version >= 5) {
    w.put<uint32_t>(static_cast<uint32_t>(m.inputs.size()));
    w.put<uint32_t>(static_cast<uint32_t>(m.outputs.size()));
    w.put<uint32_t>(static_cast<uint32_t>(m.nodes.size()));
    w.put<uint32_t>(0);
    for (const InputDef& in : m.inputs) {
      w.put<uint32_t>(static_cast<uint32_t>(in.type));
      put_shape(w, in.shape);
    }
    for (uint32_t v : m.outputs) w.put<uint32_t>(v);
  } else {
    put_shape(w, m.inputs[0].shape);
    w.put<uint32_t>(static_cast<uint32_t>(m.nodes.size()));
    w.put<uint32_t>(0);
  }
  for (const NodeDef& n : m.nodes) {
    w.put<uint16_t>(static_cast<uint16_t>(n.op));
    w.put<uint8_t>(static_cast<uint8_t>(n.inputs.size()));
    w.put<uint8_t>(static_cast<uint8_t>(n.tensors.size()));
    w.put<uint32_t>(static_cast<uint32_t>(n.attrs.size() * 4));
    for (uint32_t v : n.inputs) w.put<uint32_t>(v);
    for (uint32_t t : n.tensors) w.put<uint32_t>(t);
    for (uint32_t a : n.attrs) w.put<uint32_t>(a);
  }
  return std::move(w.bytes());
}

std::vector<uint32_t> get_shape(ByteReader& r, uint32_t input) {
  const uint32_t rank = r.get<uint32_t>();
  uint32_t dims[4];
  for (auto& d : dims) d = r.get<uint32_t>();
  PYRT_CHECK(rank >= 1 && rank <= 4, PYRT_BAD_FORMAT, "graph section: input rank ", rank, " not in 1..4 (input ",
             input, ")");
  std::vector<uint32_t> shape;
  for (uint32_t i = 0; i < 4; ++i) {
    PYRT_CHECK(i < rank ? dims[i] > 0 : dims[i] == 0, PYRT_BAD_FORMAT, "graph section: input dimension ", i, " is ",
               dims[i], " (input ", input, ")");
    if (i < rank) shape.push_back(dims[i]);
  }
  return shape;
}

void parse_graph(const uint8_t* p, size_t size, uint32_t version, ModelDef* m) {
  ByteReader r(p, size, "graph section");
  uint32_t count = 0;
  if (version >= 5) {
    const uint32_t n_in = r.get<uint32_t>(), n_out = r.get<uint32_t>();
    count = r.get<uint32_t>();
    r.get<uint32_t>();
    PYRT_CHECK(n_in >= 1 && n_in <= kMaxGraphInputs, PYRT_BAD_FORMAT, "graph section: input count ", n_in,
               " not in 1..", kMaxGraphInputs);
    PYRT_CHECK(n_out >= 1 && n_out <= kMaxGraphOutputs, PYRT_BAD_FORMAT, "graph section: output count ", n_out,
               " not in 1..", kMaxGraphOutputs);
    for (uint32_t k = 0; k < n_in; ++k) {
      const uint32_t type = r.get<uint32_t>();
      PYRT_CHECK(type <= 1, PYRT_BAD_FORMAT, "graph section: input ", k, " has type ", type,
                 " (0 = f32, 1 = i32)");
      std::vector<uint32_t> shape = get_shape(r, k);
      m->inputs.push_back({std::move(shape), static_cast<ElemType>(type)});
    }
    for (uint32_t k = 0; k < n_out; ++k) m->outputs.push_back(r.get<uint32_t>());
  } else {
    m->inputs.push_back({get_shape(r, 0), ElemType::f32});
    count = r.get<uint32_t>();
    r.get<uint32_t>();
  }
  PYRT_CHECK(count >= 1 && count <= kMaxNodes, PYRT_BAD_FORMAT, "graph section: node count ", count,
             " not in 1..", kMaxNodes);
  PYRT_CHECK(uint64_t(count) * 8 <= r.remaining(), PYRT_BAD_FORMAT, "graph section: ", count,
             " nodes cannot fit in ", r.remaining(), " bytes");
  m->nodes.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    NodeDef& n = m->nodes[i];
    const uint16_t op = r.get<uint16_t>();
    const uint8_t n_in = r.get<uint8_t>();
    const uint8_t n_t = r.get<uint8_t>();
    const uint32_t attr = r.get<uint32_t>();
    const OpSchema* schema = op_schema(op);
    PYRT_CHECK(schema != nullptr, PYRT_BAD_FORMAT, "graph section: node ", i, " has unknown op code ", op,
               " (this reader knows 1..", op_schemas().size(), ")");
    PYRT_CHECK(schema->version <= version, PYRT_BAD_FORMAT, "graph section: node ", i, " (", schema->name,
               ") needs format version ", schema->version, ", the file says ", version);
    n.op = schema->op;
    PYRT_CHECK(n_in <= kMaxNodeInputs && n_t <= kMaxNodeTensors, PYRT_BAD_FORMAT, "graph section: node ", i,
               " has too many inputs or tensors");
    PYRT_CHECK(attr <= kMaxAttrBytes && attr % 4 == 0, PYRT_BAD_FORMAT, "graph section: node ", i,
               " has attribute size ", attr);
    for (uint32_t k = 0; k < n_in; ++k) n.inputs.push_back(r.get<uint32_t>());
    for (uint32_t k = 0; k < n_t; ++k) n.tensors.push_back(r.get<uint32_t>());
    PYRT_CHECK(attr == schema->attr_words() * 4, PYRT_BAD_FORMAT, "graph section: node ", i, " (", schema->name,
               ") has ", attr, " attribute bytes, the op takes ", schema->attr_words() * 4);
    for (uint32_t k = 0; k < attr / 4; ++k) n.attrs.push_back(r.get<uint32_t>());
  }
  PYRT_CHECK(r.remaining() == 0, PYRT_BAD_FORMAT, "graph section: ", r.remaining(), " trailing bytes");
  if (version < 5) m->outputs = {m->node_value(count - 1)};
}

}  // namespace

std::vector<uint8_t> write_model(const ModelDef& m) {
  for (const auto& t : m.tensors) t.validate(PYRT_INVALID_ARGUMENT);
  const uint32_t version = graph_version(m, check_graph(m, PYRT_INVALID_ARGUMENT));

  struct Section {
    uint32_t type, flags;
    std::vector<uint8_t> payload;
  };
  std::vector<Section> sections;
  sections.push_back({kSectionGraph, kSectionRequired, graph_payload(m, version)});
  for (const auto& t : m.tensors) {
    ByteWriter w;
    encode_tensor(w, t);
    sections.push_back({kSectionTensor, kSectionRequired, std::move(w.bytes())});
  }
  if (!m.metadata.empty())
    sections.push_back({kSectionMetadata, 0, std::vector<uint8_t>(m.metadata.begin(), m.metadata.end())});

  ByteWriter table;
  uint64_t offset = align_up(kHeaderSize + kSectionEntrySize * sections.size(), kPayloadAlign);
  for (const auto& s : sections) {
    table.put<uint32_t>(s.type);
    table.put<uint32_t>(s.flags);
    table.put<uint64_t>(offset);
    table.put<uint64_t>(s.payload.size());
    table.put<uint32_t>(crc32(s.payload.data(), s.payload.size()));
    table.put<uint32_t>(0);
    offset = align_up(offset + s.payload.size(), kPayloadAlign);
  }

  ByteWriter out;
  out.put_bytes(kMagic, sizeof kMagic);
  out.put<uint32_t>(version);  // the lowest version that holds the graph: MLP files stay version 1
  out.put<uint32_t>(0);
  const size_t file_size_at = out.size();
  out.put<uint64_t>(0);  // file_size, patched below: the file ends right after the last payload
  out.put<uint32_t>(static_cast<uint32_t>(sections.size()));
  out.put<uint32_t>(crc32(table.bytes().data(), table.size()));
  for (int i = 0; i < 28; ++i) out.put<uint8_t>(0);
  out.put<uint32_t>(0);  // header crc, patched below
  out.put_bytes(table.bytes().data(), table.size());
  for (const auto& s : sections) {
    out.pad_to(kPayloadAlign);
    out.put_bytes(s.payload.data(), s.payload.size());
  }
  std::vector<uint8_t>& bytes = out.bytes();
  const uint64_t real_size = bytes.size();
  std::memcpy(bytes.data() + file_size_at, &real_size, 8);
  const uint32_t hcrc = crc32(bytes.data(), 60);
  std::memcpy(bytes.data() + 60, &hcrc, 4);
  return std::move(bytes);
}

ModelDef read_model(const uint8_t* data, size_t size, FileInfo* info, bool borrow_dense) {
  PYRT_CHECK(data != nullptr || size == 0, PYRT_INVALID_ARGUMENT, "model buffer is null");
  PYRT_CHECK(size >= kHeaderSize, PYRT_BAD_FORMAT, "file header: file is ", size, " bytes, shorter than the ",
             kHeaderSize, "-byte header");
  PYRT_CHECK(std::memcmp(data, kMagic, sizeof kMagic) == 0, PYRT_BAD_FORMAT,
             "file header: wrong magic (not a .pyrt model file)");
  ByteReader h(data, kHeaderSize, "file header");
  h.take(8);
  const uint32_t version = h.get<uint32_t>();
  const uint32_t flags = h.get<uint32_t>();
  const uint64_t file_size = h.get<uint64_t>();
  const uint32_t count = h.get<uint32_t>();
  const uint32_t table_crc = h.get<uint32_t>();
  h.take(28);
  const uint32_t header_crc = h.get<uint32_t>();
  PYRT_CHECK(version >= 1, PYRT_BAD_FORMAT, "file header: version 0 is not a valid version");
  PYRT_CHECK(version <= kVersion, PYRT_BAD_FORMAT, "file header: file format version ", version,
             " is newer than this reader (reads versions 1..", kVersion, "); upgrade pyruntime");
  PYRT_CHECK(crc32(data, 60) == header_crc, PYRT_BAD_FORMAT, "file header: checksum mismatch (header corrupted)");
  PYRT_CHECK(flags == 0, PYRT_BAD_FORMAT, "file header: flags 0x", std::hex, flags,
             " are not defined (this reader knows none)");
  PYRT_CHECK(file_size == size, PYRT_BAD_FORMAT, "file header: file should be ", file_size, " bytes, got ", size,
             file_size > size ? " (truncated)" : " (trailing data)");
  PYRT_CHECK(count >= 1 && count <= kMaxSections, PYRT_BAD_FORMAT, "file header: section count ", count,
             " not in 1..", kMaxSections);
  const uint64_t table_end = kHeaderSize + uint64_t(count) * kSectionEntrySize;
  PYRT_CHECK(table_end <= size, PYRT_BAD_FORMAT, "section table: ", count, " entries run past the end of the file");
  PYRT_CHECK(crc32(data + kHeaderSize, table_end - kHeaderSize) == table_crc, PYRT_BAD_FORMAT,
             "section table: checksum mismatch (table corrupted)");

  ModelDef m;
  FileInfo fi;
  fi.version = version;
  fi.file_size = size;
  ByteReader t(data + kHeaderSize, table_end - kHeaderSize, "section table");
  bool have_graph = false;
  const uint8_t* graph_p = nullptr;
  uint64_t graph_size = 0;
  uint64_t prev_end = table_end;
  for (uint32_t i = 0; i < count; ++i) {
    SectionInfo s;
    s.type = t.get<uint32_t>();
    s.flags = t.get<uint32_t>();
    s.offset = t.get<uint64_t>();
    s.size = t.get<uint64_t>();
    s.crc = t.get<uint32_t>();
    t.get<uint32_t>();
    const std::string who = "section " + std::to_string(i);
    PYRT_CHECK(s.offset % kPayloadAlign == 0, PYRT_BAD_FORMAT, who, ": offset ", s.offset, " is not 64-byte aligned");
    PYRT_CHECK(s.offset >= prev_end && s.offset <= size && s.size <= size - s.offset, PYRT_BAD_FORMAT, who,
               ": bytes [", s.offset, ", +", s.size, ") overlap another section or run past the end of the file (",
               size, " bytes)");
    prev_end = s.offset + s.size;
    const uint8_t* p = data + s.offset;
    PYRT_CHECK(crc32(p, s.size) == s.crc, PYRT_BAD_FORMAT, who, " (type ", s.type,
               "): checksum mismatch (payload corrupted)");
    fi.sections.push_back(s);
    switch (s.type) {
      case kSectionGraph:
        PYRT_CHECK(!have_graph, PYRT_BAD_FORMAT, who, ": a second graph section");
        have_graph = true;
        graph_p = p;
        graph_size = s.size;
        break;
      case kSectionTensor: {
        ByteReader r(p, s.size, who);
        try {
          m.tensors.push_back(decode_tensor(r, static_cast<uint32_t>(m.tensors.size()), borrow_dense));
          const DecodedTensor& t = m.tensors.back();
          PYRT_CHECK(encoding_version(t.encoding) <= version, PYRT_BAD_FORMAT, "tensor '", t.name, "': encoding ",
                     encoding_name(t.encoding), " needs format version ", encoding_version(t.encoding),
                     ", the file says ", version);
        } catch (const Error& e) {  // say which section too: a damaged name alone may not
          throw Error(e.status(), who + " (tensor #" + std::to_string(m.tensors.size()) + "): " + e.what());
        }
        fi.tensor_bytes.push_back(s.size);
        break;
      }
      case kSectionMetadata:
        m.metadata.assign(reinterpret_cast<const char*>(p), s.size);
        break;
      default:
        PYRT_CHECK(!(s.flags & kSectionRequired), PYRT_BAD_FORMAT, who, ": unknown required section type ", s.type,
                   " (this reader knows 1..3; optional sections of unknown type are skipped)");
        break;  // unknown optional section: skipped
    }
  }
  PYRT_CHECK(prev_end == size, PYRT_BAD_FORMAT, "file: ", size - prev_end,
             " bytes after the end of the last section (section ", count - 1, ")");
  PYRT_CHECK(have_graph, PYRT_BAD_FORMAT, "file has no graph section");
  parse_graph(graph_p, graph_size, version, &m);
  const uint32_t needs = graph_version(m, check_graph(m, PYRT_BAD_FORMAT));
  PYRT_CHECK(needs <= version, PYRT_BAD_FORMAT, "graph: needs format version ", needs, " (a broadcast or tensor "
             "operand of add, or a linear over more than one axis), the file says ", version);
  if (info) *info = std::move(fi);
  return m;
}

}  // namespace pyrt::format
