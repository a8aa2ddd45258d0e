// pyruntime: the type of a value flowing between the steps of a plan (docs/RUNTIME.md "Typed values").
#pragma once

#include <cstddef>
#include <cstdint>

namespace pyrt::runtime {

enum class DType : uint8_t {
  f32 = 0,  // float
  i8 = 1,   // int8, symmetric: the real value is scale * q, q in -127..127
};

struct ValueType {
  DType dtype = DType::f32;
  float scale = 0.0f;  // i8 only

  static ValueType f32() { return {}; }
  static ValueType i8(float scale) { return {DType::i8, scale}; }
  bool operator==(const ValueType& o) const { return dtype == o.dtype && (dtype == DType::f32 || scale == o.scale); }
  bool operator!=(const ValueType& o) const { return !(*this == o); }
};

inline size_t dtype_bytes(DType d) { return d == DType::f32 ? 4 : 1; }
inline const char* dtype_name(DType d) { return d == DType::f32 ? "f32" : "i8"; }

}  // namespace pyrt::runtime
