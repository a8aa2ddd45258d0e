// pyruntime: whole model files. One implementation of encode and decode; Python reaches both through
// the bindings (pyruntime._core.write_model / read_model).
#pragma once

#include <cstdint>
#include <vector>

#include "common/model_def.h"

namespace pyrt::format {

struct SectionInfo {
  uint32_t type = 0, flags = 0, crc = 0;
  uint64_t offset = 0, size = 0;
};

struct FileInfo {
  uint32_t version = 0;
  uint64_t file_size = 0;
  std::vector<SectionInfo> sections;
  std::vector<uint64_t> tensor_bytes;  // payload bytes of each tensor section, in tensor order
};

// Checks the graph (PYRT_INVALID_ARGUMENT) and serializes the model.
std::vector<uint8_t> write_model(const ModelDef& m);

// Parses, verifies every checksum and decodes a file; throws PYRT_BAD_FORMAT (whatever is wrong, a newer version included) with a
// message naming the part that is wrong. The buffer is not referenced after the call, unless
// borrow_dense is set: then dense tensors point into it (decode_tensor) and it must outlive them.
ModelDef read_model(const uint8_t* data, size_t size, FileInfo* info = nullptr, bool borrow_dense = false);

}  // namespace pyrt::format
