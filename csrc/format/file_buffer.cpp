#include "format/file_buffer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/error.h"
#include "format/crc32.h"
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

#if PYRT_HAVE_MMAP
// Appends up to `want` bytes from fd to buf (fewer at end of file).
void read_upto(int fd, const char* path, std::vector<uint8_t>& buf, uint64_t want) {
  uint8_t chunk[1 << 16];
  while (buf.size() < want) {
    const size_t ask = static_cast<size_t>(std::min<uint64_t>(sizeof chunk, want - buf.size()));
    const ssize_t n = ::read(fd, chunk, ask);
    if (n < 0 && errno == EINTR) continue;
    PYRT_CHECK(n >= 0, PYRT_IO_ERROR, "error reading '", path, "': ", std::strerror(errno));
    if (n == 0) return;
    buf.insert(buf.end(), chunk, chunk + n);
  }
}

// A pipe, a device or an empty file, which may never end (/dev/zero): the header first, then no more than
// the size it declares plus one byte (to show trailing data), and only if the header is intact (its
// checksum, on its own 64 bytes) and declares at most kMaxStreamBytes. A stream that is not a model
// stops after 64 bytes, and the reader names the problem.
void read_stream(int fd, const char* path, std::vector<uint8_t>& buf) {
  read_upto(fd, path, buf, kHeaderSize);
  if (buf.size() < kHeaderSize || std::memcmp(buf.data(), kMagic, sizeof kMagic) != 0) return;
  uint32_t stored_crc = 0;
  std::memcpy(&stored_crc, buf.data() + 60, sizeof stored_crc);
  if (crc32(buf.data(), 60) != stored_crc) return;  // the reader reports the damaged header
  uint64_t declared = 0;
  std::memcpy(&declared, buf.data() + 16, sizeof declared);
  PYRT_CHECK(declared <= FileBuffer::kMaxStreamBytes, PYRT_IO_ERROR, "'", path,
             "' is not a regular file and its header declares ", declared, " bytes, more than the ",
             FileBuffer::kMaxStreamBytes, " a stream may hold: copy it to a regular file first");
  read_upto(fd, path, buf, std::max<uint64_t>(declared, kHeaderSize) + 1);
}

FileBuffer::Identity identity_of(const struct stat& st) {
#if defined(__APPLE__)
  const struct timespec m = st.st_mtimespec, c = st.st_ctimespec;
#else
  const struct timespec m = st.st_mtim, c = st.st_ctim;
#endif
  return {uint64_t(st.st_dev), uint64_t(st.st_ino), uint64_t(st.st_size), int64_t(m.tv_sec), int64_t(m.tv_nsec),
          int64_t(c.tv_sec), int64_t(c.tv_nsec)};
}
#else
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

bool FileBuffer::Identity::operator==(const Identity& o) const {
  return dev == o.dev && ino == o.ino && size == o.size && mtime_s == o.mtime_s && mtime_ns == o.mtime_ns &&
         ctime_s == o.ctime_s && ctime_ns == o.ctime_ns;
}

std::shared_ptr<const FileBuffer> FileBuffer::open(const char* path, Mode mode) {
  PYRT_CHECK(path != nullptr, PYRT_INVALID_ARGUMENT, "path is null");
  std::shared_ptr<FileBuffer> fb(new FileBuffer());
#if PYRT_HAVE_MMAP
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  PYRT_CHECK(fd >= 0, PYRT_IO_ERROR, "cannot open '", path, "': ", std::strerror(errno));
  fb->fd_ = fd;  // closed by the destructor, or below unless it is kept for map()
  struct stat st;
  PYRT_CHECK(::fstat(fd, &st) == 0, PYRT_IO_ERROR, "cannot stat '", path, "': ", std::strerror(errno));
  PYRT_CHECK(!S_ISDIR(st.st_mode), PYRT_IO_ERROR, "cannot read '", path, "': it is a directory");
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    const size_t size = static_cast<size_t>(st.st_size);
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
    if (mode == Mode::map && got == size) {
      fb->path_ = path;
      fb->identity_ = identity_of(st);
      return fb;  // keeps the descriptor
    }
  } else {
    read_stream(fd, path, fb->owned_);
  }
  ::close(fd);
  fb->fd_ = -1;
  return fb;
#else
  (void)mode;
  fb->owned_ = read_stdio(path);
  return fb;
#endif
}

std::shared_ptr<const MappedFile> FileBuffer::map() const {
#if PYRT_HAVE_MMAP
  PYRT_CHECK(fd_ >= 0, PYRT_INTERNAL, "map() of a file that was not opened to be mapped");
  const size_t size = owned_.size();
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd_, 0);
  PYRT_CHECK(p != MAP_FAILED, PYRT_IO_ERROR, "cannot map '", path_, "': ", std::strerror(errno));
  auto mapping = std::make_shared<const MappedFile>(static_cast<const uint8_t*>(p), size);
  // Checked after mapping: a change from here on is the after-load case (file_buffer.h).
  struct stat st;
  PYRT_CHECK(::fstat(fd_, &st) == 0, PYRT_IO_ERROR, "cannot stat '", path_, "': ", std::strerror(errno));
  PYRT_CHECK(identity_of(st) == identity_, PYRT_IO_ERROR, "'", path_,
             "' changed while loading (its size or modification time is not what was read): load it again");
  return mapping;
#else
  return nullptr;
#endif
}

MappedFile::~MappedFile() {
#if PYRT_HAVE_MMAP
  ::munmap(const_cast<uint8_t*>(data_), size_);
#endif
}

FileBuffer::~FileBuffer() {
#if PYRT_HAVE_MMAP
  if (fd_ >= 0) ::close(fd_);
#endif
}

}  // namespace pyrt::format
