// pyruntime: the bytes of a model file, read into memory, and (on request) a read-only mapping of it.
//
// Loading from a path always reads the whole file into an owned buffer with read(2): the reader
// validates and decodes from that copy, so a file truncated or rewritten while it loads gives a short
// read (a format error naming the size) and never a fault. Mode::map also keeps the descriptor, so that
// once the model is known to be worth using in place (dense f32 tensors at least half of the file), the
// loader can map the same file (map()) and point the dense tensors into the mapping instead of copying
// them; nothing touches the mapping while loading.
//
// After the load, a mapping is shared with the page cache: if the file is then truncated, the process
// gets SIGBUS at the next run that reads a missing page, and if it is rewritten in place, the model
// computes with the new bytes. That is the contract of every memory-mapped file (SQLite, LMDB, numpy
// memmap). Replace a model file by writing a new one and renaming it over the old one (the mapping
// keeps the old inode), never by rewriting it in place.
//
// Pipes, devices and other non-regular files are read through the header first: the header's checksum
// is checked on its 64 bytes, and the size it declares must be at most kMaxStreamBytes, before more is
// read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pyrt::format {

// A read-only mapping of a whole file, unmapped when the last reference goes.
class MappedFile {
 public:
  MappedFile(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_;
  size_t size_;
};

class FileBuffer {
 public:
  enum class Mode { read, map };
  // The most a non-regular file (a pipe, a device) may declare in its header: 2 GiB.
  static constexpr uint64_t kMaxStreamBytes = uint64_t(1) << 31;

  // Opens and reads `path` (PYRT_IO_ERROR if it cannot, and for a stream declaring more than
  // kMaxStreamBytes). Mode::map keeps the descriptor of a non-empty regular file for
  // map(); where mmap is not available (non-POSIX builds) it is the same as Mode::read.
  static std::shared_ptr<const FileBuffer> open(const char* path, Mode mode);

  FileBuffer(const FileBuffer&) = delete;
  FileBuffer& operator=(const FileBuffer&) = delete;
  ~FileBuffer();

  const uint8_t* data() const { return owned_.data(); }
  size_t size() const { return owned_.size(); }
  // True when map() can map the file (Mode::map on a non-empty regular file, on POSIX).
  bool mappable() const { return fd_ >= 0; }

  // Maps the file that was read, read-only, after checking that it is still the file that was read: the
  // same device and inode, the same size as the bytes read, and the same modification and status-change
  // times (PYRT_IO_ERROR "changed while loading" otherwise). The mapping's pages are not touched here.
  std::shared_ptr<const MappedFile> map() const;

 private:
  FileBuffer() = default;
  std::vector<uint8_t> owned_;
  int fd_ = -1;
  std::string path_;

 public:
  struct Identity {
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_s = 0, mtime_ns = 0, ctime_s = 0, ctime_ns = 0;
    bool operator==(const Identity& o) const;
  };

 private:
  Identity identity_;
};

}  // namespace pyrt::format
