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
};

struct ValueType {
  DType dtype = DType::f32;
  float scale = 0.0f;  // i8 only

  static ValueType f32() { return {}; }
  static ValueType i8(float scale) { return {DType::i8, scale}; }
  static ValueType b1() { return {DType::b1, 0.0f}; }
  bool operator==(const ValueType& o) const { return dtype == o.dtype && (dtype != DType::i8 || scale == o.scale); }
  bool operator!=(const ValueType& o) const { return !(*this == o); }
};

// Bytes of one sample of n elements.
inline uint64_t value_bytes(DType d, uint64_t n) {
  return d == DType::f32 ? 4 * n : d == DType::i8 ? n : (n + 63) / 64 * 8;
}
inline const char* dtype_name(DType d) { return d == DType::f32 ? "f32" : d == DType::i8 ? "i8" : "b1"; }

}  // namespace pyrt::runtime
