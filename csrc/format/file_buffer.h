// pyruntime: the bytes of a model file, read into memory or memory-mapped.
//
// Loading from a path either reads the whole file into an owned buffer (the default: the file may be
// changed or deleted right after) or maps it read-only (mmap). A mapped file is shared with the page
// cache: a model loaded from it uses its dense f32 tensors in place (zero-copy, format payloads are
// 64-byte aligned) and keeps the mapping until the model is freed. The file must then not be truncated
// or rewritten while the model lives (as with any mmap, the OS would fault on the missing pages).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace pyrt::format {

class FileBuffer {
 public:
  enum class Mode { read, map };

  // Opens `path` (PYRT_IO_ERROR if it cannot). Mode::map falls back to reading where mmap is not
  // available (non-POSIX builds) or for an empty file.
  static std::shared_ptr<const FileBuffer> open(const char* path, Mode mode);

  FileBuffer(const FileBuffer&) = delete;
  FileBuffer& operator=(const FileBuffer&) = delete;
  ~FileBuffer();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool mapped() const { return mapped_; }

 private:
  FileBuffer() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::vector<uint8_t> owned_;
};

}  // namespace pyrt::format
