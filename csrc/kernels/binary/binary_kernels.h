// pyruntime: the binary kernels (docs/RUNTIME.md "Binary numerics"), one set per ISA level, all exact.
//
// Layouts (the same for every level):
// - b1 activations: a sample of n elements is ceil(n / 64) u64 words, element i at bit i % 64 of word i / 64,
//   1 for +1 and 0 for -1, bits past n zero. A kernel reads `ldx` words per sample (ldx >= kw).
// - b1_r8 weights (XNOR): rows in blocks of 8; block rb holds kw x 8 words, word j of row 8 rb + l at
//   [(rb * kw + j) * 8 + l]: one 64-byte line is word j of 8 rows, so one vpopcntq counts 8 rows and the
//   counts stay in the rows' lanes (no horizontal sums). Rows past the last are zero words.
// - b1_rows weights (binary weights, real activations): row r's kw words at [r * kw].
//
// XNOR GEMM: for rows [r0, r1) (r0 a multiple of 8) and every sample b, m = popcount(w_r XOR x_b) over the kw
// words (the zero padding bits of both agree), then the epilogue (BinaryEpilogue): f32 output
// y = fma(float(K - 2 m), alpha[r], bias[r]), or bit output y_bit = (m <= limit[r]) where limit = K - T
// (T the popcount threshold, FORMAT.md 2.6). Bits are written a byte (8 rows) at a time.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/isa.h"

namespace pyrt::kernels {

struct BinaryEpilogue {
  uint32_t k;            // the layer's inputs (bits per row that count)
  const float* alpha;    // f32 output: per row (padded to a multiple of 8)
  const float* bias;     // f32 output: per row (padded to a multiple of 8), zeros when the layer has none
  const int32_t* limit;  // bit output: per row (padded to a multiple of 8 with -1: never set), else null
  bool counts = false;   // the mismatch counts m themselves, int32 (ldy per sample), rows [r0, r1) only
};

// The XNOR GEMM over b1_r8 weights. y: f32 (ldy floats per sample) when ep.limit is null, else b1 (ldy bytes
// per sample; the bytes of rows [r0, r1) rounded up to 8 rows are written); int32 counts with ep.counts.
using XnorGemmFn = void (*)(const uint64_t* w8, size_t kw, size_t r0, size_t r1, const uint64_t* x, size_t ldx,
                            size_t batch, const BinaryEpilogue& ep, void* y, size_t ldy);
// Binary weights (b1_rows), real activations: y[b][r] = fma(alpha[r], sum_c (bit ? x : -x), bias[r]), the sum
// in f32 in an order each level chooses.
using BwnGemmFn = void (*)(const uint64_t* w, size_t kw, size_t cols, size_t r0, size_t r1, const float* x,
                           size_t ldx, size_t batch, const float* alpha, const float* bias, float* y, size_t ldy);
// sign: bit = (x * scale + shift >= 0) (each operation rounded to f32; NaN -> 0) for `cols` floats per sample
// (ldx apart), into ldo words per sample with every bit past cols zero.
using BinarizeFn = void (*)(const float* x, size_t ldx, size_t batch, size_t cols, float scale, float shift,
                            uint64_t* out, size_t ldo);

// The sign of an image into b1c: x is `batch` samples of [channels, pixels] floats; out gets, per sample and
// pixel, ceil(channels / 64) words (channel c at bit c % 64 of word c / 64), bits past the channels zero.
using BinarizeHwcFn = void (*)(const float* x, size_t batch, size_t channels, size_t pixels, float scale, float shift,
                               uint64_t* out);
// bconv2d's epilogue over n positions x o output channels of mismatch counts m ([n][o], the padding already
// taken back): dot = kv[i] - 2 m[i][r]. lim2 null: f32 y[i * o + r] = fma(float(dot), alpha[r], bias[r]) (y may
// be m itself); else the bits of y (ldy words per position, all written): bit r = (dot >= lim2[r]).
using DotEpilogueFn = void (*)(const int32_t* m, size_t n, size_t o, const int32_t* kv, const float* alpha,
                               const float* bias, const int32_t* lim2, void* y, size_t ldy);

struct BinaryKernels {
  XnorGemmFn xnor;
  BwnGemmFn bwn;
  BinarizeFn binarize;
  BinarizeHwcFn binarize_hwc;
  DotEpilogueFn dot_epilogue;
  const char* xnor_name;  // "ref", "avx2" (vpshufb popcount), "avx512-vpopcntdq", "neon" (vcnt)
};

// The kernels of a level (isa must be supported): XNOR with vpopcntq where the CPU has AVX512_VPOPCNTDQ at
// level avx512 or above, else the AVX2 kernel; on aarch64 the NEON kernels at neon and neon_dot; ref runs the
// scalar reference.
const BinaryKernels& binary_kernels(Isa isa);

// The scalar one-element sign (compiled without FMA contraction: the tails of the vector kernels call it).
bool sign_bit(float x, float scale, float shift);

// ---- per level (kernels/binary/binary_ref.cpp, kernels/x86/binary_*.cpp, kernels/arm/binary_neon.cpp) ----
namespace ref {
void xnor_gemm(const uint64_t*, size_t, size_t, size_t, const uint64_t*, size_t, size_t, const BinaryEpilogue&, void*,
               size_t);
void bwn_gemm(const uint64_t*, size_t, size_t, size_t, size_t, const float*, size_t, size_t, const float*,
              const float*, float*, size_t);
void binarize(const float*, size_t, size_t, size_t, float, float, uint64_t*, size_t);
void binarize_hwc(const float*, size_t, size_t, size_t, float, float, uint64_t*);
void dot_epilogue(const int32_t*, size_t, size_t, const int32_t*, const float*, const float*, const int32_t*, void*,
                  size_t);
}  // namespace ref
void pyrt_xnor_gemm__avx2(const uint64_t*, size_t, size_t, size_t, const uint64_t*, size_t, size_t,
                          const BinaryEpilogue&, void*, size_t);
void pyrt_bwn_gemm__avx2(const uint64_t*, size_t, size_t, size_t, size_t, const float*, size_t, size_t, const float*,
                         const float*, float*, size_t);
void pyrt_binarize__avx2(const float*, size_t, size_t, size_t, float, float, uint64_t*, size_t);
void pyrt_binarize_hwc__avx2(const float*, size_t, size_t, size_t, float, float, uint64_t*);
void pyrt_dot_epilogue__avx2(const int32_t*, size_t, size_t, const int32_t*, const float*, const float*,
                             const int32_t*, void*, size_t);
void pyrt_xnor_gemm__avx512popcnt(const uint64_t*, size_t, size_t, size_t, const uint64_t*, size_t, size_t,
                                  const BinaryEpilogue&, void*, size_t);
void pyrt_bwn_gemm__avx512(const uint64_t*, size_t, size_t, size_t, size_t, const float*, size_t, size_t,
                           const float*, const float*, float*, size_t);
void pyrt_binarize__avx512(const float*, size_t, size_t, size_t, float, float, uint64_t*, size_t);
void pyrt_binarize_hwc__avx512(const float*, size_t, size_t, size_t, float, float, uint64_t*);
void pyrt_dot_epilogue__avx512(const int32_t*, size_t, size_t, const int32_t*, const float*, const float*,
                               const int32_t*, void*, size_t);
#if PYRT_HAVE_ARM_KERNELS
void pyrt_xnor_gemm__neon(const uint64_t*, size_t, size_t, size_t, const uint64_t*, size_t, size_t,
                          const BinaryEpilogue&, void*, size_t);
void pyrt_bwn_gemm__neon(const uint64_t*, size_t, size_t, size_t, size_t, const float*, size_t, size_t, const float*,
                         const float*, float*, size_t);
void pyrt_binarize__neon(const float*, size_t, size_t, size_t, float, float, uint64_t*, size_t);
void pyrt_binarize_hwc__neon(const float*, size_t, size_t, size_t, float, float, uint64_t*);
void pyrt_dot_epilogue__neon(const int32_t*, size_t, size_t, const int32_t*, const float*, const float*,
                             const int32_t*, void*, size_t);
#endif

}  // namespace pyrt::kernels
