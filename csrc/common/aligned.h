// pyruntime: 64-byte aligned owned array (cache-line and AVX-512 aligned), with an optional tail of
// zero padding so vector kernels may over-read past the last element (the padding is documented
// where a kernel relies on it).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace pyrt {

constexpr size_t kAlignment = 64;

template <typename T>
class AlignedArray {
 public:
  AlignedArray() = default;
  explicit AlignedArray(size_t n, size_t pad_bytes = kAlignment) { resize(n, pad_bytes); }
  AlignedArray(const AlignedArray&) = delete;
  AlignedArray& operator=(const AlignedArray&) = delete;
  AlignedArray(AlignedArray&& o) noexcept { swap(o); }
  AlignedArray& operator=(AlignedArray&& o) noexcept {
    swap(o);
    return *this;
  }
  ~AlignedArray() { std::free(data_); }

  // Zero-filled storage for n elements plus pad_bytes of zeros after them.
  void resize(size_t n, size_t pad_bytes = kAlignment) {
    std::free(data_);
    data_ = nullptr;
    size_ = n;
    size_t bytes = n * sizeof(T) + pad_bytes;
    bytes = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    if (bytes == 0) bytes = kAlignment;
    data_ = static_cast<T*>(std::aligned_alloc(kAlignment, bytes));
    if (data_ == nullptr) throw std::bad_alloc();
    std::memset(static_cast<void*>(data_), 0, bytes);
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }

 private:
  void swap(AlignedArray& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
  }
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace pyrt
