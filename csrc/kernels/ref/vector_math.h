// pyruntime: the f32 transcendental kernels of the transformer ops (ops/activation.cpp, ops/normalize.cpp):
// elementwise gelu (erf and tanh forms), silu, sigmoid and tanh (and the exact leaky_relu), and softmax / layer_norm over contiguous rows.
//
// One table of function pointers per ISA level, chosen with math_kernels(isa); levels above avx512 use the
// avx512 table, neon_dot uses neon's. The ref table is the scalar oracle (double arithmetic, libm) and is a
// selectable level (PYRT_ISA=ref); the x86 tables (x86/vector_math_avx2.cpp, x86/vector_math_avx512.cpp) and
// the aarch64 one (arm/vector_math_neon.cpp) compute in float with a Cephes-style exp.
//
// Contract, every level:
// - Output may alias input (y == x); no other overlap.
// - Each element's result depends on its value only (no dependence on its position within a call), so a
//   batch split across threads gives the same bits.
// - Accuracy against float64: |y - y64| <= 1e-6 + 1e-5 |y64| (tests/kernels/test_vector_math.py measures it).
// - Special values as torch in float64: NaN stays NaN; gelu(+inf) = silu(+inf) = +inf, gelu(-inf) and
//   silu(-inf) are NaN (-inf * 0, as torch); sigmoid(+-inf) = 1 / 0; tanh(+-inf) = +-1; -0 gives -0 for
//   gelu, silu and tanh.
// - softmax_rows: a row with a NaN or +inf, or of all -inf, is all NaN (as torch).
// - layer_norm_rows: two passes (mean, then the centered variance, biased); weight / bias may be null; a
//   NaN or an infinity makes its row NaN; eps 0 and a constant row give NaN (0 * inf), as torch.
#pragma once

#include <cstddef>

#include "kernels/isa.h"

namespace pyrt::kernels {

struct MathKernels {
  // y[i] = f(x[i]), i < n.
  void (*gelu_erf)(const float* x, float* y, size_t n);   // 0.5 x (1 + erf(x / sqrt 2))
  void (*gelu_tanh)(const float* x, float* y, size_t n);  // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
  void (*silu)(const float* x, float* y, size_t n);       // x / (1 + exp(-x))
  void (*sigmoid)(const float* x, float* y, size_t n);    // 1 / (1 + exp(-x))
  void (*tanh)(const float* x, float* y, size_t n);
  // y[i] = x[i] >= 0 ? x[i] : slope x[i], exactly (every level gives the same bits).
  void (*leaky_relu)(const float* x, float* y, size_t n, float slope);
  // rows x cols, row-major, contiguous; cols >= 1.
  void (*softmax_rows)(const float* x, float* y, size_t rows, size_t cols);
  // rows x n, row-major, contiguous; n >= 1; w, b: [n] or null.
  void (*layer_norm_rows)(const float* x, float* y, size_t rows, size_t n, const float* w, const float* b,
                          float eps);
};

// The table for ISA level `isa` (a level without its own table runs the next lower one).
const MathKernels& math_kernels(Isa isa);

#define PYRT_MATH_KERNELS_DECLARE(sfx)                                                                      \
  void pyrt_f32_gelu_erf__##sfx(const float* x, float* y, size_t n);                                        \
  void pyrt_f32_gelu_tanh__##sfx(const float* x, float* y, size_t n);                                       \
  void pyrt_f32_silu__##sfx(const float* x, float* y, size_t n);                                            \
  void pyrt_f32_sigmoid__##sfx(const float* x, float* y, size_t n);                                         \
  void pyrt_f32_tanh__##sfx(const float* x, float* y, size_t n);                                            \
  void pyrt_f32_leaky_relu__##sfx(const float* x, float* y, size_t n, float slope);                         \
  void pyrt_f32_softmax_rows__##sfx(const float* x, float* y, size_t rows, size_t cols);                    \
  void pyrt_f32_layer_norm_rows__##sfx(const float* x, float* y, size_t rows, size_t n, const float* w,     \
                                       const float* b, float eps);

PYRT_MATH_KERNELS_DECLARE(ref)
#if PYRT_HAVE_X86_KERNELS
PYRT_MATH_KERNELS_DECLARE(avx2)
PYRT_MATH_KERNELS_DECLARE(avx512)
#endif
#if PYRT_HAVE_ARM_KERNELS
PYRT_MATH_KERNELS_DECLARE(neon)
#endif

}  // namespace pyrt::kernels
