// pyruntime: execution layouts of int8 weights, the activations they multiply, and the epilogue every int8
// kernel applies (docs/RUNTIME.md "int8 numerics"). The scalar references (kernels/ref/int8_gemm.cpp) run
// on these same layouts and are the oracles: every kernel gives their results bit for bit, since the
// products are summed exactly in int32 and the epilogue is a fixed sequence of f32 operations.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/ref/quantize.h"

namespace pyrt::kernels {

// Dense int8, "i8_r16k4": rows in blocks of 16 and columns in groups of 4. Block (rb, g), 64 bytes at
// w + (rb * kp / 4 + g) * 64, holds rows 16 rb .. 16 rb + 15, each as its 4 weights of columns 4 g .. 4 g + 3
// (row-major within the block: one 32-bit lane per row, as vpdpbusd / vpmaddubsw + vpmaddwd consume them).
// Rows are padded to a multiple of 16 and columns to kp (a multiple of 4) with zeros.
struct Int8Dense {
  const int8_t* w;
  const int32_t* rowsum;  // per padded row: the sum of its weights (the VNNI kernels' offset correction)
  uint32_t rows, cols, kp;
};
static_assert(sizeof(int32_t) * 16 == 64, "a block's 16 row lanes fill one 512-bit register");

// Sparse int8, "i8_csr": CSR rows with 16-bit columns (32-bit when cols > 65536) and int8 values.
struct Int8Csr {
  const uint32_t* rowptr;
  const uint16_t* col16;  // null when col32 is used
  const uint32_t* col32;
  const int8_t* val;
  uint32_t rows, cols;
  uint32_t col(uint32_t j) const { return col16 ? col16[j] : col32[j]; }
};

// The activations: `batch` rows of kp int8 in -127..127 (row b at q + b * ldq, zero from cols to kp), plus
// kInt8ActPad readable bytes after the last row (the sparse kernels gather 4 bytes at a column), and the
// scale of each row (dynamic: per sample; static: the same for all).
constexpr size_t kInt8ActPad = 64;
struct Int8Act {
  const int8_t* q;
  const float* xs;
  size_t batch, ldq;
};

// What happens to an output's int32 sum acc (row r, sample b):
//   v = fma(float(acc), xs[b] * wscale[r], bias[r] or 0)       one rounding, as the FMA instructions
//   v = lo > v ? lo : v;  v = hi < v ? hi : v                  a clamp that keeps NaN (maxps / minps)
//   f32 output (inv_out == 0): y = v;  i8 output: y = quantize(v, inv_out) (ref/quantize.h)
// wscale and bias (when not null) hold a multiple of 16 floats (padded with zeros).
struct Int8Epilogue {
  const float* wscale;
  const float* bias;
  float lo, hi;
  float inv_out;  // 0: f32 output; else 1 / the output scale
};

inline float int8_epilogue(int32_t acc, float s, float bias, float lo, float hi) {
  float v = std::fma(static_cast<float>(acc), s, bias);
  v = lo > v ? lo : v;
  v = hi < v ? hi : v;
  return v;
}

// Output rows [r0, r1) of every sample: y + b * ldy + r, f32 or int8 as ep.inv_out says. r0 is a multiple of
// 16 for Int8Dense.
using Int8DenseFn = void (*)(const Int8Dense&, const Int8Act&, const Int8Epilogue&, uint32_t r0, uint32_t r1,
                             void* y, size_t ldy);
using Int8CsrFn = void (*)(const Int8Csr&, const Int8Act&, const Int8Epilogue&, uint32_t r0, uint32_t r1,
                           void* y, size_t ldy);

// ---- the kernels (the registry: kernels/int8/int8_weight.cpp dispatches among them) ----
void pyrt_i8_gemm__ref(const Int8Dense&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
void pyrt_i8_spmm__ref(const Int8Csr&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
#if PYRT_HAVE_X86_KERNELS
void pyrt_i8_gemm__avx2(const Int8Dense&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
void pyrt_i8_gemm__avx512(const Int8Dense&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
void pyrt_i8_gemm__avx512vnni(const Int8Dense&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*,
                              size_t);
void pyrt_i8_spmm__avx2(const Int8Csr&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
void pyrt_i8_spmm__avx512(const Int8Csr&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
#endif

}  // namespace pyrt::kernels
