// pyruntime: execution layouts of int8 weights, the activations they multiply, and the epilogue every int8
// kernel applies (docs/RUNTIME.md "int8 numerics"). The scalar references (kernels/ref/int8_gemm.cpp) run
// on these same layouts and are the oracles: every kernel gives their results bit for bit, since the
// products are summed exactly in int32 and the epilogue is a fixed sequence of f32 operations.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/isa.h"
#include "kernels/ref/quantize.h"

namespace pyrt::kernels {

// Dense int8, "i8_r16k4": rows in blocks of 16 and columns in groups of 4. Block (rb, g), 64 bytes at
// w + (rb * kp / 4 + g) * 64, holds rows 16 rb .. 16 rb + 15, each as its 4 weights of columns 4 g .. 4 g + 3
// (row-major within the block: one 32-bit lane per row, as vpdpbusd / vpmaddubsw + vpmaddwd consume them).
// Rows are padded to a multiple of 16 and columns to kp (a multiple of 4) with zeros, and kInt8DensePad
// readable bytes follow the last block (an AMX B tile of the last 64 columns may reach past them).
constexpr size_t kInt8DensePad = 1024;
struct Int8Dense {
  const int8_t* w;
  const int32_t* rowsum;  // per padded row: the sum of its weights (the VNNI kernels' offset correction)
  uint32_t rows, cols, kp;
};
static_assert(sizeof(int32_t) * 16 == 64, "a block's 16 row lanes fill one 512-bit register");

// Sparse int8, "i8_p128": rows in blocks of 16 (one 32-bit lane per row, as the dense layout) and columns
// in panels of 128 (what one vpermi2b looks up in). For each (row block, panel) the block's nonzeros in the
// panel are laid out in `steps`: in step s, lane i holds row i's nonzeros 4s .. 4s + 3 within the panel
// (the block's rows padded with zero weights to the longest one), as 64 bytes of column offsets within the
// panel (0..127) followed by the 64 weights. A step is one permute of the panel's activations and one
// 4-way dot per lane. Block rb's steps start at step_start[rb]; nsteps[rb * panels + p] counts them.
//
// The same steps may be stored masked ("i8_p128m", where the CPU has VBMI2): step s keeps a 64-bit mask
// masks[s] (bit 4 i + j: lane i's slot j holds a nonzero) and only its c = popcount(masks[s]) real slots,
// c column offsets then c weights, packed back to back from byte_start[rb] of the block's first step.
// vpexpandb puts them back in their lanes (zeros elsewhere), so a step streams 8 + 2 c bytes instead of
// 128: the padding costs nothing but its mask bits.
constexpr size_t kMaskedPad = 128;  // readable bytes after the masked steps: a step loads 64 from either start
struct Int8Panels {
  const uint8_t* steps;         // 128 bytes per step: 64 column offsets, then 64 int8 weights (or masked)
  const uint64_t* step_start;   // per row block (+1 at the end)
  const uint16_t* nsteps;       // per row block and panel
  const int32_t* rowsum;        // per padded row: the sum of its weights (VNNI's offset correction)
  uint32_t rows, cols, panels;  // the activations hold panels * 128 int8 per row (zero past cols)
  const uint64_t* masks = nullptr;       // masked form only: per step
  const uint64_t* byte_start = nullptr;  // masked form only: per row block, its first step's byte in steps
};
constexpr uint32_t kPanelCols = 128;
constexpr size_t kStepBytes = 128;

// The activations: `batch` rows of kp int8 in -127..127 (row b at q + b * ldq, zero from cols to kp; kp is
// what the weight asks for: a multiple of 4 for dense weights, of 128 for sparse ones), plus kInt8ActPad
// readable bytes after the last row, and the scale of each row (dynamic: per sample; static: the same).
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
using Int8PanelsFn = void (*)(const Int8Panels&, const Int8Act&, const Int8Epilogue&, uint32_t r0, uint32_t r1,
                              void* y, size_t ldy);

// ---- the kernels (the registry: kernels/int8/int8_weight.cpp dispatches among them) ----
void pyrt_i8_gemm__ref(const Int8Dense&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
void pyrt_i8_spmm__ref(const Int8Panels&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
#if PYRT_HAVE_X86_KERNELS
void pyrt_i8_gemm__avx2(const Int8Dense&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
void pyrt_i8_gemm__avx512(const Int8Dense&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
void pyrt_i8_gemm__avx512vnni(const Int8Dense&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*,
                              size_t);
#if PYRT_HAVE_AMX
// AMX tiles (tdpbssd), from kAmxMinBatch samples (int8_gemm_amx.cpp); below it the VNNI kernel runs.
constexpr size_t kAmxMinBatch = 4;
void pyrt_i8_gemm__amx(const Int8Dense&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
#endif
void pyrt_i8_spmm__avx2(const Int8Panels&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
// AVX-512 with VBMI (vpermi2b): the panel look-ups in registers; without VBMI the AVX2 kernel runs.
void pyrt_i8_spmm__avx512(const Int8Panels&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*,
                          size_t);
void pyrt_i8_spmm__avx512vnni(const Int8Panels&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*,
                              size_t);
// The same on masked steps (i8_p128m), with VBMI2 (vpexpandb) besides VBMI.
void pyrt_i8_spmm_masked__avx512(const Int8Panels&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*,
                                 size_t);
void pyrt_i8_spmm_masked__avx512vnni(const Int8Panels&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t,
                                     void*, size_t);
void pyrt_quantize_rows__avx2(const float* x, size_t batch, size_t cols, size_t ldq, int8_t* q, float* xs);
void pyrt_quantize_s8__avx2(const float* x, size_t n, float inv_scale, int8_t* q);
void pyrt_quantize_s8__avx512(const float* x, size_t n, float inv_scale, int8_t* q);
void pyrt_quantize_rows__avx512(const float* x, size_t batch, size_t cols, size_t ldq, int8_t* q, float* xs);
#endif
#if PYRT_HAVE_ARM_KERNELS
// Advanced SIMD (vmull_s8 + vpadalq_s16) and the Armv8.2 dot product (sdot); the sparse ones gather with tbl.
void pyrt_i8_gemm__neon(const Int8Dense&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
void pyrt_i8_gemm__neon_dot(const Int8Dense&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*,
                            size_t);
void pyrt_i8_spmm__neon(const Int8Panels&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*, size_t);
void pyrt_i8_spmm__neon_dot(const Int8Panels&, const Int8Act&, const Int8Epilogue&, uint32_t, uint32_t, void*,
                            size_t);
void pyrt_quantize_rows__neon(const float* x, size_t batch, size_t cols, size_t ldq, int8_t* q, float* xs);
void pyrt_quantize_s8__neon(const float* x, size_t n, float inv_scale, int8_t* q);
#endif

// Dynamic quantization of activation rows (ref/quantize.h: quantize_rows), at ISA level `isa`; every level
// gives the reference's bytes and scales.
void quantize_rows(Isa isa, const float* x, size_t batch, size_t cols, size_t ldq, int8_t* q, float* xs);
// Static quantization of n floats with one scale (ref::quantize_s8), at ISA level `isa`.
void quantize_s8(Isa isa, const float* x, size_t n, float inv_scale, int8_t* q);

}  // namespace pyrt::kernels
