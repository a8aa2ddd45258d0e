#include "format/file_buffer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/error.h"
#include "format/format.h"

#if defined(__unix__) || defined(__APPLE__)
#define PYRT_HAVE_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#else
#define PYRT_HAVE_MMAP 0
#endif

namespace pyrt::format {
namespace {

#if !PYRT_HAVE_MMAP
// Reads a whole file in chunks (platforms without POSIX I/O).
std::vector<uint8_t> read_stdio(const char* path) {
  std::FILE* f = std::fopen(path, "rb");
  PYRT_CHECK(f != nullptr, PYRT_IO_ERROR, "cannot open '", path, "': ", std::strerror(errno));
  std::vector<uint8_t> buf;
  uint8_t chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) buf.insert(buf.end(), chunk, chunk + n);
  const bool err = std::ferror(f);
  const int e = errno;
  std::fclose(f);
  PYRT_CHECK(!err, PYRT_IO_ERROR, "error reading '", path, "': ", std::strerror(e));
  return buf;
}
#endif

}  // namespace

std::shared_ptr<const FileBuffer> FileBuffer::open(const char* path, Mode mode) {
  PYRT_CHECK(path != nullptr, PYRT_INVALID_ARGUMENT, "path is null");
  std::shared_ptr<FileBuffer> fb(new FileBuffer());
#if PYRT_HAVE_MMAP
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  PYRT_CHECK(fd >= 0, PYRT_IO_ERROR, "cannot open '", path, "': ", std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};  // a mapping keeps the file alive without the descriptor
  struct stat st;
  PYRT_CHECK(::fstat(fd, &st) == 0, PYRT_IO_ERROR, "cannot stat '", path, "': ", std::strerror(errno));
  PYRT_CHECK(!S_ISDIR(st.st_mode), PYRT_IO_ERROR, "cannot read '", path, "': it is a directory");
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    const size_t size = static_cast<size_t>(st.st_size);
    if (mode == Mode::map) {
      void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      PYRT_CHECK(p != MAP_FAILED, PYRT_IO_ERROR, "cannot map '", path, "': ", std::strerror(errno));
      fb->data_ = static_cast<const uint8_t*>(p);
      fb->size_ = size;
      fb->mapped_ = true;
      return fb;
    }
    fb->owned_.resize(size);  // one allocation of the final size
    size_t got = 0;
    while (got < size) {
      const ssize_t n = ::read(fd, fb->owned_.data() + got, size - got);
      if (n < 0 && errno == EINTR) continue;
      PYRT_CHECK(n >= 0, PYRT_IO_ERROR, "error reading '", path, "': ", std::strerror(errno));
      if (n == 0) break;  // the file shrank meanwhile: the reader reports the size mismatch
      got += static_cast<size_t>(n);
    }
    fb->owned_.resize(got);
  } else {
    // A pipe, a device or an empty file, read from this descriptor. It may never end (/dev/zero), so
    // read the header first and then no more than the size it declares, plus one byte to show
    // trailing data; a stream that is not a model stops after 64 bytes (the reader names the problem).
    auto read_upto = [&](uint64_t want) {
      uint8_t chunk[1 << 16];
      while (fb->owned_.size() < want) {
        const size_t ask = static_cast<size_t>(std::min<uint64_t>(sizeof chunk, want - fb->owned_.size()));
        const ssize_t n = ::read(fd, chunk, ask);
        if (n < 0 && errno == EINTR) continue;
        PYRT_CHECK(n >= 0, PYRT_IO_ERROR, "error reading '", path, "': ", std::strerror(errno));
        if (n == 0) return;
        fb->owned_.insert(fb->owned_.end(), chunk, chunk + n);
      }
    };
    read_upto(kHeaderSize);
    if (fb->owned_.size() == kHeaderSize && std::memcmp(fb->owned_.data(), kMagic, sizeof kMagic) == 0) {
      uint64_t declared = 0;
      std::memcpy(&declared, fb->owned_.data() + 16, sizeof declared);
      read_upto(std::max<uint64_t>(declared, kHeaderSize) + 1);
    }
  }
  fb->data_ = fb->owned_.data();
  fb->size_ = fb->owned_.size();
  return fb;
#else
  (void)mode;
  fb->owned_ = read_stdio(path);
  fb->data_ = fb->owned_.data();
  fb->size_ = fb->owned_.size();
  return fb;
#endif
}

FileBuffer::~FileBuffer() {
#if PYRT_HAVE_MMAP
  if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
#endif
}

}  // namespace pyrt::format
