// pyruntime: little-endian byte buffers for the file format. ByteReader checks every read against the
// bytes it was given and throws PYRT_BAD_FORMAT naming `what` when the data ends early.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"

namespace pyrt::format {

class ByteWriter {
 public:
  template <typename T>
  void put(T v) {  // integers and floats, little-endian (the hosts we build for are little-endian)
    const size_t at = buf_.size();
    buf_.resize(at + sizeof(T));
    std::memcpy(buf_.data() + at, &v, sizeof(T));
  }
  void put_bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  void pad_to(size_t multiple) {
    while (buf_.size() % multiple) buf_.push_back(0);
  }
  size_t size() const { return buf_.size(); }
  std::vector<uint8_t>& bytes() { return buf_; }

 private:
  std::vector<uint8_t> buf_;
};

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, std::string what) : p_(data), size_(size), what_(std::move(what)) {}

  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  // Returns a pointer to the next n bytes and skips them.
  const uint8_t* take(uint64_t n) {
    need(n);
    const uint8_t* at = p_ + pos_;
    pos_ += n;
    return at;
  }
  void skip_to_multiple(size_t multiple) {
    const size_t target = (pos_ + multiple - 1) / multiple * multiple;
    need(target - pos_);
    pos_ = target;
  }
  void need(uint64_t n) const {
    PYRT_CHECK(n <= size_ - pos_, PYRT_BAD_FORMAT, what_, ": data ends early (needs ", n, " more bytes at offset ",
               pos_, " of ", size_, ")");
  }
  size_t position() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  const std::string& what() const { return what_; }

 private:
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace pyrt::format
