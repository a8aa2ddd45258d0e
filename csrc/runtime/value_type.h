// pyruntime: the type of a value flowing between the steps of a plan (docs/RUNTIME.md "Typed values").
#pragma once

#include <cstddef>
#include <cstdint>

namespace pyrt::runtime {

enum class DType : uint8_t {
  f32 = 0,  // float
  i8 = 1,   // int8, symmetric: the real value is scale * q, q in -127..127
  b1 = 2,   // bit-packed signs: a sample of n elements is ceil(n / 64) u64 words, element i at bit i % 64 of
            // word i / 64, 1 for +1 and 0 for -1, bits past n zero
  b1c = 3,  // bit-packed signs of an image [C, H, W] channels-last: pixel p = y * W + x holds ceil(C / 64) words,
            // channel c at bit c % 64 of word c / 64, bits past C zero (what a binary convolution reads)
  i32 = 4,  // int32: token ids (an i32 graph input, and shape ops of one)
};

struct ValueType {
  DType dtype = DType::f32;
  float scale = 0.0f;     // i8 only
  uint32_t channels = 0;  // b1c only

  static ValueType f32() { return {}; }
  static ValueType i8(float scale) { return {DType::i8, scale}; }
  static ValueType b1() { return {DType::b1, 0.0f}; }
  static ValueType b1c(uint32_t channels) { return {DType::b1c, 0.0f, channels}; }
  static ValueType i32() { return {DType::i32, 0.0f}; }
  bool operator==(const ValueType& o) const {
    return dtype == o.dtype && (dtype != DType::i8 || scale == o.scale) && (dtype != DType::b1c || channels == o.channels);
  }
  bool operator!=(const ValueType& o) const { return !(*this == o); }
};

// Bytes of one sample of n elements.
inline uint64_t value_bytes(const ValueType& t, uint64_t n) {
  switch (t.dtype) {
    case DType::f32: return 4 * n;
    case DType::i8: return n;
    case DType::b1: return (n + 63) / 64 * 8;
    case DType::b1c: return n / t.channels * ((t.channels + 63) / 64) * 8;
    case DType::i32: return 4 * n;
  }
  return 0;
}
inline const char* dtype_name(DType d) {
  return d == DType::f32 ? "f32" : d == DType::i8 ? "i8" : d == DType::b1 ? "b1" : d == DType::b1c ? "b1c" : "i32";
}

}  // namespace pyrt::runtime
